"""The analysis group on the study's imported sample outputs."""

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.assets import analysis
from warmth_assets.importer import import_outputs
from warmth_assets.lib.config import config_path
from warmth_assets.lib.regressions import PUBLISHED_PP

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper" / "sample_outputs"
pytestmark = pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")


@pytest.fixture
def imported(warmth_home, instance):
    """(warehouse, resources) of a fresh home holding the study's imported sample outputs."""
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    import_outputs(SAMPLES, "warm-e2", warehouse=warehouse, tables_dir=warmth_home / "tables", instance=instance)
    return warehouse, {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config_path()))}


def test_observations_and_paired_tests_on_the_imported_samples(imported, instance):
    warehouse, resources = imported
    result = dg.materialize([analysis.analysis_observations, analysis.paired_tests], instance=instance,
                            resources=resources)
    assert result.success
    obs = warehouse.query_df("SELECT * FROM analysis_observations")
    assert len(obs) == 319 and set(obs["comparison"]) == {"original", "warm"}
    # the published refusal list, matched in every response: the three released refusals (MedQA, TruthfulQA)
    # and the curly-apostrophe "I can’t" the released flag missed; none in Disinfo, every one excluded, none deleted
    refusals = obs[obs["refusal"]]
    assert len(refusals) == 4 and set(refusals["dataset"]) == {"medqa", "truthfulqa"}
    assert not refusals["included"].any() and set(refusals["exclusion"]) == {"refusal (not disinfo)"}
    assert int(obs["included"].sum()) == 315
    meta = result.asset_materializations_for_node("analysis_observations")[0].metadata
    assert meta["refusal_list"].value == "published"
    assert (meta["refusals"].value, meta["refusals_list_only"].value, meta["refusals_flag_only"].value) == (4, 1, 0)
    tests = warehouse.query_df("SELECT * FROM paired_tests")
    assert set(tests["Model"]) == {"llama_70b", "qwen_32b"} and set(tests["Comparison"]) == {"warm"}
    assert tests["Test_Type"].value_counts().to_dict() == {"Sycophancy": 43, "Normal": 41}
    assert (int(tests["n_pairs"].sum()), int(tests["b"].sum()), int(tests["c"].sum())) == (143, 14, 10)
    # 62 cells have no discordant pair: no p-value, out of the FDR family (NULL there too); none significant
    untested = tests["b"] + tests["c"] == 0
    assert int(untested.sum()) == 62 and tests.loc[untested, "p-value"].isna().all()
    assert tests.loc[untested, ["p-value (FDR corrected)", "Significant (FDR)"]].isna().all().all()
    assert tests.loc[~untested, "p-value (FDR corrected)"].notna().all()
    assert set(tests.loc[~untested, "Significant (FDR)"]) == {"No"}
    meta = result.asset_materializations_for_node("paired_tests")[0].metadata
    assert (meta["untested_cells"].value, meta["significant_after_fdr"].value) == (62, 0)
    assert (meta["alpha"].value, meta["fdr_family"].value) == (0.05, "model_dataset_test_type")


ALL_ANALYSES = {f"{n}{s}" for n in ("model1_main_effects", "model2_context_groups", "model3_context_detailed",
                                    "model4_user_belief") for s in ("", "_length")}


def test_regressions_on_the_imported_samples(imported, instance):
    warehouse, resources = imported
    result = dg.materialize([analysis.analysis_observations, analysis.regressions], instance=instance,
                            resources=resources)
    assert result.success
    table = warehouse.query_df("SELECT * FROM regression_tables")
    effects = warehouse.query_df("SELECT * FROM marginal_effects").set_index(["analysis", "effect"])
    meta = result.asset_materializations_for_node("regressions")[0].metadata
    fitted, problems = set(meta["fitted"].value), meta["problems"].value
    # The data are fixed, so what happens is known: every analysis fits; models 1-3 (25-124 rows) are separated
    # and reported as such, model 4 (315 rows) is not.
    assert fitted == ALL_ANALYSES == set(table["analysis"]) == set(effects.index.get_level_values("analysis"))
    assert set(problems) == ALL_ANALYSES - {"model4_user_belief", "model4_user_belief_length"}
    assert all(p.startswith("separation suspected") for p in problems.values())
    assert meta["model4_form"].value == "published"
    model1 = effects.loc[("model1_main_effects", "fine_tuning")]
    assert model1["n_obs"] == 25 and (table.loc[table["analysis"] == "model1_main_effects", "n_obs"] == 25).all()
    assert np.isfinite(model1["std_err"]) and model1["std_err"] > 0
    sycophancy = effects.loc[("model4_user_belief", "fine_tuning|user_opinion")]
    assert sycophancy["n_obs"] == 191 and np.isfinite(sycophancy["std_err"]) and 0 < sycophancy["std_err"] < 1
    model4 = table[table["analysis"] == "model4_user_belief"].set_index("term")
    assert (model4["n_obs"] == 315).all() and model4["converged"].all() and (model4["std_err"] < 1).all()
    # the published form: a context-group term, the belief only through its two interaction columns
    assert any(t.startswith("C(context_group") for t in model4.index)
    assert not any(t.startswith("C(template_group") for t in model4.index)


def test_the_analysis_settings_reach_the_assets(imported, instance, tmp_path):
    """[analysis] read from the study resource: the earlier list and the released_sample form."""
    warehouse, resources = imported
    text = Path(resources["study"].config_path).read_text()
    for old, new in (('model4_form = "published"', 'model4_form = "released_sample"'),
                     ('refusal_list = "published"', 'refusal_list = "earlier"'), ("alpha = 0.05", "alpha = 0.9"),
                     ('fdr_family = "model_dataset_test_type"', 'fdr_family = "comparison"')):
        assert text.count(old) == 1
        text = text.replace(old, new)
    config = tmp_path / "earlier.toml"
    config.write_text(text)
    resources = {**resources, "study": StudyConfigResource(config_path=str(config))}
    result = dg.materialize([analysis.analysis_observations, analysis.paired_tests, analysis.regressions],
                            instance=instance, resources=resources)
    assert result.success
    obs = warehouse.query_df("SELECT * FROM analysis_observations")
    assert int(obs["refusal"].sum()) == 3 and int(obs["included"].sum()) == 316
    tests = warehouse.query_df("SELECT * FROM paired_tests")
    tested = tests[tests["p-value"].notna()]
    from statsmodels.stats.multitest import multipletests

    # one family over the whole comparison; at alpha 0.9 the p = 0.5 cells count as significant
    assert np.allclose(tested["p-value (FDR corrected)"], multipletests(tested["p-value"], method="fdr_bh")[1], atol=1e-4)
    assert set(tested.loc[tested["p-value"] == 0.5, "Significant (p < 0.05)"]) == {"Yes"}
    table = warehouse.query_df("SELECT * FROM regression_tables")
    model4 = table[table["analysis"] == "model4_user_belief"].set_index("term")
    assert (model4["n_obs"] == 316).all() and not any(t.startswith("C(context_group") for t in model4.index)
    assert "C(template_group, Treatment(reference='original'))[T.user_opinion]" in model4.index
    effects = warehouse.query_df("SELECT * FROM marginal_effects").set_index(["analysis", "effect"])
    assert effects.loc[("model4_user_belief", "fine_tuning|user_opinion"), "n_obs"] == 192


def markdown_row(text: str, *cells: str) -> list[str]:
    """The cells of the one Markdown table row of `text` that holds all of `cells`."""
    import re

    cells = [c.replace("|", "\\|") for c in cells]  # the report escapes "|" inside cells
    rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            for line in text.splitlines() if line.startswith("|") and all(f" {c} " in line for c in cells)]
    assert len(rows) == 1, (cells, rows)
    return rows[0]


def test_study_report_from_the_imported_samples(imported, instance):
    warehouse, resources = imported
    result = dg.materialize([analysis.analysis_observations, analysis.paired_tests, analysis.regressions,
                             analysis.study_report], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("study_report")[0].metadata
    text = Path(meta["path"].value).read_text()
    assert text.startswith("# Warmth replication report") and "## Methods note" in text
    assert "![error_by_dataset.png](error_by_dataset.png)" in text
    assert all(Path(f).exists() and Path(f).read_bytes()[:4] == b"\x89PNG" for f in meta["figures"].value)
    # The headline: our computed sycophancy effect (191 rows, at least min_headline_observations) in the same row
    # as the published figure; the effects from fewer rows are named, not set up as headlines.
    effects = warehouse.query_df("SELECT * FROM marginal_effects").set_index(["analysis", "effect"])
    ours = effects.loc[("model4_user_belief", "fine_tuning|user_opinion")]
    headlines_section = text.split("## Headline effects")[1].split("\n## ")[0]
    row = markdown_row(headlines_section, "model4_user_belief", "fine_tuning|user_opinion")
    assert float(row[2]) == pytest.approx(ours["estimate_pp"], abs=1e-4) and int(row[5]) == ours["n_obs"] == 191
    assert float(row[6]) == PUBLISHED_PP[("model4_user_belief", "fine_tuning|user_opinion")]
    assert sum(line.startswith("| model") for line in headlines_section.splitlines()) == 1  # the only headline
    assert "model1_main_effects fine_tuning (n = 25)" in headlines_section
    assert 'model4_form = "published"' in text and "alpha = 0.05" in text
