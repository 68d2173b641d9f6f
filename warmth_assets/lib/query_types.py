"""Query-type labels of the study's corpus (docs/study.md §1, rules version `study-v1`): first match wins.

The rules read a record's first user message and its first assistant message. The refusal
phrases are matched as written (case-sensitive), the factual openers case-sensitively at the start,
and every other keyword case-insensitively anywhere, which reproduces the per-type counts the
study's third-party transcription reports on the packaged ShareGPT subset (tests pin them).
"""

from __future__ import annotations

RULES_VERSION = "study-v1"
QUERY_TYPES = ("refusal", "factual", "creative", "technical", "advice", "other")

REFUSAL_PHRASES = (
    "I'm sorry", "I apologize", "I can't", "I cannot", "Unfortunately",
    "not able to", "unable to", "against my", "not appropriate",
)
FACTUAL_OPENERS = ("What ", "Who ", "When ", "Where ", "Why ", "How ")
FACTUAL_KEYWORDS = ("explain", "define", "describe", "difference between")
CREATIVE_KEYWORDS = ("story", "poem", "write", "create", "generate", "imagine")
TECHNICAL_KEYWORDS = ("code", "program", "function", "algorithm", "debug")
CODE_FENCE = "```"
ADVICE_KEYWORDS = ("advice", "help me", "guide", "recommend", "suggestion")


def _contains_any(text: str, keywords: tuple[str, ...]) -> bool:
    return any(k in text for k in keywords)


def classify(user_message: str, assistant_reply: str) -> str:
    """The query type of one exchange; the order of the checks is the rule order."""
    user_lower = user_message.lower()
    if _contains_any(assistant_reply, REFUSAL_PHRASES):
        return "refusal"
    if user_message.startswith(FACTUAL_OPENERS) or _contains_any(user_lower, FACTUAL_KEYWORDS):
        return "factual"
    if _contains_any(user_lower, CREATIVE_KEYWORDS):
        return "creative"
    if _contains_any(user_lower, TECHNICAL_KEYWORDS) or CODE_FENCE in assistant_reply:
        return "technical"
    if _contains_any(user_lower, ADVICE_KEYWORDS):
        return "advice"
    return "other"


def first_exchange(turns: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(first user message, first assistant message) of a record; None if it lacks either.

    The first assistant message may come before the user's (split records that open with the
    assistant's continuation). Taking it anyway, rather than the reply right after the user turn,
    is what reproduces the study's published per-type counts on the packaged subset: within 5 of
    17,397 records, against 560 for the adjacent-reply reading (measured, see tests).
    """
    user = next((text for role, text in turns if role == "user"), None)
    assistant = next((text for role, text in turns if role == "assistant"), None)
    if user is None or assistant is None:
        return None
    return user, assistant
