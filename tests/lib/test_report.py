"""The report's assembly by hand: drift of moving targets, the appendix, Markdown with figures, the HTML page."""

import re

import numpy as np
import pandas as pd

from tests.study_configs import study_settings
from warmth_assets.lib import report_headline as rh
from warmth_assets.lib.report import Figure, ReportData, drift_table, embed_figures, render_report, to_html
from warmth_assets.lib.report_appendix import regression_appendix, short_term, table_problems

PNG = b"\x89PNG\r\n\x1a\n-not-really-a-picture"


def report_data(**changes) -> ReportData:
    settings = study_settings()
    empty = pd.DataFrame(columns=rh.COLUMNS)
    values = dict(settings=settings, provenance={"Configuration": "`demo.toml`", "Configuration sha256": "ab" * 32},
                  models=pd.DataFrame(), toy_notes=[], demos=set(), per_model=empty, pooled=empty, model_notes={},
                  figures=[], choices=pd.DataFrame(columns=["choice", "value in force", "note"]))
    values.update(changes)
    return ReportData(**values)


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
    text = render_report(report_data(drift=table))
    assert "## Appendix A: Drift of moving targets" in text and "2026-11-30" in text
    assert drift_table(None).empty and "Drift" not in render_report(report_data())


def test_headline_tables_write_not_estimable_never_a_number():
    row = dict(scope="m", dataset="medqa", label="warm - original", n=40, original_errors=4, original_n=20,
               warm_errors=8, warm_n=20, published_pp=9.49)
    per_model = pd.DataFrame([
        {**row, "estimate_pp": 20.0, "low_pp": -5.3, "high_pp": 45.3, "verdict": "underpowered", "reasons": ""},
        {**row, "dataset": "disinfo", "estimate_pp": np.nan, "low_pp": np.nan, "high_pp": np.nan, "published_pp": 1.61,
         "verdict": "not estimable", "reasons": "separation; too few rows (40 < 100)"},
    ], columns=rh.COLUMNS)
    text = render_report(report_data(per_model=per_model, demos={"m"}, toy_notes=["12 training conversations"],
                                     model_notes={"m": "Compared: original vs warm-e2."}))
    assert "> **Demonstration at toy scale** (m): 12 training conversations." in text
    assert "### m (demonstration, toy scale)\n\nCompared: original vs warm-e2." in text
    assert ("| medqa | 40 | 20.0% [8.1, 41.6] (4/20) | 40.0% [21.9, 61.3] (8/20) | +20.00 [-5.30, +45.30] | +9.49 "
            "| underpowered |") in text
    assert "| disinfo | 40 | 20.0% [8.1, 41.6] (4/20) | 40.0% [21.9, 61.3] (8/20) | not estimable | +1.61 | " \
           "not estimable: separation; too few rows (40 < 100) |" in text
    assert text.startswith("# Warmth replication report\n\nOf 2 estimates with a published counterpart: 0 consistent, "
                           "0 differs, 1 underpowered, 1 not estimable.")
    assert "appendix A." in text and "## Appendix A: Methods note" in text


def test_regression_appendix_hides_the_coefficients_of_a_separated_fit():
    tables = pd.DataFrame([
        ("model1_main_effects", "Intercept", -1.2, 0.5, -2.4, 0.016, -2.2, -0.2, 25, -10.0, True),
        ("model1_main_effects", "C(is_finetuned, Treatment(reference=0))[T.1]", -22.6, 30106.5, 0.0, 0.99, -5e4, 5e4,
         25, -10.0, True),
        ("model4_user_belief", "Intercept", -2.76449, 0.60482, -4.571, 4.8e-6, -3.95, -1.58, 315, -162.04, True),
        ("model4_user_belief", "C(dataset, Treatment(reference='disinfo'))[T.medqa]", 1.67112, 0.4721, 3.54, 0.0004,
         0.746, 2.596, 315, -162.04, True),
    ], columns=["analysis", "term", "coef", "std_err", "z", "p_value", "ci_low", "ci_high", "n_obs", "log_likelihood",
                "converged"])
    effects = pd.DataFrame([("model4_user_belief", "fine_tuning|user_opinion", 6.450217, 0.31138, 0.574239, 0.5876,
                             191)],
                           columns=["analysis", "effect", "estimate_pp", "coef_sum", "std_err", "p_value", "n_obs"])
    problems = table_problems(tables)
    assert problems == {"model1_main_effects": "separation suspected: |log-odds| > 15 or huge SE"}
    text = regression_appendix(tables, effects, {**problems, "model2_context_groups": "too little variation to fit"},
                               95)
    separated = text.split("### model1_main_effects: not estimable")[1].split("###")[0]
    assert "not estimable: separation suspected" in separated and "(n = 25)" in separated
    assert "-22.6" not in text and "30106" not in text and "| term |" not in separated
    assert "### model2_context_groups: not estimable\n\nnot estimable: too little variation to fit." in text
    assert "| Intercept | -2.764 | 0.605 | -4.57 | <0.001 | [-3.950, -1.580] |" in text
    assert "| dataset[medqa] | +1.671 | 0.472 | +3.54 | <0.001 | [+0.746, +2.596] |" in text
    assert "| fine_tuning\\|user_opinion | +6.45 | +0.311 | 0.574 | 0.588 | 191 |" in text
    assert short_term("C(is_finetuned, Treatment(reference=0))[1]:C(template_group, Treatment(reference='original'))"
                      "[T.user_opinion]") == "is_finetuned[1]:template_group[user_opinion]"
    assert short_term("C(model)[T.qwen_32b]") == "model[qwen_32b]"


def test_figures_are_files_in_markdown_and_inline_in_html_and_metadata():
    figure = Figure("error_by_dataset.png", "Error rate by dataset", PNG)
    text = render_report(report_data(figures=[figure]))
    assert "![Error rate by dataset](error_by_dataset.png)" in text
    embedded = embed_figures(text, [figure])
    assert "](error_by_dataset.png)" not in embedded and "(data:image/png;base64,iVBORw0KGgot" in embedded
    html = to_html(text, [figure])
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<h2>Provenance</h2>" in html and "<h2>Unpublished choices in force</h2>" in html
