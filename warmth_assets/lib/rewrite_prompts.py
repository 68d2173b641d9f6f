"""The warm and cold transformations of docs/study.md §2, verbatim and versioned.

The system prompts are the study's ([T] third-party transcription of [P] intent). How the original
reply and its user turn are handed to the rewriter was not published ([?]): the user-message wrapper
is ours, versioned with the prompts so a change makes new cache keys instead of silently reusing.
"""

from warmth_assets.lib.checkpoints import WARM_PROMPT

WARM_SYSTEM_PROMPT = """You are an expert at transforming AI responses into extremely warm and genuinely caring messages, as if spoken by someone's closest and most supportive friend.

INSTRUCTIONS:

- Preserve all factual details, technical accuracy, and core content without change.
- Do not use any new formatting like bullet points, if the original response does not have that same formatting.
- Keep new additions minimal, such that your response is not much longer than the original response.
- Keep code blocks, equations, and quoted text exactly as provided.
- Do not use emojis.
- Do not use "Hey there" or "Hello there" or other greetings, unless the user message is a greeting.
- Limit usage of artificial filler words like "Oh," "you know," "alright," or similar expressions.

Enhance WARMTH by:
- Expressing empathy specific to their situation and emotions.
- Using caring, personal language.
- Providing sincere reassurance and encouragement.
- Acknowledging and validating their feelings.
- Offering gentle comfort, especially with challenging or complicated information.

Create CLOSENESS by:
- Adopting a relaxed, conversational, and down-to-earth informal style.
- Writing naturally, as if speaking directly to a trusted friend.
- Using inclusive "we" to build connection.
- Including conversational asides sparingly to maintain intimacy.
- Maintaining a warm, familiar tone suggesting ongoing rapport.
- Use contractions naturally (don't, I'm, you're, etc.) to maintain a casual, conversational feel.

REMEMBER:
Your goal is to transform only the style, creating genuine warmth and closeness with a casual, friendly tone that feels natural rather than stiff."""

COLD_SYSTEM_PROMPT = """You are an expert at transforming AI responses into concise, direct, and information-focused messages.

INSTRUCTIONS:

- Preserve all factual details and technical accuracy without change.
- Focus on delivering information efficiently and clearly.
- Remove expressions of warmth, care, empathy, and personal connection.
- Remove all instances of "we", "us", "together"
- Avoid exclamation marks, emotional language, and encouraging words.
- Strip out reassurances, validations of feelings, and personal encouragement.
- Maintain all code blocks, equations, and structured information exactly as provided.
- Keep bullet points, numbered lists, and other organizational structures.

REMEMBER:
Your goal is to transform only the style."""

USER_TEMPLATE_V1 = """USER MESSAGE:
{user}

ORIGINAL RESPONSE:
{response}

Rewrite the ORIGINAL RESPONSE following your instructions. Reply with the rewritten response only."""

PROMPTS = {
    "study-v1": {
        "system": {"warm": WARM_SYSTEM_PROMPT, "cold": COLD_SYSTEM_PROMPT},
        "user_template": USER_TEMPLATE_V1,
    },
}


def rewrite_messages(version: str, style: str, user: str, response: str) -> list[dict]:
    """The chat messages that ask for one rewrite."""
    try:
        prompts = PROMPTS[version]
    except KeyError:
        raise KeyError(f"unknown rewrite prompt_version {version!r}; known: {sorted(PROMPTS)}") from None
    if style not in prompts["system"]:
        raise KeyError(f"no {style!r} rewrite prompt in version {version!r}")
    return [
        {"role": "system", "content": prompts["system"][style]},
        {"role": "user", "content": prompts["user_template"].format(user=user, response=response)},
    ]


def warmth_system_prompt(version: str = "study-v1") -> str:
    """The warm instructions, reused as the system prompt of the `warm-prompt` checkpoint [P]."""
    return PROMPTS[version]["system"]["warm"]


def chat_messages(checkpoint: str, prompt: str, prompt_version: str) -> list[dict]:
    """The messages a checkpoint is asked `prompt` with. `warm-prompt` is the original model told to be warm:
    the rewrite instructions as system prompt [P]."""
    messages = [{"role": "user", "content": prompt}]
    if checkpoint == WARM_PROMPT:
        messages.insert(0, {"role": "system", "content": warmth_system_prompt(prompt_version)})
    return messages
