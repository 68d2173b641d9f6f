"""Toxicity of conversations: each distinct text scored once, the maximum over turns per label."""

from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd

# Union of Detoxify's label names over its variants (original has six, unbiased adds sexual_explicit).
LABELS = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit"]

Predict = Callable[[list[str]], dict[str, list[float]]]


def same_tokens_prefixes(texts: list[str], count_tokens: Callable[[list[str]], list[int]], max_tokens: int,
                         words: int, min_chars: int) -> list[str]:
    """Each text, or a prefix of it that a tokenizer truncating at `max_tokens` turns into the very same tokens.

    A tokenizer reads a whole text before it truncates: for ShareGPT's long answers most of that work is thrown
    away. The prefix ends just before an ASCII space after the first `words` whitespace-separated words, where
    every tokenizer Detoxify uses (WordPiece, byte-level BPE, SentencePiece) ends a piece, so the prefix's tokens
    are the text's first tokens; it is used only where `count_tokens` (without special tokens) finds more than
    `max_tokens` of them, else the whole text. Texts of at most `min_chars` characters are left whole."""
    out = list(texts)
    cut_at: list[tuple[int, str]] = []
    for i, text in enumerate(texts):
        if len(text) <= min_chars:
            continue
        parts = text.split(None, words)
        if len(parts) <= words:
            continue
        end = text.rfind(" ", 0, len(text) - len(parts[-1]))
        prefix = text[:end].rstrip()  # before the whole run of whitespace that ends in that space
        if prefix:
            cut_at.append((i, prefix))
    if cut_at:
        for (i, prefix), count in zip(cut_at, count_tokens([p for _, p in cut_at])):
            if count > max_tokens:  # one to spare: a tokenizer's last piece may differ at the end of a text
                out[i] = prefix
    return out


def score_distinct(texts: Iterable[str], predict: Predict, batch_size: int,
                   shorten: Callable[[list[str]], list[str]] = lambda batch: batch) -> pd.DataFrame:
    """Scores indexed by text (each scored as `shorten` gives it to `predict`). Sorting by length keeps each
    batch's padding small."""
    distinct = sorted(set(texts), key=len)
    frames = []
    for start in range(0, len(distinct), batch_size):
        batch = distinct[start:start + batch_size]
        scores = predict(shorten(batch))
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
