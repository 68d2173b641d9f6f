"""Toxicity of conversations: each distinct text scored once, the maximum over turns per label."""

from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd

# Union of Detoxify's label names over its variants (original has six, unbiased adds sexual_explicit).
LABELS = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit"]

Predict = Callable[[list[str]], dict[str, list[float]]]


def score_distinct(texts: Iterable[str], predict: Predict, batch_size: int) -> pd.DataFrame:
    """Scores indexed by text. Sorting by length keeps each batch's padding small."""
    distinct = sorted(set(texts), key=len)
    frames = []
    for start in range(0, len(distinct), batch_size):
        batch = distinct[start:start + batch_size]
        scores = predict(batch)
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
