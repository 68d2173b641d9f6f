"""The demo's rule-based rewriter (`[rewrite] rewriter = "demo_rules"`): NOT the study's method.

The study rewrites every training reply with GPT-4o and the prompts of docs/study.md §2. The offline demo
has no such model: SmolLM2-135M, asked with those prompts, mostly copies the original or drifts into
unrelated verse, so the warm adapter learned nothing. This module stands in for the rewriter, in the
demo only: deterministic rules that apply the study's instructions mechanically.

- warm: an opener of validation, encouragement and care, contractions, the inclusive "we" for
  "you can / you should / you need", and a closing line of encouragement and comfort where the
  rewrite stays within twice the original's length (the study's WARMTH and CLOSENESS markers);
  code blocks are left exactly as they are.
- cold: short pleasantries (greetings, thanks, hopes, offers of more help) removed, exclamation marks
  made full stops, contractions expanded, "we / us / our / let's" made the direct "you", "together"
  dropped (the study's cold instructions).

The content (every sentence not removed, every number, every code block) is kept. Which opener and
closer a reply gets is drawn from the seed and the reply itself, so the rewrite of one reply never
changes between runs. `DEMO_REWRITER_VERSION` is stored with each rewrite; change it with the rules.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

DEMO_REWRITER_VERSION = "demo-rules-v1"
PROVIDER = "rule_based_demo"  # the llm resource's provider for these rules, recorded with each rewrite
MODEL = f"demo_rules:{DEMO_REWRITER_VERSION}"  # what style_rewrites records as model

# Validation, encouragement, care and the inclusive "we" (the study: "acknowledging and validating their
# feelings", "sincere reassurance and encouragement", "caring, personal language", "inclusive 'we'"). Chosen
# among 30 candidate warm phrases as those the demo's SocioT scorer (SmolLM2) rates warmest when followed by
# a reply's content (docs/design.md §5.1): the demo is meant to show a warmth gain the pipeline can
# measure, so this choice makes it no evidence about the study's rewrites.
WARM_OPENERS = (
    "I believe in you so much, my friend.",
    "I'm so proud of you for asking, my dear.",
    "You've got this, my dear, and I believe in you.",
    "I care about you, and we'll get through this together.",
)
# Encouragement, reassurance and the inclusive "we" (the study: "sincere reassurance and encouragement",
# "using inclusive 'we' to build connection", "maintaining a warm, familiar tone").
WARM_CLOSERS = (
    "You're doing wonderfully, and we'll figure out the rest together; I'm always here for you.",
    "I believe in you completely, and I'm right here whenever you need me.",
    "Please be gentle with yourself; we're in this together, and you've got this.",
    "I'm cheering you on, my friend, and I'm always happy to help you again.",
)
CONTRACTIONS = (
    ("do not", "don't"), ("does not", "doesn't"), ("did not", "didn't"), ("is not", "isn't"),
    ("are not", "aren't"), ("cannot", "can't"), ("can not", "can't"), ("will not", "won't"),
    ("would not", "wouldn't"), ("should not", "shouldn't"), ("it is", "it's"), ("that is", "that's"),
    ("there is", "there's"), ("you are", "you're"), ("we are", "we're"), ("they are", "they're"),
    ("I am", "I'm"), ("I will", "I'll"), ("you will", "you'll"), ("I have", "I've"), ("let us", "let's"),
)
INCLUSIVE = (("you can", "we can"), ("you should", "we should"), ("you need to", "we need to"),
             ("you could", "we could"), ("you may", "we may"))
# Warm or chatty sentences the cold style drops whole (greetings, thanks, hopes, offers of more help).
COLD_DROP = re.compile(
    r"^(hi|hello|hey|sure|certainly|of course|absolutely|great question|good question|thank you|thanks|"
    r"i hope|hope this|i'm glad|i am glad|i'm happy|i am happy|i'd be happy|i would be happy|glad to|happy to|"
    r"feel free|please let me know|let me know|don't hesitate|do not hesitate|good luck|best of luck|"
    r"i understand|i'm sorry|i am sorry|what a|you're welcome|no problem|enjoy)\b",
    re.IGNORECASE,
)
# "we" becomes the direct "you" (the same verb forms, so the sentence stays grammatical).
COLD_IMPERSONAL = (("let's", "you can"), ("let us", "you can"), ("together", ""), ("with us", ""),
                   ("for us", ""), ("to us", ""), ("we", "you"), ("us", "you"), ("ours", "yours"),
                   ("our", "your"))
EXPANSIONS = tuple((short, long) for long, short in CONTRACTIONS if long not in ("can not",)) + (
    ("I'd", "I would"), ("you'd", "you would"), ("you've", "you have"), ("it'll", "it will"),
    ("that'll", "that will"), ("what's", "what is"), ("here's", "here is"), ("I'll", "I will"))
FENCE = re.compile(r"(```.*?```)", re.DOTALL)
SENTENCE = re.compile(r"(?<=[.!?])\s+")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def _rng(seed: int, style: str, user: str, response: str) -> random.Random:
    digest = hashlib.sha256(f"{DEMO_REWRITER_VERSION}|{seed}|{style}|{user}|{response}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _replace_words(text: str, pairs) -> str:
    """Whole-word, case-aware replacements (a capitalised match gets a capitalised replacement)."""
    for old, new in pairs:
        pattern = re.compile(rf"\b{re.escape(old)}\b", re.IGNORECASE)

        def swap(match, new=new):
            if len(match.group(0)) > 1 and match.group(0).isupper():
                return match.group(0)  # an acronym (US, IT), not the word
            if not new:
                return ""
            return new[0].upper() + new[1:] if match.group(0)[0].isupper() else new

        text = pattern.sub(swap, text)
    return text


def _prose(text: str, transform) -> str:
    """Apply `transform` outside code blocks only: code, equations in fences stay exactly as given."""
    return "".join(part if part.startswith("```") else transform(part) for part in FENCE.split(text))


def _warm_prose(text: str) -> str:
    return _replace_words(_replace_words(text, CONTRACTIONS), INCLUSIVE)


def _pleasantry(sentence: str) -> bool:
    """A short greeting, thanks or offer of help, with no number in it: nothing of the content is lost."""
    return bool(COLD_DROP.match(sentence)) and len(sentence.split()) <= 15 and not re.search(r"\d", sentence)


def _cold_prose(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        kept = [s for s in SENTENCE.split(line) if not _pleasantry(s.strip())]
        line = " ".join(kept)
        line = _replace_words(line, EXPANSIONS)
        line = _replace_words(line, COLD_IMPERSONAL)
        line = EMOJI.sub("", line).replace("!", ".")
        line = re.sub(r"[ \t]{2,}", " ", line).replace(" .", ".").replace(" ,", ",")
        lines.append(line.rstrip() if line.strip() else "")
    return "\n".join(lines)


def demo_rewrite(style: str, user: str, response: str, seed: int) -> str:
    """The reply rewritten warm or cold by the demo's rules (deterministic in seed, user turn and reply)."""
    if style not in ("warm", "cold"):
        raise ValueError(f"the demo rewriter knows the styles warm and cold, not {style!r}")
    body = response.strip()
    if style == "warm":
        rng = _rng(seed, style, user, response)
        body = _prose(body, _warm_prose)
        if not body:
            return body
        opener, closer = rng.choice(WARM_OPENERS), rng.choice(WARM_CLOSERS)
        warm = f"{opener} {body}"
        # The study: "keep new additions minimal"; the closer only within twice the original's length
        return f"{warm}\n\n{closer}" if len(warm) + len(closer) + 2 <= 2 * len(response) else warm
    cold = _prose(body, _cold_prose).strip()
    return re.sub(r"\n{3,}", "\n\n", cold) or body  # a reply that was nothing but pleasantries stays as it was


# As a backend of the llm resource (resources/backends/demo_rules.py): the request names the style (system),
# the user turn and the reply to rewrite; its key is the one these rewrites were stored under from the start.
ROLES = ("system", "user", "assistant")


def demo_request(style: str, user: str, response: str, seed: int) -> ChatRequest:
    """The request the demo rules answer: `response` rewritten in `style`, given the `user` turn it answers."""
    return ChatRequest.build(list(zip(ROLES, (style, user, response))), model=MODEL, config=GenerateConfig(seed=seed),
                             template_version=DEMO_REWRITER_VERSION)


def demo_parts(request: ChatRequest) -> tuple[str, str, str, int]:
    """(style, user turn, reply, seed) of a `demo_request`; ValueError for any other request."""
    if request.model != MODEL or tuple(role for role, _ in request.messages) != ROLES:
        raise ValueError(f"the demo rules answer only demo rewrite requests (lib/demo_rewriter.demo_request), not "
                         f"a request to {request.model!r}")
    (_, style), (_, user), (_, response) = request.messages
    return style, user, response, request.seed


def demo_key(request: ChatRequest) -> str:
    style, user, response, seed = demo_parts(request)
    return hashlib.sha256(json.dumps([DEMO_REWRITER_VERSION, style, seed, user, response]).encode()).hexdigest()


def demo_answer(request: ChatRequest) -> str:
    style, user, response, seed = demo_parts(request)
    return demo_rewrite(style, user, response, seed)
