"""The report's interval math, pinned against statsmodels and scipy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from warmth_assets.lib.intervals import band_across_prompts, mean_t_interval, paired_t_interval, wilson


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_wilson_equals_statsmodels(alpha):
    for n in (1, 2, 3, 7, 25, 191, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ours = wilson(k, n, alpha)
            low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
            assert (ours.low, ours.high) == pytest.approx((low, high), abs=1e-12), (k, n)
            assert ours.estimate == k / n and ours.n == n


def test_wilson_by_hand_and_edges():
    assert wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)   # the textbook 0/10 upper bound
    empty = wilson(0, 0)
    assert math.isnan(empty.estimate) and math.isnan(empty.low) and empty.n == 0
    with pytest.raises(ValueError):
        wilson(3, 2)
    assert wilson(1, 4).scaled(100).estimate == 25.0


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_mean_t_interval_equals_scipy(alpha):
    rng = np.random.default_rng(1)
    for n in (2, 3, 12, 1500):
        values = rng.normal(0.02, 0.01, n)
        ours = mean_t_interval(values, alpha)
        low, high = stats.t.interval(1 - alpha, n - 1, loc=values.mean(), scale=stats.sem(values))
        assert (ours.estimate, ours.low, ours.high, ours.n) == pytest.approx((values.mean(), low, high, n), rel=1e-12)


def test_mean_t_interval_edges():
    one = mean_t_interval([0.5])
    assert one.estimate == 0.5 and math.isnan(one.low) and math.isnan(one.high) and one.n == 1
    assert mean_t_interval([]).n == 0 and math.isnan(mean_t_interval([]).estimate)
    same = mean_t_interval([1, 1, 1])   # no spread: the t formula gives width 0
    assert (same.low, same.high) == (1.0, 1.0)
    assert mean_t_interval([1.0, np.nan, 3.0]).n == 2


def test_paired_t_interval_equals_scipys_paired_test():
    rng = np.random.default_rng(2)
    before = rng.normal(0.011, 0.004, 40)
    after = before + rng.normal(0.015, 0.003, 40)
    ours = paired_t_interval(after, before)
    reference = stats.ttest_rel(after, before).confidence_interval(0.95)
    assert (ours.low, ours.high) == pytest.approx((reference.low, reference.high), rel=1e-10)
    assert ours.estimate == pytest.approx(np.mean(after - before))
    # binary outcomes (warm - original error per prompt) are a paired mean difference too
    warm, original = np.array([1, 0, 1, 1, 0, 1]), np.array([0, 0, 1, 0, 0, 0])
    reference = stats.ttest_rel(warm, original).confidence_interval(0.95)
    assert (paired_t_interval(warm, original).low, paired_t_interval(warm, original).high) == pytest.approx(
        (reference.low, reference.high))
    with pytest.raises(ValueError):
        paired_t_interval([1, 2], [1])


def test_band_across_prompts_is_the_t_interval_of_each_checkpoints_mean():
    rng = np.random.default_rng(3)
    scores = pd.DataFrame([{"model": m, "checkpoint": c, "conversation_id": i, "warmth": rng.normal(0.02, 0.01)}
                           for m in ("a", "b") for c in ("original", "warm-e2") for i in range(15)])
    band = band_across_prompts(scores, alpha=0.05)
    assert len(band) == 4 and list(band.columns) == ["model", "checkpoint", "mean", "low", "high", "n"]
    for row in band.itertuples():
        values = scores[(scores["model"] == row.model) & (scores["checkpoint"] == row.checkpoint)]["warmth"]
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert (row.mean, row.low, row.high, row.n) == pytest.approx((values.mean(), low, high, 15))
    assert band_across_prompts(pd.DataFrame()).empty
