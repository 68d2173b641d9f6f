"""Agreement and Cohen's kappa (closed form) pinned against statsmodels; per-dataset judge vs reference match."""

import math
import random
import warnings

import pandas as pd
import pytest

from warmth_assets.lib.agreement import (NOT_ESTIMABLE, agreement, cohens_kappa, describe, format_kappa, markdown,
                                         scorer_agreement)


def statsmodels_kappa(a: list[str], b: list[str]) -> float:
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    labels = sorted(set(a) | set(b))
    table = [[sum(1 for x, y in zip(a, b) if x == r and y == c) for c in labels] for r in labels]
    with warnings.catch_warnings():  # its z statistic divides by zero on some tables; kappa itself is fine
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sm_kappa(table).kappa)


C, I = "CORRECT", "INCORRECT"


@pytest.mark.parametrize("a, b", [
    ([C, C, I, I, C, I], [C, I, I, I, C, C]),
    ([C] * 7 + [I] * 3, [C] * 5 + [I] * 5),
    ([C, I] * 10, [I, C] * 10),                     # perfect disagreement: kappa -1
    ([C, I, I, C], [C, I, I, C]),                   # perfect agreement: kappa 1
    (["CORRECT", "INCORRECT", "REFUSED"] * 4, ["CORRECT", "REFUSED", "REFUSED"] * 4),  # three labels
])
def test_kappa_equals_statsmodels(a, b):
    assert cohens_kappa(a, b) == pytest.approx(statsmodels_kappa(a, b), abs=1e-12)


def test_kappa_equals_statsmodels_on_random_tables():
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(2, 60)
        a = [rng.choice((C, I)) for _ in range(n)]
        b = [x if rng.random() < 0.7 else rng.choice((C, I)) for x in a]
        if len(set(a)) == 1 or len(set(b)) == 1:
            continue
        assert cohens_kappa(a, b) == pytest.approx(statsmodels_kappa(a, b), abs=1e-12)


def test_a_kappa_that_cannot_be_estimated_is_written_out():
    assert cohens_kappa([C] * 5, [C] * 5) is None and cohens_kappa([], []) is None
    assert format_kappa(None) == NOT_ESTIMABLE == format_kappa(float("nan"))
    assert agreement([I] * 3, [I] * 3, "x") == {"x_n": 3, "x_agreement": 1.0, "x_kappa": NOT_ESTIMABLE}
    # A judge that says CORRECT to everything: statsmodels gives 0 whatever the other scorer said; not estimated here.
    constant, mixed = [C] * 20, [C] * 3 + [I] * 17
    assert statsmodels_kappa(constant, mixed) == 0 == statsmodels_kappa(constant, [I] * 20)
    assert cohens_kappa(constant, mixed) is None and cohens_kappa(mixed, constant) is None
    assert format_kappa(cohens_kappa(constant, mixed)) == NOT_ESTIMABLE and format_kappa(0.123) == "0.12"
    with pytest.raises(ValueError):
        cohens_kappa([C], [C, I])


def test_judge_against_reference_match_per_dataset():
    frame = pd.DataFrame({
        "dataset": ["triviaqa"] * 5 + ["medqa"] * 3 + ["truthfulqa"],
        "judge_verdict": [C, C, I, I, "UNPARSEABLE", C, C, C, C],
        "reference_verdict": [C, I, I, I, C, I, I, I, None],   # truthfulqa has no reference match
    })
    table = scorer_agreement(frame).set_index("dataset")
    assert list(table.index) == ["medqa", "triviaqa"]
    trivia, medqa = table.loc["triviaqa"], table.loc["medqa"]
    assert trivia["n"] == 4 and trivia["agreement"] == 0.75 and trivia["judge_unparseable"] == 1
    assert trivia["kappa"] == pytest.approx(statsmodels_kappa([C, C, I, I], [C, I, I, I]))
    assert (trivia["judge_correct"], trivia["judge_incorrect"], trivia["reference_correct"]) == (2, 2, 1)
    # the judge says CORRECT to everything, reference match INCORRECT: no agreement, and no kappa to speak of
    assert medqa["agreement"] == 0.0 and (medqa["kappa"] is None or math.isnan(medqa["kappa"]))
    lines = {row.dataset: describe(row) for row in scorer_agreement(frame).itertuples()}
    assert lines["medqa"] == (f"medqa: 3 answers, agreement 0.0%, kappa {NOT_ESTIMABLE}; judge 3 CORRECT / 0 "
                              "INCORRECT, reference match 0 / 3")
    assert "(1 unparseable verdicts left out)" in lines["triviaqa"] and "kappa 0.50" in lines["triviaqa"]
    assert "| triviaqa | 4 | 75.0% | 0.50 | 2 / 2 | 1 / 3 |" in markdown(scorer_agreement(frame))
    assert scorer_agreement(frame.iloc[:0]).empty and "No response" in markdown(scorer_agreement(None))
