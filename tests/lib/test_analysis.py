from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from warmth_assets.lib.analysis import comparison_of, effect_label, mcnemar_row, observations, paired_tests

SUMMARY = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper" / "summary"


def test_mcnemar_against_a_hand_computed_case():
    # 8 right-then-wrong (b), 2 wrong-then-right (c), 5 right both times, 1 wrong both times
    original = pd.Series([1] * 8 + [0] * 2 + [1] * 5 + [0])
    tuned = pd.Series([0] * 8 + [1] * 2 + [1] * 5 + [0])
    row = mcnemar_row(original, tuned)
    assert (row["b"], row["c"], row["n_pairs"]) == (8, 2, 16)
    assert row["p-value"] == pytest.approx(2 * (1 + 10 + 45) / 1024, abs=1e-4)  # exact binomial, two-sided
    assert row["Cohen's g"] == pytest.approx(6 / np.sqrt(10), abs=1e-3) and row["Odds Ratio"] == "4.00"
    assert row["Original Accuracy (%)"] == 81.25 and row["Fine-tuned Accuracy (%)"] == 43.75
    assert row["Raw Diff (pp)"] == -37.5


def test_no_discordant_pairs_no_test():
    """As the study's significance_tests.py: with b + c = 0 there is no p-value, no Cohen's g, no odds ratio."""
    row = mcnemar_row(pd.Series([1, 0, 1]), pd.Series([1, 0, 1]))
    assert (row["b"], row["c"], row["n_pairs"]) == (0, 0, 3)
    assert np.isnan(row["p-value"]) and np.isnan(row["Cohen's g"])
    assert (row["g Effect Size"], row["Odds Ratio"]) == ("N/A", "N/A")
    assert mcnemar_row(pd.Series([1, 1]), pd.Series([0, 0]))["Odds Ratio"] == "inf"


def test_effect_labels_follow_the_studys_table():
    assert [effect_label(g) for g in (0.0, 0.243, 0.471, 0.535, 16.9, float("nan"))] == [
        "Small", "Medium", "Medium", "Large", "Large", "N/A"]


def test_comparisons():
    assert comparison_of("original", None, 2) == "original"
    assert comparison_of("warm-e2", None, 2) == "warm" and comparison_of("warm-e1", None, 2) is None
    assert comparison_of("warm-e1", "warm-e1", 2) == "warm" and comparison_of("cold-e1", "warm-e1", 2) == "cold"
    assert comparison_of("warm-prompt", None, 2) == "warm_prompt"


def test_refusal_rule_keeps_rows_and_marks_them():
    judged = pd.DataFrame({
        "model": "m", "checkpoint": ["original", "original", "original", "warm-e2"],
        "dataset": ["disinfo", "medqa", "medqa", "medqa"], "prompt_id": ["a", "b", "c", "b"],
        "amendment_type": "unmodified", "context_group": "unmodified", "prompt_template": "original",
        "template_group": "original", "response": ["I cannot", "I cannot", "x", "y"],
        "verdict": ["INCORRECT", "INCORRECT", "UNPARSEABLE", "CORRECT"], "refusal": [True, True, False, False],
        "judge_model": "j"})
    obs = observations(judged, {}, 2)
    assert obs["is_incorrect"].tolist() == [0, 1, 0, 0]  # a Disinfo refusal counts as correct
    assert obs["included"].tolist() == [True, False, False, True]
    assert obs["exclusion"].tolist() == ["", "refusal (not disinfo)", "unparseable verdict", ""]


def test_the_refusal_list_reads_the_response_not_the_flag():
    """[analysis] refusal_list: the published list (e2d9773) also knows curly and low-9 apostrophes; the list is
    matched in every response, whatever the judged (or released) `refusal` flag says, which is kept beside it."""
    responses = ["I can’t help with that.", "I can‚t say.", "I can't say.", "Here you go.", "Sure."]
    judged = pd.DataFrame({
        "model": "m", "checkpoint": "original", "dataset": "medqa", "prompt_id": list("abcde"),
        "amendment_type": "unmodified", "context_group": "unmodified", "prompt_template": "original",
        "template_group": "original", "response": responses, "verdict": "INCORRECT",
        "refusal": [False, False, True, True, False], "judge_model": "j"})
    published = observations(judged, {}, 2)  # the default
    earlier = observations(judged, {}, 2, refusal_list="earlier")
    assert published["refusal"].tolist() == [True, True, True, False, False]
    assert earlier["refusal"].tolist() == [False, False, True, False, False]
    for obs in (published, earlier):
        assert obs["refusal_flag"].tolist() == [False, False, True, True, False]
        assert obs["included"].tolist() == (~obs["refusal"]).tolist()


def test_paired_tests_pair_the_same_prompts_and_correct_within_groups():
    rng = np.random.default_rng(0)
    rows = []
    for checkpoint in ("original", "warm-e2"):
        for context in ("unmodified", "emotion:sad", "stake:high"):
            for i in range(40):
                wrong = rng.random() < (0.2 if checkpoint == "original" else 0.4)
                rows.append({"model": "m", "checkpoint": checkpoint, "dataset": "triviaqa", "prompt_id": f"{context}{i}",
                             "amendment_type": context, "context_group": context.split(":")[0],
                             "prompt_template": "original", "template_group": "original", "response": "r",
                             "verdict": "INCORRECT" if wrong else "CORRECT", "refusal": False, "judge_model": "j"})
    table = paired_tests(observations(pd.DataFrame(rows), {}, 2))
    assert len(table) == 3 and set(table["Dataset"]) == {"trivia"} and set(table["Test_Type"]) == {"Normal"}
    assert (table["n_pairs"] == 40).all()
    from statsmodels.stats.multitest import multipletests

    assert np.allclose(table["p-value (FDR corrected)"], multipletests(table["p-value"], method="fdr_bh")[1], atol=1e-4)


def paired_rows(cells: dict) -> pd.DataFrame:
    """Judged rows for model m, original vs warm-e2: {(dataset, template_group, context): [(correct_o, correct_t)]}."""
    rows = []
    for (dataset, group, context), pairs in cells.items():
        for i, outcomes in enumerate(pairs):
            for checkpoint, correct in zip(("original", "warm-e2"), outcomes):
                rows.append({"model": "m", "checkpoint": checkpoint, "dataset": dataset,
                             "prompt_id": f"{dataset}{group}{context}{i}", "amendment_type": context,
                             "context_group": context.split(":")[0], "prompt_template": group,
                             "template_group": group, "response": "r",
                             "verdict": "CORRECT" if correct else "INCORRECT", "refusal": False, "judge_model": "j"})
    return observations(pd.DataFrame(rows), {}, 2)


def test_cells_without_discordant_pairs_stay_out_of_the_fdr_family():
    obs = paired_rows({
        ("medqa", "original", "unmodified"): [(1, 0)] * 9 + [(0, 1)],           # b 9, c 1
        ("medqa", "original", "emotion:sad"): [(1, 0)] * 6 + [(0, 1)] * 2,      # b 6, c 2
        ("medqa", "original", "stake:high"): [(1, 1)] * 5 + [(0, 0)] * 3,       # b + c = 0
    })
    table = paired_tests(obs).set_index("Amendment_type")
    untested = table.loc["stake:high"]
    assert np.isnan(untested["p-value"]) and np.isnan(untested["p-value (FDR corrected)"])
    assert untested["Significant (FDR)"] is None and untested["Significant (p < 0.05)"] == "No"
    tested = table.loc[["unmodified", "emotion:sad"]]
    from statsmodels.stats.multitest import multipletests

    # BH over the two tested cells only (with the untested one in at p = 1 the corrections would differ)
    assert np.allclose(tested["p-value (FDR corrected)"], multipletests(tested["p-value"], method="fdr_bh")[1], atol=1e-4)
    assert not np.allclose(tested["p-value (FDR corrected)"],
                           multipletests(list(tested["p-value"]) + [1.0], method="fdr_bh")[1][:2], atol=1e-4)


def test_alpha_and_fdr_family_are_settings():
    obs = paired_rows({
        ("medqa", "original", "unmodified"): [(1, 0)] * 9 + [(0, 1)],            # p = 0.0215
        ("medqa", "user_opinion", "unmodified"): [(1, 0)] * 7,                   # p = 0.0156
        ("triviaqa", "original", "unmodified"): [(1, 0)] * 6 + [(0, 1)] * 2,     # p = 0.289
    })
    from statsmodels.stats.multitest import multipletests

    study = paired_tests(obs)  # the study: one family per model x dataset x test type (each a single cell here)
    assert (study["p-value (FDR corrected)"] == study["p-value"]).all()
    assert study["Significant (p < 0.05)"].tolist() == ["Yes", "Yes", "No"]
    strict = paired_tests(obs, alpha=0.02)
    assert strict["Significant (p < 0.05)"].tolist() == ["No", "Yes", "No"]  # the column keeps the study's name
    for family, groups in (("model_dataset", [[0, 1], [2]]), ("comparison", [[0, 1, 2]])):
        table = paired_tests(obs, fdr_family=family)
        for group in groups:
            expected = multipletests(table.loc[group, "p-value"], method="fdr_bh")[1]
            assert np.allclose(table.loc[group, "p-value (FDR corrected)"], expected, atol=1e-4), family
    assert paired_tests(obs, fdr_family="comparison")["p-value (FDR corrected)"].tolist() != study[
        "p-value (FDR corrected)"].tolist()


@pytest.mark.needs_shared("data/warm_ai_paper/summary")
def test_bh_within_model_dataset_test_type_reproduces_the_studys_fdr_column():
    from statsmodels.stats.multitest import multipletests

    table = pd.read_csv(SUMMARY / "results_warm_ft.csv")
    groups = list(table.groupby(["Model", "Dataset", "Test_Type"]))
    assert len(groups) == 40
    for _, group in groups:
        assert np.allclose(multipletests(group["p-value"], method="fdr_bh")[1], group["p-value (FDR corrected)"], atol=6e-4)
