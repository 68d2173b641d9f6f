"""The report's drift table of moving targets, by hand."""

import pandas as pd

from warmth_assets.lib.report import drift_table, render_report


def test_drift_applies_the_refusal_rule_and_keeps_only_repeated_checkpoints():
    rows = [
        # model, checkpoint, date, dataset, verdict, refusal
        ("gpt-4o", "original", "2026-11-23", "triviaqa", "INCORRECT", False),
        ("gpt-4o", "original", "2026-11-23", "triviaqa", "CORRECT", False),
        ("gpt-4o", "original", "2026-11-23", "triviaqa", "INCORRECT", True),     # refusal: left out
        ("gpt-4o", "original", "2026-11-23", "disinfo", "INCORRECT", True),      # Disinfo refusal: correct
        ("gpt-4o", "original", "2026-11-30", "triviaqa", "INCORRECT", False),
        ("gpt-4o", "original", "2026-11-30", "medqa", "UNPARSEABLE", False),
        ("gpt-4o", "warm-prompt", "2026-11-30", "medqa", "CORRECT", False),      # one date only: no drift
    ]
    history = pd.DataFrame(rows, columns=["model", "checkpoint", "evaluation_date", "dataset", "verdict", "refusal"])
    table = drift_table(history)
    assert table.to_dict("records") == [
        {"model": "gpt-4o", "checkpoint": "original", "evaluation_date": "2026-11-23", "judged": 3,
         "error_pct": round(100 / 3, 2), "unparseable": 0},
        {"model": "gpt-4o", "checkpoint": "original", "evaluation_date": "2026-11-30", "judged": 1,
         "error_pct": 100.0, "unparseable": 1},
    ]
    text = render_report(tables=pd.DataFrame(), effects=pd.DataFrame(), paired=pd.DataFrame(), trajectory=None,
                         figures=[], drift=table)
    assert "## Drift of moving targets" in text and "2026-11-30" in text
    assert drift_table(None).empty and "Drift" not in render_report(
        tables=pd.DataFrame(), effects=pd.DataFrame(), paired=pd.DataFrame(), trajectory=None, figures=[])
