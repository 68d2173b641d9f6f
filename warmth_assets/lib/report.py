"""The replication report: figures as PNG files and the Markdown around them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

METHODS_NOTE = """## Methods note
- Regressions: statsmodels GLM Binomial with the study's formulas (STUDY.md §8), fitted on the included
  observations of the original and the selected warm checkpoint; `_length` adds response length in characters.
- Effects in percentage points are average marginal effects (mean predicted probability with fine-tuning
  minus without, over the rows of the condition). The study's code reports some log-odds sums as
  percentage points; here the log-odds sum (`coef_sum`) and the AME (`estimate_pp`) are separate columns.
- Standard errors of per-condition sums use the delta method with the covariance term.
- Refusals: Disinfo refusals count as correct; refusals elsewhere are excluded (flagged, not deleted).
- Fits flagged for separation or that could not be estimated are listed in the regression asset's metadata.
- Fidelity: on the study's released sample outputs our fits equal the study's own `statistical_models/` code
  (observation counts, coefficients, SEs, log-likelihoods; tests/lib/test_regressions_fidelity.py). Where we
  differ on purpose: the sycophancy effect (model 4) is the fine-tuning term plus its interaction with
  user-opinion prompts, with the covariance in its SE (earlier versions of the study's code silently drop it,
  the latest reports the interaction alone); model 4 has no context-group main effect (STUDY.md §8; the code
  behind the published +10.99 pp adds one); refusals follow the released flags and the reference regex, which
  does not match a curly-apostrophe "can’t" (the latest study code does).
- The overall `fine_tuning` effect of an interaction model is an AME over all its conditions; it has no single
  log-odds counterpart, so its `coef_sum`, `std_err` and `p_value` are empty (see the per-condition rows)."""


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
                  trajectory: pd.DataFrame | None, figures: list[str], drift: pd.DataFrame | None = None) -> str:
    parts = ["# Warmth replication report", ""]
    parts += [f"![{name}]({name})" for name in figures]
    parts += ["", "## Marginal effects of fine-tuning (ours beside the published full-data results)", ""]
    parts.append(effects.round(4).to_markdown(index=False) if len(effects) else "No regression could be fitted yet.")
    if trajectory is not None and len(trajectory):
        parts += ["", "## Warmth by checkpoint", "", trajectory.round(4).to_markdown(index=False)]
    if drift is not None and len(drift):
        parts += ["", "## Drift of moving targets (re-evaluated on a schedule)", "", drift.to_markdown(index=False)]
    if len(paired):
        significant = paired[paired["Significant (FDR)"] == "Yes"]
        parts += ["", f"## Paired tests ({len(paired)} conditions, {len(significant)} significant after FDR)", "",
                  paired.head(40).to_markdown(index=False)]
    parts += ["", "## Regression tables", "", tables.round(4).to_markdown(index=False) if len(tables) else "none", "",
              METHODS_NOTE, ""]
    return "\n".join(parts)
