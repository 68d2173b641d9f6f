from pathlib import Path

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


# demo.toml: smollm2 trained warm and cold at epochs 1 and 2; the study's sample outputs imported at warm-e2.
DEMO_MODEL, IMPORTED = "smollm2-135m-instruct", ["llama_70b", "qwen_32b"]
ALL_CHECKPOINTS = ["original", "warm-e1", "warm-e2", "cold-e1", "cold-e2", "warm-prompt"]
EVALUATED = ["original", "warm-e2", "cold-e2", "warm-prompt"]  # [evaluation] checkpoints = "selected_epoch", epoch 2


def keys(models: list[str], checkpoints: list[str], dimension: str = "checkpoint") -> set[str]:
    return {str(dg.MultiPartitionKey({"model": m, dimension: c})) for m in models for c in checkpoints}


@pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")
def test_each_asset_shows_exactly_the_partitions_that_can_be_materialised(warmth_home, instance, resources):
    """The demo's definitions after `model_registry` and `warmth import-outputs`: the partition keys Dagster reports
    (what the partitions tab lists, what "all partitions" of a backfill targets) are those each asset can have."""
    from tests.study_configs import study_defs
    from warmth_assets.assets.registry import model_registry
    from warmth_assets.checks import model_registry_matches_partitions
    from warmth_assets.importer import import_outputs

    result = dg.materialize([model_registry, model_registry_matches_partitions], instance=instance, resources=resources)
    assert result.get_asset_check_evaluations()[0].passed
    samples = Path(__file__).resolve().parents[2] / "shared" / "data" / "warm_ai_paper" / "sample_outputs"
    import_outputs(samples, "warm-e2", settings=study_settings(), warehouse=resources["warehouse"],
                   tables_dir=warmth_home / "tables", instance=instance)

    shown = {key.to_user_string(): {str(k) for k in asset.partitions_def.get_partition_keys(
        dynamic_partitions_store=instance)}
        for asset in study_defs().assets if asset.partitions_def is not None for key in asset.keys}
    assert shown == {
        **{name: {"warm", "cold"} for name in ("style_rewrites", "rewrite_audit", "sft_datasets")},
        "finetune_runs": keys([DEMO_MODEL], ["warm", "cold"], "style"),
        **{name: keys([DEMO_MODEL], ALL_CHECKPOINTS) for name in ("adapters", "validation_generations", "warmth_scores")},
        **{name: keys([DEMO_MODEL], EVALUATED)
           for name in ("generations", "judgments", "capability_scores", "inspect_logs")},
        # the imported models where they exist, and there only: every partition materialised by the import
        "imported_outputs": keys(IMPORTED, ["original", "warm-e2"]),
    }
    assert set(instance.get_materialized_partitions(dg.AssetKey("imported_outputs"))) == shown["imported_outputs"]
    # their rows are where the analysis reads them, beside the demo model's
    judged = resources["warehouse"].query_df("SELECT DISTINCT model, checkpoint FROM judgments ORDER BY ALL")
    assert [tuple(r) for r in judged.itertuples(index=False)] == [(m, c) for m in IMPORTED for c in ("original", "warm-e2")]
    again = dg.materialize([model_registry, model_registry_matches_partitions], instance=instance, resources=resources)
    assert again.get_asset_check_evaluations()[0].passed  # the registry check agrees with both partitions


def test_an_instance_from_before_gets_its_imported_models_moved_out_of_models(instance, resources):
    """Before, `warmth import-outputs` added imported models to `models`: the registry check now fails on that,
    and `model_registry` moves them to `imported_models` (their old materialisations stay in the event log)."""
    from resources.model_registry import upsert
    from warmth_assets.assets.registry import model_registry
    from warmth_assets.checks import model_registry_matches_partitions
    from warmth_assets.lib.registry import ModelRow

    upsert(resources["warehouse"], [ModelRow(
        slug="llama_70b", source_kind="local", source="/released/llama_70b", family="llama_70b",
        chat_template="model", access="open_weight", styles=["warm"], checkpoints=["original", "warm-e2"],
        origin="import")])
    instance.add_dynamic_partitions("models", ["smollm2-135m-instruct", "llama_70b"])
    check_only = dg.materialize([model_registry, model_registry_matches_partitions], instance=instance,
                                resources=resources, selection=dg.AssetSelection.checks(model_registry_matches_partitions),
                                raise_on_error=False)
    (before,) = check_only.get_asset_check_evaluations()
    assert not before.passed and before.metadata["rows_without_partition"].value == ["llama_70b"]

    result = dg.materialize([model_registry, model_registry_matches_partitions], instance=instance, resources=resources)
    assert result.get_asset_check_evaluations()[0].passed
    assert result.asset_materializations_for_node("model_registry")[0].metadata[
        "moved_to_imported_models"].value == ["llama_70b"]
    assert instance.get_dynamic_partitions("models") == ["smollm2-135m-instruct"]
    assert instance.get_dynamic_partitions("imported_models") == ["llama_70b"]


def test_every_checkpoint_is_evaluated_when_configured_so():
    parts = study_partitions(study_settings({"evaluation": {"checkpoints": "all"}}, new={"evaluation.checkpoints"}))
    assert parts.model_evaluated is parts.model_checkpoint  # one definition: one implicit job, one partitions tab
    with pytest.raises(ValueError, match=r"unknown checkpoint 'warm-e1'; evaluated"):
        study_partitions(study_settings()).model_evaluated_key("ok", "warm-e1")
