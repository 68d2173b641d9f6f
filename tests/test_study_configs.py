"""The test helper that builds study configurations: overrides that match nothing fail, values are validated."""

import tomllib

import pytest
from pydantic import ValidationError

from tests.study_configs import REPO, deep_merge, load_toml, study_settings, to_toml, write_study_config
from warmth_assets.lib.config import load_settings


def test_an_override_that_matches_nothing_raises_naming_its_path():
    with pytest.raises(KeyError, match=r"judge\.validation_samples"):
        study_settings({"judge": {"validation_samples": 12}})  # misspelt
    with pytest.raises(KeyError, match=r"corpus\.max_length"):
        study_settings({"corpus": {"max_length": 64}})  # wrong section: it is corpus.detoxify.max_length
    with pytest.raises(KeyError, match="serving"):
        study_settings({"serving": {"vllm_base_url": "http://x"}})  # a table demo.toml does not have


def test_new_keys_are_allowed_when_named_and_each_name_must_be_used():
    settings = study_settings({"llm": {"base_url": "http://127.0.0.1:1/v1"},
                               "finetune": {"openai": {"poll_s": 0.5}}}, new={"llm.base_url", "finetune.openai"})
    assert settings.llm.base_url == "http://127.0.0.1:1/v1" and settings.finetune.openai.poll_s == 0.5
    with pytest.raises(KeyError, match="llm.base_url"):
        study_settings({}, new={"llm.base_url"})


def test_a_valid_override_validates_and_leaves_the_rest_as_the_base():
    settings = study_settings({"judge": {"validation_sample": 12}, "sociot": {"samples": 2}})
    base = load_settings(REPO / "demo.toml")
    assert settings.judge.validation_sample == 12 and settings.sociot.samples == 2
    assert settings.judge.model == base.judge.model and settings.models == base.models
    assert study_settings({"operations": {"budget_usd": 100}}, base="dagster_project.toml").operations.budget_usd == 100


def test_an_invalid_value_or_unknown_new_key_is_a_validation_error():
    with pytest.raises(ValidationError, match="validation_sample"):
        study_settings({"judge": {"validation_sample": -1}})
    with pytest.raises(ValidationError, match="extra"):
        study_settings({"judge": {"validation_samples": 1}}, new={"judge.validation_samples"})
    with pytest.raises(FileNotFoundError, match="models\\[0\\]"):
        study_settings({"models": [{"slug": "m", "source_kind": "gguf", "source": "nowhere.gguf", "family": "f"}]})


def test_lists_are_replaced_tables_merged_and_inputs_untouched():
    base = {"a": {"b": 1, "c": [1, 2]}, "models": [{"slug": "x"}, {"slug": "y"}]}
    merged = deep_merge(base, {"a": {"c": [3]}, "models": [{"slug": "z"}]})
    assert merged == {"a": {"b": 1, "c": [3]}, "models": [{"slug": "z"}]}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "models": [{"slug": "x"}, {"slug": "y"}]}
    with pytest.raises(TypeError, match="a.b"):
        deep_merge(base, {"a": {"b": {"d": 1}}})


def test_written_config_round_trips_through_the_loader(tmp_path):
    path = write_study_config(tmp_path, {
        "llm": {"base_url": 'http://h/"quoted"\\path\n'},
        "operations": {"watch": [{"kind": "openai_models", "pattern": r"gpt-4o-\d{4}"}], "budget_usd": 1.5},
        "compute": {"gpu_node_selector": {"nvidia.com/gpu.product": "H100"}},
    }, new={"llm.base_url", "operations", "compute.gpu_node_selector"})
    settings = load_settings(path)
    assert settings.llm.base_url == 'http://h/"quoted"\\path\n'
    assert settings.operations.watch[0].pattern == r"gpt-4o-\d{4}"
    assert settings.compute.gpu_node_selector == {"nvidia.com/gpu.product": "H100"}
    for base in ("demo.toml", "dagster_project.toml"):
        data = load_toml(base)
        assert tomllib.loads(to_toml(data)) == data
