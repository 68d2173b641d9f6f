"""The study's four logistic regressions (STUDY.md §8), statsmodels GLM Binomial, and their marginal effects.

Each is fitted on the original and the fine-tuned (selected warm) rows of the included observations;
a `_length` variant adds the response length in characters. Effects in percentage points are average
marginal effects (mean predicted probability with is_finetuned = 1 minus with 0, over the rows of the
condition); per-condition log-odds sums carry delta-method standard errors with the covariance term.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

FT = "C(is_finetuned, Treatment(reference=0))"
DATASET = "C(dataset, Treatment(reference='disinfo'))"
SPECS = {
    "model1_main_effects": (f"is_incorrect ~ {FT} + {DATASET} + C(model)",
                            lambda o: o[(o["amendment_type"] == "unmodified") & (o["template_group"] == "original")],
                            None),
    "model2_context_groups": (f"is_incorrect ~ {FT} * C(context_group, Treatment(reference='unmodified')) + {DATASET} + C(model)",
                              lambda o: o[o["template_group"] == "original"], "context_group"),
    "model3_context_detailed": (f"is_incorrect ~ {FT} * C(amendment_type, Treatment(reference='unmodified')) + {DATASET} + C(model)",
                                lambda o: o[o["template_group"] == "original"], "amendment_type"),
    "model4_user_belief": (f"is_incorrect ~ {FT} * C(template_group, Treatment(reference='original')) + {DATASET} + C(model)",
                           lambda o: o[o["template_group"].isin(["original", "user_opinion"])], "template_group"),
}
TABLE_COLUMNS = ["analysis", "term", "coef", "std_err", "z", "p_value", "ci_low", "ci_high", "n_obs", "log_likelihood",
                 "converged"]
EFFECT_COLUMNS = ["analysis", "effect", "estimate_pp", "coef_sum", "std_err", "p_value", "n_obs"]
FT_TERM = f"{FT}[T.1]"


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


def linear_combination(result, terms: list[str]) -> tuple[float, float, float]:
    """(sum of the coefficients, delta-method SE including covariances, two-sided p)."""
    from scipy.stats import norm

    weights = pd.Series(0.0, index=result.params.index)
    weights[terms] = 1.0
    estimate = float(weights @ result.params)
    se = math.sqrt(float(weights @ result.cov_params() @ weights))
    p = float(2 * norm.sf(abs(estimate / se))) if se > 0 else float("nan")
    return estimate, se, p


def fit_all(observations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(regression_tables, marginal_effects, problems) over the original-vs-warm comparison."""
    data = observations[observations["included"] & observations["comparison"].isin(["original", "warm"])].copy()
    data["is_incorrect"] = data["is_incorrect"].astype(int)
    tables, effects, problems = [], [], {}
    for name, (formula, subset, by) in SPECS.items():
        for suffix, extra in (("", ""), ("_length", " + response_length")):
            analysis = name + suffix
            rows = subset(data)
            if rows["is_finetuned"].nunique() < 2 or rows["is_incorrect"].nunique() < 2:
                problems[analysis] = "too little variation to fit (needs both checkpoints and both outcomes)"
                continue
            try:
                result, notes = _fit(formula + extra, rows)
            except Exception as exc:  # singular designs on small data: report, do not print nonsense
                problems[analysis] = f"not estimable: {type(exc).__name__}: {exc}"
                continue
            if separation_suspected(result, notes):
                problems[analysis] = "separation suspected: " + ("; ".join(notes) or "|log-odds| > 15 or huge SE")
            ci = result.conf_int()
            tables.append(pd.DataFrame({
                "analysis": analysis, "term": result.params.index, "coef": result.params.values,
                "std_err": result.bse.values, "z": result.tvalues.values, "p_value": result.pvalues.values,
                "ci_low": ci[0].values, "ci_high": ci[1].values, "n_obs": int(result.nobs),
                "log_likelihood": float(result.llf), "converged": bool(result.converged)}))
            # With interactions the overall AME averages over conditions: no single log-odds term is its
            # counterpart (the main term is the reference condition's), so those columns stay empty.
            coef, se, p = linear_combination(result, [FT_TERM]) if not by else (math.nan, math.nan, math.nan)
            effects.append({"analysis": analysis, "effect": "fine_tuning", "estimate_pp": ame(result, rows),
                            "coef_sum": coef, "std_err": se, "p_value": p, "n_obs": len(rows)})
            if by:
                for level in sorted(rows[by].unique()):
                    term = f"{FT}[T.1]:C({by}, Treatment(reference='{'original' if by == 'template_group' else 'unmodified'}'))[T.{level}]"
                    terms = [FT_TERM] + ([term] if term in result.params.index else [])
                    coef, se, p = linear_combination(result, terms)
                    group = rows[rows[by] == level]
                    effects.append({"analysis": analysis, "effect": f"fine_tuning|{level}",
                                    "estimate_pp": ame(result, group), "coef_sum": coef, "std_err": se,
                                    "p_value": p, "n_obs": len(group)})
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TABLE_COLUMNS)
    return table[TABLE_COLUMNS], pd.DataFrame(effects, columns=EFFECT_COLUMNS), problems
