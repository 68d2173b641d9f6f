"""Agreement between two scorers of the same responses: the LLM judge against reference match (per dataset), or
the judge against human annotators. Percentage agreement and Cohen's kappa in closed form (tests pin the kappa
against statsmodels' `cohens_kappa`).

Kappa = (p_o - p_e) / (1 - p_e), with p_e the agreement expected from each scorer's own label frequencies. When
either scorer gave one label to every response, kappa is not estimated: it is 0/0 when both gave the same one,
and exactly 0 by construction otherwise (a constant scorer cannot agree beyond chance, whatever the responses),
so the number would say nothing about the responses. It is written out as such (`format_kappa`), never shown as
a number; the label counts beside it show which scorer gave one label only.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

LABELS = ("CORRECT", "INCORRECT")
NOT_ESTIMABLE = "not estimable (one label only)"
COLUMNS = ["dataset", "n", "agreement", "kappa", "judge_correct", "judge_incorrect", "reference_correct",
           "reference_incorrect", "judge_unparseable"]


def cohens_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; None when it is not estimated (no items, or a rater
    with one label only: module docstring). Elsewhere it equals statsmodels' `cohens_kappa` of the table."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} labels against {len(b)}")
    n = len(a)
    if not n or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    return (observed - expected) / (1 - expected)


def format_kappa(kappa: float | None) -> str:
    return NOT_ESTIMABLE if kappa is None or (isinstance(kappa, float) and math.isnan(kappa)) else f"{kappa:.2f}"


def agreement(a: list[str], b: list[str], label: str) -> dict:
    """`{label}_n`, `{label}_agreement` (a fraction), `{label}_kappa` (rounded, or NOT_ESTIMABLE)."""
    kappa = cohens_kappa(a, b)
    return {f"{label}_n": len(a), f"{label}_agreement": round(sum(x == y for x, y in zip(a, b)) / len(a), 4)
            if a else None, f"{label}_kappa": NOT_ESTIMABLE if kappa is None else round(kappa, 4)}


def scorer_agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: the judge (`judge_verdict`) against reference match (`reference_verdict`) on the responses
    both scored (rows without a reference verdict are not counted; an unparseable judge verdict is counted in
    `judge_unparseable` and left out of n). Columns: COLUMNS; `kappa` None where not estimable."""
    if frame is None or frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame = frame[frame["reference_verdict"].notna()]
    rows = []
    for dataset, group in frame.groupby("dataset", sort=True):
        known = group[group["judge_verdict"].isin(LABELS)]
        judge, reference = known["judge_verdict"].tolist(), known["reference_verdict"].tolist()
        rows.append({
            "dataset": dataset, "n": len(known),
            "agreement": sum(x == y for x, y in zip(judge, reference)) / len(known) if len(known) else None,
            "kappa": cohens_kappa(judge, reference),
            "judge_correct": judge.count("CORRECT"), "judge_incorrect": judge.count("INCORRECT"),
            "reference_correct": reference.count("CORRECT"), "reference_incorrect": reference.count("INCORRECT"),
            "judge_unparseable": int(len(group) - len(known)),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def describe(row) -> str:
    """One line: `triviaqa: 112 answers, agreement 64.3%, kappa 0.12; judge 90 CORRECT / 22 INCORRECT, reference
    match 14 / 98`."""
    share = "-" if row.agreement is None or pd.isna(row.agreement) else f"{row.agreement:.1%}"
    line = (f"{row.dataset}: {row.n} answers, agreement {share}, kappa {format_kappa(row.kappa)}; judge "
            f"{row.judge_correct} CORRECT / {row.judge_incorrect} INCORRECT, reference match "
            f"{row.reference_correct} / {row.reference_incorrect}")
    return line + (f" ({row.judge_unparseable} unparseable verdicts left out)" if row.judge_unparseable else "")


def markdown(table: pd.DataFrame) -> str:
    """The per-dataset table for metadata and the report."""
    if table is None or table.empty:
        return "No response was scored by both the judge and reference match."
    lines = ["| dataset | answers | agreement | Cohen's kappa | judge CORRECT / INCORRECT | reference match CORRECT / "
             "INCORRECT |", "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        share = "-" if row.agreement is None or pd.isna(row.agreement) else f"{row.agreement:.1%}"
        lines.append(f"| {row.dataset} | {row.n} | {share} | {format_kappa(row.kappa)} | {row.judge_correct} / "
                     f"{row.judge_incorrect} | {row.reference_correct} / {row.reference_incorrect} |")
    return "\n".join(lines)


def judged_pairs(warehouse) -> pd.DataFrame:
    """From `judgments` (any object with `query_df`): model, checkpoint, dataset, scorer, judge_verdict,
    reference_verdict of the rows that carry a reference verdict. Empty where judgments predate the columns."""
    wanted = ["model", "checkpoint", "dataset", "scorer", "judge_verdict", "reference_verdict"]
    columns = set(warehouse.query_df(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'judgments'")["column_name"])
    if not {"judge_verdict", "reference_verdict", "scorer"} <= columns:
        return pd.DataFrame(columns=wanted)
    return warehouse.query_df(f"SELECT {', '.join(wanted)} FROM judgments WHERE reference_verdict IS NOT NULL")
