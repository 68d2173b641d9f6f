import dagster as dg
import pytest

from tests.study_configs import study_settings
from warmth_assets.lib.slugs import InvalidSlugError
from warmth_assets.partitions import model_checkpoint_key, models_partitions, study_partitions


def test_partitions_follow_the_settings_given():
    # The epochs are stated here, so each expected key follows from a literal in this test, not from a file.
    parts = study_partitions(study_settings({"finetune": {"checkpoint_epochs": [1, 2]}}))
    assert parts.checkpoint.get_partition_keys() == [
        "original", "warm-e1", "warm-e2", "cold-e1", "cold-e2", "warm-prompt"]
    assert parts.style.get_partition_keys() == ["warm", "cold"]
    assert isinstance(models_partitions, dg.DynamicPartitionsDefinition) and models_partitions.name == "models"
    assert {d.name for d in parts.model_checkpoint.partitions_defs} == {"model", "checkpoint"}

    other = study_partitions(study_settings({"finetune": {"checkpoint_epochs": [0.5]}}))
    assert other.checkpoint.get_partition_keys() == ["original", "warm-e0.5", "cold-e0.5", "warm-prompt"]


def test_multi_partition_keys_are_built_not_concatenated():
    key = model_checkpoint_key("smollm2-135m-instruct", "warm-e1")
    assert key == "warm-e1|smollm2-135m-instruct"  # dimensions sorted by name
    assert key.keys_by_dimension == {"model": "smollm2-135m-instruct", "checkpoint": "warm-e1"}


def test_bad_keys_are_refused():
    with pytest.raises(InvalidSlugError):
        model_checkpoint_key("bad|slug", "original")
    with pytest.raises(ValueError, match="unknown checkpoint 'warm-e3'"):
        study_partitions(study_settings({"finetune": {"checkpoint_epochs": [1, 2]}})).model_checkpoint_key("ok",
                                                                                                     "warm-e3")
