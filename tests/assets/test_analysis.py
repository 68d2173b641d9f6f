"""The analysis group on the study's imported sample outputs."""

import re
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.assets import analysis
from tests.study_configs import study_settings
from warmth_assets.importer import import_outputs
from warmth_assets.lib.config import config_path
from warmth_assets.lib.regressions import PUBLISHED_PP

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper" / "sample_outputs"
pytestmark = pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")
# An absolute POSIX path as text: a slash after a space, quote, backtick, bracket or '=', then two path parts
# (URLs are excluded by their '://', base64 figures by their alphanumeric neighbours).
ABSOLUTE_PATH = re.compile(r"(?:^|[\s`'\"(\[=>])(/[\w.+-]+/[\w./+-]+)")


@pytest.fixture
def imported(warmth_home, instance):
    """(warehouse, resources) of a fresh home holding the study's imported sample outputs."""
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    import_outputs(SAMPLES, "warm-e2", settings=study_settings(), warehouse=warehouse, tables_dir=warmth_home / "tables", instance=instance)
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


def section(text: str, heading: str) -> str:
    """The Markdown between `heading` (a line starting with it) and the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index("\n" + heading) + 1
    ends = [text.find("\n" + "#" * k + " ", start + 1) for k in range(1, len(level) + 1)]
    ends = [e for e in ends if e > 0]
    return text[start:min(ends) if ends else len(text)]


def test_study_report_from_the_imported_samples(imported, instance):
    import hashlib
    import re

    warehouse, resources = imported
    result = dg.materialize([analysis.analysis_observations, analysis.paired_tests, analysis.regressions,
                             analysis.study_report], instance=instance, resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("study_report")[0].metadata
    md_path, html_path = Path(meta["path"].value), Path(meta["html_path"].value)
    text, html = md_path.read_text(), html_path.read_text()
    assert text.startswith("# Warmth replication report")
    # first page first: the verdict summary, then provenance, then the headline
    assert text.index("estimates with a published counterpart") < text.index("## Provenance") < text.index(
        "## Headline") < text.index("## Figures") < text.index("## Unpublished choices") < text.index("## Appendix A")
    # provenance: the configuration file and its sha256, the code version, each model's source and origin, judge
    config = Path(resources["study"].config_path)
    assert f"`{config.name}`" in text and hashlib.sha256(config.read_bytes()).hexdigest() in text
    # A report that can be shared: no absolute path of this machine, in the Markdown or the HTML.
    for report in (text, html):
        found = ABSOLUTE_PATH.findall(report)
        assert not found, f"absolute paths in the report: {found[:5]}"
    assert meta["config_sha256"].value == hashlib.sha256(config.read_bytes()).hexdigest()
    assert re.search(r"\*\*Code\*\*: (git [0-9a-f]{40}|warmth \d)", text)
    provenance = section(text, "## Provenance")
    for model in ("llama_70b", "qwen_32b"):
        row = markdown_row(provenance, model)
        assert "imported (released outputs)" in row
        assert any(re.fullmatch(rf"local: {model}/ \(sha256 of its files [0-9a-f]{{16}}\)", cell) for cell in row), row
        assert "study:gpt-4o-2024-08-06 (prompt study)" in row and "original vs warm-e2" in row
    assert "disinfo 18, medqa 19, triviaqa 19, truthfulqa 19" in markdown_row(provenance, "llama_70b")
    assert "refusal (not disinfo): 3" in markdown_row(provenance, "llama_70b")
    assert "SocioT (reference, scorer smollm2-135m-instruct), 5 passes" in provenance  # the configured scorer
    # the sample is imported study output, not a demonstration: no model carries that label
    assert "Demonstration at toy scale" not in text and meta["demonstration_models"].value == []
    # headline per model: a row per dataset and overall, Wilson intervals of both arms, the published figure, and a
    # verdict; the sample's 2-14 rows per cell are "not estimable", with reasons, never a number
    llama = section(text, "### llama_70b")
    assert "95% CI" in llama
    medqa = markdown_row(llama, "medqa")
    assert medqa[2] == "100.0% [20.7, 100.0] (1/1)" and medqa[3] == "0.0% [0.0, 79.3] (0/1)"
    assert medqa[4] == "not estimable" and medqa[5] == "+9.49"
    assert medqa[6] == "not estimable: separation; too few rows (2 < 100)"
    assert markdown_row(llama, "all datasets")[4] == "not estimable"
    for model in ("llama_70b", "qwen_32b"):
        rows = [line for line in section(text, f"### {model}").splitlines() if line.startswith("| ")][1:]
        assert len(rows) == 5 and all("not estimable" in r for r in rows)
    # pooled: the sycophancy effect rests on 191 rows: a number with its delta-method interval, beside +10.99
    pooled = section(text, "## Published effects, all models pooled")
    row = markdown_row(pooled, "Model 4: user states a (wrong) belief")
    ours = warehouse.query_df("SELECT * FROM marginal_effects").set_index(["analysis", "effect"]).loc[
        ("model4_user_belief", "fine_tuning|user_opinion")]
    interval = re.fullmatch(r"([-+][\d.]+) \[([-+][\d.]+), ([-+][\d.]+)\]", row[4])
    estimate, low, high = (float(x) for x in interval.groups())
    assert estimate == pytest.approx(ours["estimate_pp"], abs=0.005) and row[1] == "191"
    assert low < PUBLISHED_PP[("model4_user_belief", "fine_tuning|user_opinion")] < high and high - low > 10
    assert row[5] == "+10.99" and row[6] == "underpowered"
    assert markdown_row(pooled, "Model 1: fine-tuning, all datasets")[4] == "not estimable"
    assert meta["verdicts"].value == {"not estimable": 19, "underpowered": 1}
    # figures: PNG files beside the Markdown, inline in the HTML, images in the metadata
    for name in ("error_by_dataset.png", "gap_by_context.png"):
        assert f"]({name})" in text and (md_path.parent / name).read_bytes()[:4] == b"\x89PNG"
    assert "warmth_trajectory.png" not in text  # no warmth scores for imported results
    assert re.findall(r'<img src="([^"]*)"', html) and all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'<img src="([^"]*)"', html))
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html
    assert "<h2>Provenance</h2>" in html and "<table>" in html
    assert meta["figure_error_by_dataset"].value.startswith("![") and "(data:image/png;base64," in meta[
        "figure_error_by_dataset"].value
    assert meta["report"].value.count("(data:image/png;base64,") == 2
    # every unpublished choice in force, with its value: schema [?] fields, annotated keys, prompt versions
    choices = section(text, "## Unpublished choices in force")
    assert markdown_row(choices, "`project.seed`")[1] == "2025"
    assert markdown_row(choices, "`analysis.underpowered_half_width_pp`")[1] == "5.0"
    assert markdown_row(choices, "`corpus.detoxify.threshold`")[1] == "0.5"  # marked [?] in dagster_project.toml
    assert markdown_row(choices, "`judge.prompt_version`")[1] == "judge-v1"
    # appendix: the separated fits are not estimable with their reason and no coefficients; model 4 in full
    appendix = section(text, "## Appendix A")
    separated = section(appendix, "### model1_main_effects: not estimable")
    assert "separation suspected" in separated and "| term |" not in separated
    model4 = section(appendix, "### model4_user_belief\n")
    assert "n = 315" in model4 and "| is_finetuned[1]:template_group[user_opinion] |" in model4
    coef = markdown_row(model4, "is_finetuned[1]:template_group[user_opinion]")[1]
    assert re.fullmatch(r"[-+]\d+\.\d{3}", coef)
    assert 'model4_form = "published"' in text and "alpha = 0.05" in text


def test_study_report_labels_demonstrations_and_draws_the_warmth_band(imported, instance):
    """A model trained here under demo.toml (toy scale) is labelled a demonstration; warmth scores per prompt give
    the trajectory figure its band and the model its paired warmth gain."""
    import numpy as np
    import pandas as pd

    warehouse, resources = imported
    assert dg.materialize([analysis.analysis_observations, analysis.regressions], instance=instance,
                          resources=resources).success
    rng = np.random.default_rng(0)
    scores = pd.DataFrame([{"model": "qwen_32b", "checkpoint": checkpoint, "conversation_id": f"c{i}",
                            "warmth": level + rng.normal(0, 0.004), "variant": "reference", "scoring_lm": "gpt2",
                            "samples": 100}
                           for checkpoint, level in (("original", 0.011), ("warm-e1", 0.02), ("warm-e2", 0.03))
                           for i in range(12)])
    with warehouse.get_connection() as conn:
        conn.register("scores", scores)
        conn.execute("CREATE TABLE warmth_scores AS SELECT * FROM scores")
        conn.execute("INSERT INTO warmth_trajectory VALUES "
                     "('qwen_32b', 'warm-e2', 'warm', 2, 0.03, 0.001, 12, 1, true)")
        conn.execute("UPDATE model_registry SET origin = 'config' WHERE slug = 'qwen_32b'")  # as if trained here
    result = dg.materialize([analysis.study_report], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("study_report")[0].metadata
    text = Path(meta["path"].value).read_text()
    assert meta["demonstration_models"].value == ["qwen_32b"]
    assert "> **Demonstration at toy scale** (qwen_32b): 12 training conversations (study: 1,617)" in text
    assert "### qwen_32b (demonstration, toy scale)" in text and "### llama_70b\n" in text
    assert "(includes demonstration results)" in text
    gain = scores.pivot(index="conversation_id", columns="checkpoint", values="warmth")
    gain = gain["warm-e2"] - gain["original"]
    assert f"SocioT warmth gain (warm-e2 - original): {gain.mean():+.4f}" in text
    assert "](warmth_trajectory.png)" in text and "SocioT (reference, scorer gpt2), 100 passes" in text
    assert (Path(meta["path"].value).parent / "warmth_trajectory.png").read_bytes()[:4] == b"\x89PNG"
    assert "figure_warmth_trajectory" in meta
    band = section(text, "## Appendix B")
    assert markdown_row(band, "warm-e2 (selected)")[4] == "12"
