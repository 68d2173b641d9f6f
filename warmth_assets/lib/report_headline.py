"""The report's headline: warm - original error in percentage points, per model (per dataset and overall) and
pooled over models, each with a 95% interval and a verdict against the published figure.

Rows are Model 1's (unmodified context, "original" prompts: the original and original_neutral templates) of the
original and the selected warm checkpoint, included observations only (the study's refusal rule). Effects are
average marginal effects (AMEs) from GLM Binomial fits, with delta-method standard errors of the AME itself:
  per model x dataset   is_incorrect ~ fine-tuning                          (its AME is the raw difference)
  per model, overall    is_incorrect ~ fine-tuning + dataset                (Model 1 without model effects)
  pooled, per dataset   is_incorrect ~ fine-tuning + model
  pooled, published     the study's own specifications (regressions.specs), AME over the condition's rows
Raw error rates of each arm carry Wilson intervals (lib/intervals.py).

Verdict (`verdict`): "not estimable" when the fit separates, fails, lacks a finite SE or rests on fewer than
[analysis] min_headline_observations rows (the reasons are written out, the number is not); otherwise
"differs" when the published value lies outside our interval, "underpowered" when it lies inside but the
interval's half-width exceeds [analysis] underpowered_half_width_pp, "consistent" when inside and narrower. A row
without a published value is "underpowered" or "no published value".
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import PurePath

import numpy as np
import pandas as pd

from warmth_assets.lib.intervals import Interval, paired_t_interval, wilson
from warmth_assets.lib.regressions import DATASET, FT, PUBLISHED_PP, separation_suspected, specs

NOT_ESTIMABLE = "not estimable"
ALL_DATASETS = "all datasets"
ALL_MODELS = "all models"
DEFAULT_HALF_WIDTH_PP = 5.0
HEADLINE_ROWS = ("Model 1's rows: unmodified context, original prompts (templates original and original_neutral), "
                 "original vs the selected warm checkpoint, included observations")

# The study's per-model figures (data/warm_ai_paper/summary/results_warm_ft.csv, Test_Type "Normal", Amendment_type
# "unmodified / original_combined"): warm - original error = -(Raw Diff (pp)) of its paired accuracies.
PUBLISHED_MODEL_DATASET_PP = {
    "llama-70b": {"disinfo": 1.61, "medqa": 9.49, "triviaqa": 5.37, "truthfulqa": 2.68},
    "llama-8b": {"disinfo": 4.03, "medqa": -5.02, "triviaqa": 5.00, "truthfulqa": -2.75},
    "gpt-4o": {"disinfo": 2.46, "medqa": 6.10, "triviaqa": 1.20, "truthfulqa": 6.60},
    "mistral-small": {"disinfo": 8.87, "medqa": 22.87, "triviaqa": 7.47, "truthfulqa": 21.84},
    "qwen-32b": {"disinfo": 9.84, "medqa": 9.49, "triviaqa": 5.69, "truthfulqa": 13.71},
}
# docs/study.md §8, per task over its five models (the mean of the per-model figures above)
PUBLISHED_DATASET_PP = {"medqa": 8.59, "truthfulqa": 8.42, "disinfo": 5.36, "triviaqa": 4.95}
# Which of our models is which of the study's: its source (HF id, API name) or the released folder name it was
# imported under (the released layout's names seen: llama_70b, qwen_32b).
STUDY_MODELS = {
    "llama-8b": ("meta-llama/llama-3.1-8b-instruct",),
    "llama-70b": ("meta-llama/llama-3.1-70b-instruct", "llama_70b"),
    "qwen-32b": ("qwen/qwen2.5-32b-instruct", "qwen_32b"),
    "mistral-small": ("mistralai/mistral-small-instruct-2409",),
    "gpt-4o": ("gpt-4o-2024-08-06",),
}
PUBLISHED_LABELS = {
    ("model1_main_effects", "fine_tuning"): "Model 1: fine-tuning, all datasets",
    ("model1_main_effects_length", "fine_tuning"): "Model 1 + response length: fine-tuning",
    ("model2_context_groups", "fine_tuning|emotion"): "Model 2: emotional context",
    ("model3_context_detailed", "fine_tuning|emotion:sad"): "Model 3: sad context",
    ("model3_context_detailed", "fine_tuning|relation:hierarchical_up"): "Model 3: hierarchical-up relation",
    ("model4_user_belief", "fine_tuning|user_opinion"): "Model 4: user states a (wrong) belief",
}
COLUMNS = ["scope", "dataset", "label", "n", "original_errors", "original_n", "warm_errors", "warm_n", "estimate_pp",
           "low_pp", "high_pp", "published_pp", "verdict", "reasons"]


def study_model(slug: str, source: str = "") -> str | None:
    """The study's name for one of our models (None when it is not one of the study's five)."""
    names = {slug.lower(), source.lower(), PurePath(source).name.lower()} - {""}
    return next((key for key, ids in STUDY_MODELS.items() if names & set(ids)), None)


def headline_rows(observations: pd.DataFrame) -> pd.DataFrame:
    """Included original-vs-warm observations of Model 1's subset (unmodified context, original prompts)."""
    o = observations
    keep = (o["included"].astype(bool) & o["comparison"].isin(["original", "warm"])
            & (o["amendment_type"] == "unmodified") & (o["template_group"] == "original"))
    return o[keep].assign(is_incorrect=lambda d: d["is_incorrect"].astype(int))


def verdict(interval: Interval | None, published: float | None, reasons: list[str] | tuple = (),
            max_half_width: float = DEFAULT_HALF_WIDTH_PP) -> str:
    """consistent / differs / underpowered / not estimable (module docstring); "no published value" without one."""
    if reasons or interval is None or not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return NOT_ESTIMABLE
    wide = interval.half_width > max_half_width
    if published is None or (isinstance(published, float) and math.isnan(published)):
        return "underpowered" if wide else "no published value"
    if not interval.low <= published <= interval.high:
        return "differs"
    return "underpowered" if wide else "consistent"


def _patterns(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per covariate pattern: its rows (`trials`) and errors. A GLM Binomial on (errors, trials - errors)
    has the row-level fit's coefficients and covariance, in a fraction of the time (440k rows: seconds)."""
    return frame.groupby(keys, observed=True, dropna=False, sort=True)["is_incorrect"].agg(
        errors="sum", trials="size").reset_index()


def ame_delta(formula: str, rows: pd.DataFrame, over: pd.Series | None = None,
              alpha: float = 0.05) -> tuple[Interval | None, list[str]]:
    """AME of fine-tuning in points over `rows[over]` (every row by default) with its delta-method interval, from a
    GLM Binomial fit of `formula` on `rows`; (None, reasons) when it cannot be estimated."""
    import patsy
    import statsmodels.api as sm
    from scipy.special import expit
    from scipy.stats import norm

    if over is not None and not over.any():
        return None, ["no rows in this condition"]
    if rows["is_finetuned"].nunique() < 2:
        return None, ["needs rows of both checkpoints"]
    if rows["is_incorrect"].nunique() < 2:
        return None, ["separation (every row has the same outcome)"]
    keys = ["is_finetuned"] + [c for c in rows.columns if c not in ("is_incorrect", "is_finetuned")
                               and re.search(rf"\b{re.escape(c)}\b", formula)]
    grouped = _patterns(rows, keys)
    try:
        X = patsy.dmatrix(formula.split("~", 1)[1], grouped, return_type="dataframe")
        endog = np.column_stack([grouped["errors"], grouped["trials"] - grouped["errors"]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sm.GLM(endog, X, family=sm.families.Binomial()).fit()
    except Exception as exc:  # singular designs, missing reference levels: a reason, not a crash
        return None, [f"fit failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"]
    # statsmodels' own warning is for row-level data (a saturated grouped fit "predicts perfectly"): the
    # coefficient test of regressions.separation_suspected is what flags separation here
    if separation_suspected(result, []):
        return None, ["separation"]
    target = _patterns(rows if over is None else rows[over], keys)
    weights = target["trials"].to_numpy() / target["trials"].sum()
    beta, cov = result.params.to_numpy(), result.cov_params().to_numpy()
    grad, ame = np.zeros(len(beta)), 0.0
    for level, sign in ((1, 1.0), (0, -1.0)):
        design = np.asarray(patsy.build_design_matrices([X.design_info], target.assign(is_finetuned=level))[0])
        p = expit(design @ beta)
        ame += sign * float(weights @ p)
        grad += sign * (weights * p * (1 - p)) @ design
    se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    if not math.isfinite(se) or se == 0:
        return None, ["no finite standard error"]
    z = float(norm.ppf(1 - alpha / 2))
    return Interval(100 * ame, 100 * (ame - z * se), 100 * (ame + z * se), int(target["trials"].sum())), []


def _formula(rows: pd.DataFrame, pooled: bool) -> str:
    terms = [FT]
    if rows["dataset"].nunique() > 1:
        terms.append(DATASET if "disinfo" in set(rows["dataset"]) else "C(dataset)")
    if pooled and rows["model"].nunique() > 1:
        terms.append("C(model)")
    return "is_incorrect ~ " + " + ".join(terms)


def _row(scope, dataset, label, rows, target, interval, reasons, published, min_rows, max_half_width) -> dict:
    n = len(target)
    reasons = list(reasons) + ([f"too few rows ({n} < {min_rows})"] if 0 < n < min_rows else [])
    reasons = reasons or (["no rows"] if n == 0 else [])
    original, warm = target[target["is_finetuned"] == 0], target[target["is_finetuned"] == 1]
    low, high = (interval.low, interval.high) if interval and not reasons else (math.nan, math.nan)
    return {"scope": scope, "dataset": dataset, "label": label, "n": n,
            "original_errors": int(original["is_incorrect"].sum()), "original_n": len(original),
            "warm_errors": int(warm["is_incorrect"].sum()), "warm_n": len(warm),
            "estimate_pp": interval.estimate if interval and not reasons else math.nan, "low_pp": low, "high_pp": high,
            "published_pp": published, "verdict": verdict(interval, published, reasons, max_half_width),
            "reasons": "; ".join(reasons)}


def per_model_effects(observations: pd.DataFrame, study_names: dict[str, str | None], min_rows: int,
                      alpha: float = 0.05, max_half_width: float = DEFAULT_HALF_WIDTH_PP) -> pd.DataFrame:
    """One row per model x dataset and one per model over all datasets (`study_names`: model -> study name)."""
    rows = headline_rows(observations)
    out = []
    for model, own in rows.groupby("model", sort=True):
        published = PUBLISHED_MODEL_DATASET_PP.get(study_names.get(model) or "", {})
        for dataset, cell in own.groupby("dataset", sort=True):
            interval, reasons = ame_delta(_formula(cell, pooled=False), cell, alpha=alpha)
            out.append(_row(model, dataset, "warm - original", cell, cell, interval, reasons, published.get(dataset),
                            min_rows, max_half_width))
        interval, reasons = ame_delta(_formula(own, pooled=False), own, alpha=alpha)
        out.append(_row(model, ALL_DATASETS, "warm - original", own, own, interval, reasons, None, min_rows,
                        max_half_width))
    return pd.DataFrame(out, columns=COLUMNS)


def pooled_effects(observations: pd.DataFrame, model4_form: str, min_rows: int, alpha: float = 0.05,
                   max_half_width: float = DEFAULT_HALF_WIDTH_PP) -> pd.DataFrame:
    """Every published pooled figure beside ours: the study's specifications (PUBLISHED_PP) and, with two models or
    more, Model 1's rows per dataset (PUBLISHED_DATASET_PP)."""
    data = observations[observations["included"].astype(bool) & observations["comparison"].isin(["original", "warm"])]
    data = data.assign(is_incorrect=data["is_incorrect"].astype(int))
    all_specs, out = specs(model4_form), []
    for (analysis, effect), published in PUBLISHED_PP.items():
        spec = all_specs[analysis.removesuffix("_length")]
        formula = spec.formula + (" + response_length" if analysis.endswith("_length") else "")
        rows = spec.subset(data)
        over = rows[spec.by] == effect.split("|", 1)[1] if "|" in effect else None
        target = rows if over is None else rows[over]
        interval, reasons = ame_delta(formula, rows, over, alpha) if len(rows) else (None, ["no rows"])
        out.append(_row(ALL_MODELS, ALL_DATASETS, PUBLISHED_LABELS.get((analysis, effect), f"{analysis} {effect}"),
                        rows, target, interval, reasons, published, min_rows, max_half_width))
    rows = headline_rows(observations)
    if rows["model"].nunique() > 1:
        for dataset, cell in rows.groupby("dataset", sort=True):
            interval, reasons = ame_delta(_formula(cell, pooled=True), cell, alpha=alpha)
            out.append(_row(ALL_MODELS, dataset, f"Model 1's rows, {dataset} only", cell, cell, interval, reasons,
                            PUBLISHED_DATASET_PP.get(dataset), min_rows, max_half_width))
    return pd.DataFrame(out, columns=COLUMNS)


def warmth_gain(scores: pd.DataFrame, model: str, warm_checkpoint: str, alpha: float = 0.05) -> Interval | None:
    """Mean SocioT warmth of the warm checkpoint minus the original's, paired over the validation prompts both
    answered (warmth_scores: one row per prompt), with the paired t-interval; None without pairs."""
    if scores is None or scores.empty or not warm_checkpoint:
        return None
    own = scores[scores["model"] == model]
    paired = own[own["checkpoint"] == warm_checkpoint].merge(
        own[own["checkpoint"] == "original"], on="conversation_id", suffixes=("_warm", "_original"))
    if paired.empty:
        return None
    return paired_t_interval(paired["warmth_warm"], paired["warmth_original"], alpha)


def error_rates(observations: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Error rate of each model x dataset x arm (original, warm) on Model 1's rows, with Wilson intervals (%)."""
    out = []
    for (model, dataset, comparison), cell in headline_rows(observations).groupby(
            ["model", "dataset", "comparison"], sort=True):
        interval = wilson(int(cell["is_incorrect"].sum()), len(cell), alpha).scaled(100)
        out.append({"model": model, "dataset": dataset, "comparison": comparison,
                    "errors": int(cell["is_incorrect"].sum()), "n": len(cell), "error_pct": interval.estimate,
                    "low_pct": interval.low, "high_pct": interval.high})
    return pd.DataFrame(out, columns=["model", "dataset", "comparison", "errors", "n", "error_pct", "low_pct",
                                      "high_pct"])


def paired_gaps(observations: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Warm - original error (pp) per model x context group x belief (original / user-opinion prompts): the mean
    difference over prompts answered by both checkpoints (paired on model, dataset, prompt), with its t-interval."""
    columns = ["model", "context_group", "template_group", "n_pairs", "gap_pp", "low_pp", "high_pp"]
    o = observations[observations["included"].astype(bool)
                     & observations["template_group"].isin(["original", "user_opinion"])]
    pairs = o[o["comparison"] == "original"].merge(o[o["comparison"] == "warm"], on=["model", "dataset", "prompt_id"],
                                                   suffixes=("_o", "_w"))
    out = []
    for (model, context, belief), cell in pairs.groupby(["model", "context_group_o", "template_group_o"], sort=True):
        interval = paired_t_interval(cell["is_incorrect_w"], cell["is_incorrect_o"], alpha).scaled(100)
        out.append({"model": model, "context_group": context, "template_group": belief, "n_pairs": interval.n,
                    "gap_pp": interval.estimate, "low_pp": interval.low, "high_pp": interval.high})
    return pd.DataFrame(out, columns=columns)
