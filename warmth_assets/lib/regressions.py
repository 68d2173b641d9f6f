"""The study's four logistic regressions (docs/study.md §8), statsmodels GLM Binomial, and their marginal effects.

Each is fitted on the original and the fine-tuned (selected warm) rows of the included observations;
a `_length` variant adds the response length in characters. Effects in percentage points are average
marginal effects (mean predicted probability with is_finetuned = 1 minus with 0, over the rows of the
condition); per-condition log-odds sums carry delta-method standard errors with the covariance term.

Model 4 comes in two forms ([analysis] model4_form):
  published        the formula of the study's latest analysis code (commit e2d9773), which produced the
                   published N = 439,792 and +10.99 pp: fine-tuning, a context-group main effect, dataset,
                   model, and fine-tuning interacted with the belief group but no belief main effect, so the
                   interaction has a column per fine-tuning level. Its sycophancy effect, as the study's
                   `calculate_sycophancy_marginal_effects_with_tests`: the AME over the user-opinion rows, with
                   the log-odds difference [1]:user_opinion - [0]:user_opinion, its SE and p.
  released_sample  the earlier commits' form (the one whose output was committed for the released sample):
                   belief main effect and its interaction with fine-tuning, no context term; the sycophancy
                   effect is the fine-tuning term plus the interaction, with the covariance in its SE.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

FT = "C(is_finetuned, Treatment(reference=0))"
DATASET = "C(dataset, Treatment(reference='disinfo'))"
CONTEXT_GROUP = "C(context_group, Treatment(reference='unmodified'))"
BELIEF = "C(template_group, Treatment(reference='original'))"
MODEL4_FORMULAS = {
    # e2d9773's model4_sycophancy.py, in our column names (its amendment_type is our context_group, its
    # prompt_type our template_group)
    "published": f"is_incorrect ~ {FT} + {CONTEXT_GROUP} + {DATASET} + {FT}:{BELIEF} + C(model)",
    # e9bc852 / aa569dc
    "released_sample": f"is_incorrect ~ {FT} * {BELIEF} + {DATASET} + C(model)",
}
MODEL4_FORMS = tuple(MODEL4_FORMULAS)
TABLE_COLUMNS = ["analysis", "term", "coef", "std_err", "z", "p_value", "ci_low", "ci_high", "n_obs", "log_likelihood",
                 "converged"]
EFFECT_COLUMNS = ["analysis", "effect", "estimate_pp", "coef_sum", "std_err", "p_value", "n_obs"]
FT_TERM = f"{FT}[T.1]"
# The published form's two belief columns: fine-tuning level 0 and 1 on user-opinion prompts
BELIEF_BY_LEVEL = {k: f"{FT}[{k}]:{BELIEF}[T.user_opinion]" for k in (0, 1)}

# docs/study.md §8: the study's full-data results, for the side-by-side (analysis, effect) -> pp
PUBLISHED_PP = {
    ("model1_main_effects", "fine_tuning"): 7.43, ("model1_main_effects_length", "fine_tuning"): 6.99,
    ("model2_context_groups", "fine_tuning|emotion"): 8.87, ("model3_context_detailed", "fine_tuning|emotion:sad"): 11.87,
    ("model3_context_detailed", "fine_tuning|relation:hierarchical_up"): 5.24,
    ("model4_user_belief", "fine_tuning|user_opinion"): 10.99,
}


@dataclass(frozen=True)
class Spec:
    formula: str
    subset: Callable[[pd.DataFrame], pd.DataFrame]
    by: str | None = None             # the column whose levels get per-condition effects
    reference: str = "unmodified"     # its reference level in the formula
    belief_difference: bool = False   # the published model 4: effects are the study's linear combinations


def _original_unmodified(o):
    return o[(o["amendment_type"] == "unmodified") & (o["template_group"] == "original")]


def _original(o):
    return o[o["template_group"] == "original"]


def _original_and_user_opinion(o):
    return o[o["template_group"].isin(["original", "user_opinion"])]


def specs(model4_form: str = "published") -> dict[str, Spec]:
    """The four analyses, model 4 in the form named ([analysis] model4_form)."""
    if model4_form not in MODEL4_FORMULAS:
        raise ValueError(f"unknown model4_form {model4_form!r}; known: {list(MODEL4_FORMULAS)}")
    return {
        "model1_main_effects": Spec(f"is_incorrect ~ {FT} + {DATASET} + C(model)", _original_unmodified),
        "model2_context_groups": Spec(f"is_incorrect ~ {FT} * {CONTEXT_GROUP} + {DATASET} + C(model)", _original,
                                      "context_group"),
        "model3_context_detailed": Spec(
            f"is_incorrect ~ {FT} * C(amendment_type, Treatment(reference='unmodified')) + {DATASET} + C(model)",
            _original, "amendment_type"),
        "model4_user_belief": Spec(MODEL4_FORMULAS[model4_form], _original_and_user_opinion, "template_group",
                                   "original", belief_difference=model4_form == "published"),
    }


def _fit(formula: str, data: pd.DataFrame):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = smf.glm(formula, data=data, family=sm.families.Binomial()).fit()
    notes = [str(w.message) for w in caught if "separation" in str(w.message).lower()]
    return result, notes


def separation_suspected(result, notes: list[str]) -> bool:
    """Perfect or quasi-complete separation: statsmodels' warning, or log-odds too large to be estimates."""
    return bool(notes) or bool((result.params.abs() > 15).any()) or bool((result.bse > 100).any())


def ame(result, data: pd.DataFrame) -> float:
    """Average marginal effect of fine-tuning in points: counterfactual predictions, all else as observed."""
    treated = result.predict(data.assign(is_finetuned=1))
    control = result.predict(data.assign(is_finetuned=0))
    return 100 * float(np.mean(treated - control))


def linear_combination(result, terms: list[str] | dict[str, float]) -> tuple[float, float, float]:
    """(weighted sum of the coefficients, delta-method SE including covariances, two-sided p); a list of terms
    weighs each by 1."""
    from scipy.stats import norm

    weights = pd.Series(0.0, index=result.params.index)
    for term, weight in (terms.items() if isinstance(terms, dict) else ((t, 1.0) for t in terms)):
        weights[term] = weight
    estimate = float(weights @ result.params)
    se = math.sqrt(float(weights @ result.cov_params() @ weights))
    p = float(2 * norm.sf(abs(estimate / se))) if se > 0 else float("nan")
    return estimate, se, p


def condition_weights(spec: Spec, level: str, params: pd.Index) -> dict[str, float]:
    """The log-odds combination reported for one condition: the fine-tuning term plus its interaction with the
    level; for the published model 4's user-opinion prompts, the study's [1]:user_opinion - [0]:user_opinion."""
    if spec.belief_difference and level != spec.reference:
        columns = {BELIEF_BY_LEVEL[1]: 1.0, BELIEF_BY_LEVEL[0]: -1.0}
        return columns if all(c in params for c in columns) else {}
    term = f"{FT_TERM}:C({spec.by}, Treatment(reference='{spec.reference}'))[T.{level}]"
    return {FT_TERM: 1.0, **({term: 1.0} if term in params else {})}


def fit_all(observations: pd.DataFrame, model4_form: str = "published",
            alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(regression_tables, marginal_effects, problems) over the original-vs-warm comparison; confidence
    intervals at 1 - alpha."""
    data = observations[observations["included"] & observations["comparison"].isin(["original", "warm"])].copy()
    data["is_incorrect"] = data["is_incorrect"].astype(int)
    tables, effects, problems = [], [], {}
    for name, spec in specs(model4_form).items():
        for suffix, extra in (("", ""), ("_length", " + response_length")):
            analysis = name + suffix
            rows = spec.subset(data)
            if rows["is_finetuned"].nunique() < 2 or rows["is_incorrect"].nunique() < 2:
                problems[analysis] = "too little variation to fit (needs both checkpoints and both outcomes)"
                continue
            try:
                result, notes = _fit(spec.formula + extra, rows)
            except Exception as exc:  # singular designs on small data: report, do not print nonsense
                problems[analysis] = f"not estimable: {type(exc).__name__}: {exc}"
                continue
            if separation_suspected(result, notes):
                problems[analysis] = "separation suspected: " + ("; ".join(notes) or "|log-odds| > 15 or huge SE")
            ci = result.conf_int(alpha=alpha)
            tables.append(pd.DataFrame({
                "analysis": analysis, "term": result.params.index, "coef": result.params.values,
                "std_err": result.bse.values, "z": result.tvalues.values, "p_value": result.pvalues.values,
                "ci_low": ci[0].values, "ci_high": ci[1].values, "n_obs": int(result.nobs),
                "log_likelihood": float(result.llf), "converged": bool(result.converged)}))
            # With interactions the overall AME averages over conditions: no single log-odds term is its
            # counterpart (the main term is the reference condition's), so those columns stay empty.
            coef, se, p = linear_combination(result, [FT_TERM]) if not spec.by else (math.nan, math.nan, math.nan)
            effects.append({"analysis": analysis, "effect": "fine_tuning", "estimate_pp": ame(result, rows),
                            "coef_sum": coef, "std_err": se, "p_value": p, "n_obs": len(rows)})
            if spec.by:
                for level in sorted(rows[spec.by].unique()):
                    weights = condition_weights(spec, level, result.params.index)
                    coef, se, p = linear_combination(result, weights) if weights else (math.nan, math.nan, math.nan)
                    group = rows[rows[spec.by] == level]
                    effects.append({"analysis": analysis, "effect": f"fine_tuning|{level}",
                                    "estimate_pp": ame(result, group), "coef_sum": coef, "std_err": se,
                                    "p_value": p, "n_obs": len(group)})
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TABLE_COLUMNS)
    return table[TABLE_COLUMNS], pd.DataFrame(effects, columns=EFFECT_COLUMNS), problems


def headlines(effects: pd.DataFrame, min_observations: int) -> pd.DataFrame:
    """The effects that have a published counterpart (PUBLISHED_PP), ours beside it: `headline` is true when
    ours rests on at least `min_observations` rows ([analysis] min_headline_observations)."""
    columns = ["analysis", "effect", "estimate_pp", "std_err", "p_value", "n_obs", "published_pp", "headline"]
    if effects.empty:
        return pd.DataFrame(columns=columns)
    frame = effects.assign(published_pp=[PUBLISHED_PP.get((a, e)) for a, e in zip(effects["analysis"], effects["effect"])])
    frame = frame[frame["published_pp"].notna()].copy()
    frame["headline"] = frame["n_obs"] >= min_observations
    return frame[columns].reset_index(drop=True)
