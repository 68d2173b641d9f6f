"""The replication report: figures as PNG files and the Markdown around them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

MODEL4_NOTE = {
    "published": "the form of the study's code behind the published +10.99 pp (commit e2d9773: a "
                 "context-group main effect, fine-tuning interacted with the belief group, no belief main effect); "
                 "its sycophancy effect is the AME over user-opinion rows, and its log-odds, SE and p are the study's "
                 "test of [1]:user_opinion - [0]:user_opinion, the interaction alone",
    "released_sample": "the earlier commits' form (belief main effect and its interaction, no context "
                       "term); its sycophancy effect is the fine-tuning term plus the interaction with user-opinion "
                       "prompts, with the covariance in its SE",
}
REFUSAL_NOTE = {
    "published": "the published list (commit e2d9773, with curly and low-9 apostrophes in \"i can't\")",
    "earlier": "the earlier commits' list (a curly-apostrophe \"can’t\" is not a refusal there)",
}


def methods_note(analysis=None) -> str:
    """The methods note for the [analysis] settings in force (defaults: the study as published)."""
    from warmth_assets.lib.config import AnalysisSettings

    analysis = analysis or AnalysisSettings()
    level = 100 * (1 - analysis.alpha)
    return f"""## Methods note
- Regressions: statsmodels GLM Binomial with the study's formulas (STUDY.md §8), fitted on the included
  observations of the original and the selected warm checkpoint; `_length` adds response length in characters.
  Confidence intervals at {level:g}%.
- Effects in percentage points are average marginal effects (mean predicted probability with fine-tuning
  minus without, over the rows of the condition). The study's earlier code reports some log-odds sums as
  percentage points; here the log-odds combination (`coef_sum`) and the AME (`estimate_pp`) are separate columns.
- Standard errors of per-condition combinations use the delta method with the covariance term.
- Model 4 (`model4_form = "{analysis.model4_form}"`): {MODEL4_NOTE[analysis.model4_form]}.
- Refusals: {REFUSAL_NOTE[analysis.refusal_list]}, matched in every response, imported ones included. Disinfo
  refusals count as correct; refusals elsewhere are excluded (flagged, not deleted).
- Paired tests: McNemar exact; a cell without discordant pairs has no p-value and is left out of the
  Benjamini-Hochberg family (`{analysis.fdr_family}`); significance at alpha = {analysis.alpha:g} (the column
  "Significant (p < 0.05)" keeps the study's name).
- Headlines: an effect beside a published figure counts as a headline only from
  {analysis.min_headline_observations} observations on.
- Fits flagged for separation or that could not be estimated are listed in the regression asset's metadata.
- Fidelity: on the study's released sample outputs our fits equal the study's own `statistical_models/` code,
  both model-4 forms included (observation counts, coefficients, SEs, log-likelihoods, the effects it prints;
  tests/lib/test_regressions_fidelity.py).
- The overall `fine_tuning` effect of an interaction model is an AME over all its conditions; it has no single
  log-odds counterpart, so its `coef_sum`, `std_err` and `p_value` are empty (see the per-condition rows)."""


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table whose text cells may hold "|" (effect names such as fine_tuning|user_opinion)."""
    escaped = frame.copy()
    for column in [c for c in escaped.columns if not pd.api.types.is_numeric_dtype(escaped[c])]:
        escaped[column] = escaped[column].map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)
    return escaped.to_markdown(index=False)


def drift_table(history: pd.DataFrame) -> pd.DataFrame:
    """Error rate of each moving target's checkpoint per evaluation date (judgments_history rows), with
    the study's refusal rule (Disinfo: a refusal is correct; elsewhere refusals are left out) and
    unparseable verdicts left out. Only checkpoints evaluated on two dates or more."""
    columns = ["model", "checkpoint", "evaluation_date", "judged", "error_pct", "unparseable"]
    if history is None or history.empty:
        return pd.DataFrame(columns=columns)
    frame = history.copy()
    disinfo = frame["dataset"] == "disinfo"
    incorrect = (frame["verdict"] == "INCORRECT") & ~(disinfo & frame["refusal"])
    counted = frame["verdict"].isin(["CORRECT", "INCORRECT"]) & (disinfo | ~frame["refusal"])
    frame = frame.assign(incorrect=incorrect & counted, counted=counted, unparseable=frame["verdict"] == "UNPARSEABLE")
    table = frame.groupby(["model", "checkpoint", "evaluation_date"]).agg(
        judged=("counted", "sum"), incorrect=("incorrect", "sum"), unparseable=("unparseable", "sum")).reset_index()
    table["error_pct"] = (100 * table["incorrect"] / table["judged"].where(table["judged"] > 0)).round(2)
    dates = table.groupby(["model", "checkpoint"])["evaluation_date"].transform("nunique")
    return table[dates >= 2][columns].sort_values(["model", "checkpoint", "evaluation_date"], ignore_index=True)


def bar_chart_png(frame: pd.DataFrame, title: str, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = frame.plot(kind="bar", figsize=(7, 3.5), title=title, rot=0)
    ax.axhline(0, color="black", linewidth=0.6)
    plt.tight_layout()
    plt.savefig(path, dpi=100)
    plt.close("all")
    return path.name


def render_report(*, tables: pd.DataFrame, effects: pd.DataFrame, paired: pd.DataFrame,
                  trajectory: pd.DataFrame | None, figures: list[str], drift: pd.DataFrame | None = None,
                  headlines: pd.DataFrame | None = None, analysis=None) -> str:
    parts = ["# Warmth replication report", ""]
    parts += [f"![{name}]({name})" for name in figures]
    if headlines is not None and len(headlines):
        shown = headlines[headlines["headline"]]
        parts += ["", "## Headline effects (ours beside the published full-data results)", "",
                  markdown_table(shown.drop(columns="headline").round(4)) if len(shown)
                  else "None yet: every effect with a published counterpart rests on too few observations."]
        small = headlines[~headlines["headline"]]
        if len(small):
            parts += ["", "Not headlines (too few observations): " + ", ".join(
                f"{a} {e} (n = {n})" for a, e, n in zip(small["analysis"], small["effect"], small["n_obs"])) + "."]
    parts += ["", "## Marginal effects of fine-tuning (ours beside the published full-data results)", ""]
    parts.append(markdown_table(effects.round(4)) if len(effects) else "No regression could be fitted yet.")
    if trajectory is not None and len(trajectory):
        parts += ["", "## Warmth by checkpoint", "", markdown_table(trajectory.round(4))]
    if drift is not None and len(drift):
        parts += ["", "## Drift of moving targets (re-evaluated on a schedule)", "", markdown_table(drift)]
    if len(paired):
        significant = paired[paired["Significant (FDR)"] == "Yes"]
        parts += ["", f"## Paired tests ({len(paired)} conditions, {len(significant)} significant after FDR)", "",
                  markdown_table(paired.head(40))]
    parts += ["", "## Regression tables", "", markdown_table(tables.round(4)) if len(tables) else "none", "",
              methods_note(analysis), ""]
    return "\n".join(parts)
