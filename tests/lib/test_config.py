import re
from pathlib import Path

import pytest

from warmth_assets.lib.config import ConfigError, config_path, load_config, load_settings
from warmth_assets.lib.registry import model_checkpoints, registry_rows

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "dagster_project.toml"
DEMO = REPO / "demo.toml"


def test_study_file_holds_the_papers_values():
    s = load_settings(STUDY)
    assert s.corpus.training_conversations == 1617 and s.corpus.validation_prompts == 1500
    assert s.corpus.max_turns == 20
    assert s.corpus.query_types == ["refusal", "factual", "creative", "technical", "advice", "other"]
    assert s.finetune.checkpoint_epochs == [0.5, 1, 1.5, 2, 4, 6, 8, 10]
    lora = s.finetune.lora
    assert (lora.r, lora.alpha, lora.dropout, lora.learning_rate, lora.max_length) == (8, 16, 0.1, 1e-5, 1024)
    assert (lora.effective_batch_size, lora.epochs) == (16, 10)
    assert s.finetune.openai.learning_rate_multiplier == {"warm": 0.25, "cold": 0.1}
    assert (s.generation.evaluation.temperature, s.generation.evaluation.max_tokens,
            s.generation.capability.temperature) == (0.8, 300, 0.2)
    assert s.generation.wrong_answers.model_dump() == {"temperature": 0.0, "max_tokens": 24, "retry_temperature": 0.7}
    assert (s.judge.model, s.judge.temperature, s.judge.validation_sample) == ("gpt-4o-2024-08-06", 0.0, 470)
    assert s.evaluation.sizes == {"triviaqa": 500, "truthfulqa": 500, "medqa": 500, "disinfo": 125}
    assert (s.sociot.lm, s.sociot.samples, s.sociot.max_chars) == ("gpt2", 100, 300)
    sources = {m.slug: m.source for m in s.models}
    assert sources == {
        "llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
        "mistral-small-instruct-2409": "mistralai/Mistral-Small-Instruct-2409",
        "qwen-2.5-32b-instruct": "Qwen/Qwen2.5-32B-Instruct",
        "llama-3.1-70b-instruct": "meta-llama/Llama-3.1-70B-Instruct",
        "gpt-4o-2024-08-06": "gpt-4o-2024-08-06",
    }
    # Cold fine-tuning was run for Qwen-32B, Llama-70B and GPT-4o only.
    assert {m.slug for m in s.models if "cold" in m.styles} == {
        "qwen-2.5-32b-instruct", "llama-3.1-70b-instruct", "gpt-4o-2024-08-06"}
    assert len(s.checkpoint_keys()) == 18


def test_gpt4o_has_only_the_api_checkpoints():
    s = load_settings(STUDY)
    gpt = s.model("gpt-4o-2024-08-06")
    assert gpt.access == "api"
    assert model_checkpoints(gpt, s) == [
        "original", "warm-e1", "warm-e2", "warm-e6", "warm-e10",
        "cold-e1", "cold-e2", "cold-e6", "cold-e10", "warm-prompt"]
    rows = {r["slug"]: r for r in registry_rows(s)}
    assert rows["llama-3.1-8b-instruct"]["access"] == "open_weight"
    assert rows["llama-3.1-8b-instruct"]["checkpoints"][1] == "warm-e0.5"


def test_demo_file_uses_the_packaged_smollm2():
    s = load_settings(DEMO)
    assert [m.slug for m in s.models] == ["smollm2-135m-instruct"]
    assert s.models[0].source_kind == "gguf" and s.llm.provider == "local"


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(DEMO.read_text() + "\n" + text)
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(DEMO.read_text().replace("training_conversations", "training_conversation"))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message and "corpus.training_conversation" in message and "unknown key" in message


def test_wrong_type_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(re.sub(r"validation_prompts = \d+", 'validation_prompts = "thirty"', DEMO.read_text()))
    with pytest.raises(ConfigError, match=r"corpus\.validation_prompts: Input should be a valid integer"):
        load_settings(path)


def test_missing_model_file_is_reported(tmp_path):
    path = _write(tmp_path, '[[models]]\nslug = "mine"\nsource_kind = "gguf"\nsource = "nowhere.gguf"\nfamily = "x"\n')
    with pytest.raises(ConfigError, match=r"models\[1\]\.source: model file .*nowhere\.gguf does not exist"):
        load_settings(path)


def test_bad_slug_and_duplicates_are_refused(tmp_path):
    path = _write(tmp_path, '[[models]]\nslug = "My Model"\nsource_kind = "openai"\nsource = "x"\nfamily = "x"\n')
    with pytest.raises(ConfigError, match=r"models\[1\]\.slug: .*invalid model slug 'My Model'"):
        load_settings(path)
    path = _write(tmp_path, '[[models]]\nslug = "smollm2-135m-instruct"\nsource_kind = "openai"\nsource = "x"\nfamily = "x"\n')
    with pytest.raises(ConfigError, match="duplicate model slugs"):
        load_settings(path)


def test_model_epochs_must_be_checkpoint_partitions(tmp_path):
    path = _write(tmp_path, '[[models]]\nslug = "api"\nsource_kind = "openai"\nsource = "x"\nfamily = "x"\ncheckpoint_epochs = [3]\n')
    with pytest.raises(ConfigError, match=r"checkpoint epochs \['3'\]"):
        load_settings(path)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "absent.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("[corpus\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_warmth_config_selects_the_file(monkeypatch):
    monkeypatch.setenv("WARMTH_CONFIG", str(STUDY))
    assert config_path() == STUDY
    assert len(load_config().models) == 5
    monkeypatch.setenv("WARMTH_CONFIG", str(DEMO))
    assert len(load_config().models) == 1


def test_analysis_is_the_published_one_by_default(tmp_path):
    """[analysis]: both files spell out the defaults, and the defaults are the study's analysis as published."""
    from warmth_assets.lib.config import AnalysisSettings

    defaults = AnalysisSettings()
    assert (defaults.model4_form, defaults.refusal_list, defaults.alpha, defaults.fdr_family) == (
        "published", "published", 0.05, "model_dataset_test_type")
    for path in (STUDY, DEMO):
        assert "[analysis]" in path.read_text() and load_settings(path).analysis == defaults
    without = tmp_path / "without.toml"
    without.write_text(re.sub(r"^\[analysis\].*?(?=^\[)", "", DEMO.read_text(), flags=re.M | re.S))
    assert "[analysis]" not in without.read_text() and load_settings(without).analysis == defaults


@pytest.mark.parametrize("key, line, message", [
    ("model4_form", 'model4_form = "latest"', r"analysis\.model4_form: Input should be 'published' or 'released_sample'"),
    ("refusal_list", 'refusal_list = "corrected"', r"analysis\.refusal_list: Input should be 'published' or 'earlier'"),
    ("alpha", "alpha = 1.5", r"analysis\.alpha: Input should be less than 1"),
    ("fdr_family", 'fdr_family = "model"', r"analysis\.fdr_family: Input should be"),
    ("min_headline_observations", "min_headline_observation = 10", r"analysis\.min_headline_observation: unknown key"),
])
def test_bad_analysis_settings_name_the_key(tmp_path, key, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(re.sub(rf"^{key} = .*$", line, DEMO.read_text(), count=1, flags=re.M))
    assert line in path.read_text()
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
