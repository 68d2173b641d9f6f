"""The report's appendix: the regression tables and marginal effects of the regressions asset, rounded, a fit
flagged for separation (or that could not be fitted) written as "not estimable" with its reason and no
coefficients; the significant paired tests; warmth per checkpoint with its interval; the judge against reference
match per dataset."""

from __future__ import annotations

import math
import re

import pandas as pd

NOT_ESTIMABLE = "not estimable"
_TERM = re.compile(r"C\((\w+)(?:, Treatment\(reference=[^)]*\))?\)\[(?:T\.)?([^\]]*)\]")
TERM_NOTE = ("Terms are shortened: `x[level]` is the indicator of that level of x against its reference (fine-tuning "
             "`is_finetuned`: original; `dataset`: disinfo; contexts: unmodified; belief `template_group`: original "
             "prompts; `model`: the first alphabetically). In the published Model 4, `is_finetuned[0]:...` and "
             "`is_finetuned[1]:...` are the belief columns of each fine-tuning level.")


def short_term(term: str) -> str:
    return _TERM.sub(lambda m: f"{m.group(1)}[{m.group(2)}]", term)


def _number(value, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None or pd.isna(value):
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def table_problems(tables: pd.DataFrame) -> dict[str, str]:
    """Separation read from the stored table, for when the regressions asset's `problems` metadata is not at hand:
    the same test as regressions.separation_suspected (|log-odds| > 15 or SE > 100), or no convergence."""
    problems = {}
    for analysis, rows in tables.groupby("analysis"):
        if (rows["coef"].abs() > 15).any() or (rows["std_err"] > 100).any():
            problems[analysis] = "separation suspected: |log-odds| > 15 or huge SE"
        elif not rows["converged"].astype(bool).all():
            problems[analysis] = "the fit did not converge"
    return problems


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|")


def regression_appendix(tables: pd.DataFrame, effects: pd.DataFrame, problems: dict[str, str], level: int) -> str:
    """One subsection per analysis: its marginal effects, then its coefficients; or "not estimable" and why."""
    analyses = sorted(set(tables["analysis"]) | set(effects["analysis"]) | set(problems))
    if not analyses:
        return "No regression has been fitted yet."
    parts = [TERM_NOTE]
    for analysis in analyses:
        rows = tables[tables["analysis"] == analysis]
        if analysis in problems:
            parts += ["", f"### {analysis}: {NOT_ESTIMABLE}", "", f"{NOT_ESTIMABLE}: {problems[analysis]}"
                      + (f" (n = {int(rows['n_obs'].iloc[0]):,}); no coefficients are shown." if len(rows) else ".")]
            continue
        n, llf = int(rows["n_obs"].iloc[0]), float(rows["log_likelihood"].iloc[0])
        parts += ["", f"### {analysis}", "", f"n = {n:,}, log-likelihood {llf:.1f}, converged: "
                  f"{'yes' if rows['converged'].astype(bool).all() else 'no'}.", ""]
        own = effects[effects["analysis"] == analysis]
        if len(own):
            lines = ["| effect | AME (pp) | log-odds | SE (log-odds) | p | n |", "|---|---|---|---|---|---|"]
            lines += [f"| {_esc(e.effect)} | {_number(e.estimate_pp, 2, True)} | {_number(e.coef_sum, 3, True)} | "
                      f"{_number(e.std_err)} | {_p(e.p_value)} | {int(e.n_obs):,} |" for e in own.itertuples()]
            parts += lines + [""]
        lines = [f"| term | coef | SE | z | p | {level}% CI |", "|---|---|---|---|---|---|"]
        lines += [f"| {_esc(short_term(r.term))} | {_number(r.coef, 3, True)} | {_number(r.std_err)} | "
                  f"{_number(r.z, 2, True)} | {_p(r.p_value)} | [{_number(r.ci_low, 3, True)}, "
                  f"{_number(r.ci_high, 3, True)}] |" for r in rows.itertuples()]
        parts += lines
    return "\n".join(parts)


def paired_appendix(paired: pd.DataFrame, limit: int = 40) -> str:
    if paired is None or paired.empty:
        return "No paired tests yet."
    significant = paired[paired["Significant (FDR)"] == "Yes"]
    text = (f"{len(paired):,} conditions, {int(paired['p-value'].notna().sum()):,} with discordant pairs (tested), "
            f"{len(significant):,} significant after Benjamini-Hochberg (table `paired_tests` in the warehouse).")
    if significant.empty:
        return text
    shown = significant.sort_values("p-value").head(limit)
    columns = ["Model", "Dataset", "Comparison", "Test_Type", "Amendment_type", "n_pairs", "Original Accuracy (%)",
               "Fine-tuned Accuracy (%)", "Raw Diff (pp)", "p-value (FDR corrected)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_esc(str(v).replace("\r\n", " ").replace("\n", " ")) for v in row) + " |"
              for row in shown[columns].itertuples(index=False)]
    return text + ("" if len(significant) <= limit else f" The {limit} smallest p-values:") + "\n\n" + "\n".join(lines)


def warmth_appendix(band: pd.DataFrame, selected: dict[str, str], level: int) -> str:
    if band is None or band.empty:
        return "No warmth scores: no checkpoint of these models was scored here (imported results carry none)."
    lines = [f"| model | checkpoint | mean warmth | {level}% CI across prompts | prompts |", "|---|---|---|---|---|"]
    for r in band.itertuples():
        mark = " (selected)" if selected.get(r.model) == r.checkpoint else ""
        lines.append(f"| {r.model} | {r.checkpoint}{mark} | {_number(r.mean, 4, True)} | "
                     f"[{_number(r.low, 4, True)}, {_number(r.high, 4, True)}] | {int(r.n):,} |")
    return "\n".join(lines)


def scorer_appendix(table: pd.DataFrame) -> str:
    """The LLM judge against reference match per dataset (`lib/agreement.scorer_agreement`)."""
    from warmth_assets.lib.agreement import markdown

    return ("Every TriviaQA and MedQA response judged here is also scored by reference match (the answer or an "
            "alias, or MedQA's correct option or its letter, found in the response; it does not read negation). "
            "Agreement and Cohen's kappa of the judge's own verdicts with it; a kappa is written as not estimable "
            "when both gave a single, identical label. Which scorer's verdicts the analysis uses: provenance, "
            "Verdict scorers.\n\n" + markdown(table))
