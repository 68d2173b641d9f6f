"""Interval math of the report: Wilson intervals of proportions, t-intervals of a mean and of a paired mean
difference, and the band of mean warmth per checkpoint across validation prompts.

Closed forms with scipy's quantiles; tests pin them against statsmodels' `proportion_confint(method="wilson")`
and scipy's `t.interval`. An interval that cannot be formed (no rows; one value for a t-interval) is NaN, never
a made-up number. A t-interval over values that are all equal has width 0 (the t formula; the caller shows n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def scaled(self, factor: float) -> "Interval":
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.n)


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def wilson(successes: int, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval of successes / n (statsmodels' method="wilson"); NaN without rows."""
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside 0..{n}")
    z = _z(alpha)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def mean_t_interval(values, alpha: float = 0.05) -> Interval:
    """Mean with its Student-t interval (sd with ddof 1, n - 1 degrees of freedom); NaN bounds below 2 values."""
    from scipy.stats import t

    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    n = len(array)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(t.ppf(1 - alpha / 2, n - 1)) * float(array.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_t_interval(after, before, alpha: float = 0.05) -> Interval:
    """Mean of the paired differences after - before (the same units measured twice) and its t-interval."""
    after, before = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    if after.shape != before.shape:
        raise ValueError(f"paired samples of different lengths: {after.shape} and {before.shape}")
    return mean_t_interval(after - before, alpha)


def band_across_prompts(scores: pd.DataFrame, alpha: float = 0.05, value: str = "warmth",
                        by: tuple[str, ...] = ("model", "checkpoint")) -> pd.DataFrame:
    """Per model x checkpoint: the mean of `value` over its validation prompts (one row per prompt in
    warmth_scores) with the t-interval of that mean: the band around the warmth trajectory."""
    columns = [*by, "mean", "low", "high", "n"]
    if scores is None or scores.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for keys, group in scores.groupby(list(by), sort=True):
        interval = mean_t_interval(group[value], alpha)
        rows.append({**dict(zip(by, keys)), "mean": interval.estimate, "low": interval.low, "high": interval.high,
                     "n": interval.n})
    return pd.DataFrame(rows, columns=columns)
