import dagster as dg
import pytest

from resources.model_registry import upsert
from warmth_assets.assets.registry import model_registry
from warmth_assets.checks import model_registry_matches_partitions
from warmth_assets.lib.registry import ModelRow


def _materialize(instance, resources):
    return dg.materialize(
        [model_registry, model_registry_matches_partitions], instance=instance, resources=resources, raise_on_error=False
    )


def _check_passed(result) -> bool:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation.passed


def test_registry_rows_and_partitions_from_config(instance, resources):
    result = _materialize(instance, resources)
    assert result.success and _check_passed(result)
    rows = resources["warehouse"].query_df("SELECT * FROM model_registry")
    assert rows["slug"].tolist() == ["smollm2-135m-instruct"]
    row = rows.iloc[0]
    assert (row.source_kind, row.access, row.origin, row.family) == ("gguf", "open_weight", "config", "smollm2")
    assert list(row.checkpoints) == ["original", "warm-e1", "warm-e2", "cold-e1", "cold-e2", "warm-prompt"]
    assert instance.get_dynamic_partitions("models") == ["smollm2-135m-instruct"]
    metadata = result.asset_materializations_for_node("model_registry")[0].metadata
    assert metadata["dagster/row_count"].value == 1
    assert metadata["partitions_added"].value == ["smollm2-135m-instruct"]


def test_rerun_is_idempotent_and_keeps_added_at(instance, resources):
    _materialize(instance, resources)
    first = resources["warehouse"].query_df("SELECT added_at, updated_at FROM model_registry")
    result = _materialize(instance, resources)
    second = resources["warehouse"].query_df("SELECT added_at, updated_at FROM model_registry")
    assert len(second) == 1 and second["added_at"][0] == first["added_at"][0]
    assert second["updated_at"][0] >= first["updated_at"][0]
    assert result.asset_materializations_for_node("model_registry")[0].metadata["partitions_added"].value == []
    assert instance.get_dynamic_partitions("models") == ["smollm2-135m-instruct"]


def test_rows_from_elsewhere_get_partitions(instance, resources):
    upsert(resources["warehouse"], [ModelRow(slug="gpt-4o-2024-11-20", source_kind="openai", source="gpt-4o-2024-11-20",
                                             family="gpt-4o", chat_template="model", access="api", styles=["warm"],
                                             checkpoints=["original"], origin="sensor")])
    result = _materialize(instance, resources)
    assert result.success and _check_passed(result)
    assert sorted(instance.get_dynamic_partitions("models")) == ["gpt-4o-2024-11-20", "smollm2-135m-instruct"]


def test_check_fails_on_a_partition_without_registry_row(instance, resources):
    instance.add_dynamic_partitions("models", ["ghost-model"])
    result = _materialize(instance, resources)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["partitions_without_row"].value == ["ghost-model"]
