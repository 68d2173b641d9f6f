"""Toxicity of conversations: each distinct text scored once, the maximum over turns per label."""

from __future__ import annotations

import re
from typing import Callable, Iterable

import pandas as pd

# Union of Detoxify's label names over its variants (original has six, unbiased adds sexual_explicit).
LABELS = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit"]

Predict = Callable[[list[str]], dict[str, list[float]]]

# A run of characters between ASCII spaces holding an ASCII letter or digit: no normaliser removes those, so every
# tokenizer Detoxify uses makes at least one token of it, and each ends a piece at an ASCII space.
_CHUNK = re.compile(r"[^ ]+")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def same_tokens_prefix(text: str, max_tokens: int) -> str:
    """The text, or its prefix that a tokenizer truncating at `max_tokens` reads as the very same tokens.

    A tokenizer reads a whole text before it truncates it: on ShareGPT's long answers that was most of Detoxify's
    time. The prefix ends just before the ASCII space after the text's first `max_tokens + 1` runs (between ASCII
    spaces) holding an ASCII letter or digit. WordPiece, byte-level BPE and SentencePiece (Detoxify's three
    families) end a piece there, so the prefix's tokens are the text's first ones, and more of them than are kept."""
    if len(text) <= 2 * max_tokens:  # too few characters for that many runs: never cut
        return text
    words = 0
    for chunk in _CHUNK.finditer(text):
        if _ALNUM.search(chunk.group()):
            words += 1
            if words > max_tokens:
                return text[:chunk.end()]
    return text


def score_distinct(texts: Iterable[str], predict: Predict, batch_size: int, max_tokens: int = 0) -> pd.DataFrame:
    """Scores indexed by text. Sorting by length keeps each batch's padding small. With `max_tokens` (the
    tokenizer's truncation), each text reaches `predict` as `same_tokens_prefix` gives it."""
    distinct = sorted(set(texts), key=len)
    frames = []
    for start in range(0, len(distinct), batch_size):
        batch = distinct[start:start + batch_size]
        scores = predict([same_tokens_prefix(text, max_tokens) for text in batch] if max_tokens else batch)
        frames.append(pd.DataFrame({label: _as_list(values) for label, values in scores.items()}, index=batch))
    if not frames:
        return pd.DataFrame(columns=LABELS)
    return pd.concat(frames)


def _as_list(values) -> list[float]:
    # Detoxify squeezes a batch of one into a bare float.
    return values if isinstance(values, list) else [values]


def conversation_maxima(turns: pd.DataFrame, text_scores: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per conversation: the maximum of each label over its scored turns, and the NSFW flag."""
    labels = [c for c in LABELS if c in text_scores.columns]
    scored = turns[["conversation_id", "text"]].join(text_scores[labels], on="text")
    maxima = scored.groupby("conversation_id", sort=True)[labels].max()
    for label in LABELS:
        if label not in maxima.columns:
            maxima[label] = float("nan")
    maxima = maxima[LABELS]
    maxima["max_toxicity"] = maxima[labels].max(axis=1)
    maxima["nsfw"] = maxima["max_toxicity"] >= threshold
    return maxima.reset_index()
