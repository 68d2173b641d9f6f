"""A new model completes the pipeline by itself: the sensor registers it and requests its training,
declarative automation does the rest, and nobody else's partitions are recomputed."""

from pathlib import Path

import dagster as dg
import pytest

from tests.pipeline_harness import (Driver, JudgingFakeOpenAI, definitions, run_checks, seed_training_inputs,
                                    study_config, study_resources)
from warmth_assets.assets import evaluation, registry

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.needs_shared("data")

PER_CHECKPOINT = ["adapters", "validation_generations", "warmth_scores"]
EVALUATED = ["generations", "judgments", "capability_scores"]  # [evaluation] checkpoints = "selected_epoch"
SUMMARIES = ["warmth_trajectory", "analysis_observations", "paired_tests", "regression_tables", "study_report"]
OLD, NEW = "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"
CHECKPOINTS = ["original", "warm-e1", "warm-e2", "warm-prompt"]
EVALUATED_CHECKPOINTS = ["original", "warm-e2", "warm-prompt"]


def key(model: str, checkpoint: str) -> str:
    return str(dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint}))


def entries(model: str) -> list:
    """What the sensor requests for a model: its training run and the checkpoints that need none."""
    return [dg.MultiPartitionKey({"model": model, "style": "warm"}),
            dg.MultiPartitionKey({"model": model, "checkpoint": "original"}),
            dg.MultiPartitionKey({"model": model, "checkpoint": "warm-prompt"})]


@pytest.fixture
def server():
    fake = JudgingFakeOpenAI().start()
    yield fake
    fake.stop()


def test_a_new_snapshot_flows_through_without_touching_the_others(tmp_path, warmth_home, instance, server, tiny_gpt2):
    make_gpt2, tokenizer = tiny_gpt2
    scorer = tmp_path / "scorer"
    make_gpt2(0.1).save_pretrained(scorer)
    tokenizer.save_pretrained(scorer)
    resources = study_resources(warmth_home, study_config(tmp_path, server, scorer), server)
    defs = definitions(resources)
    driver = Driver(defs, instance, resources)

    # The study's fixed inputs: evaluation items and prompts built for real, the training data seeded.
    seed_training_inputs(warmth_home, resources, instance)
    run_checks(driver, dg.AssetCheckKey(dg.AssetKey("validation_prompts"), "validation_prompts_disjoint"))
    driver.execute([a.key for a in (registry.model_registry,)], None)
    driver.execute([dg.AssetKey(k) for k in ("eval_items", "capability_items", "eval_prompts")], None)
    assert driver.automate() == 0  # the first evaluation only takes stock

    # Tick 1: the configured model's training is requested; automation completes it.
    first = driver.tick()
    assert [r.partition_key for r in first.run_requests] == entries(OLD)
    driver.automate()
    for asset in PER_CHECKPOINT:
        assert driver.materializations(asset) == {key(OLD, c): 1 for c in CHECKPOINTS}, asset
    for asset in EVALUATED:
        assert driver.materializations(asset) == {key(OLD, c): 1 for c in EVALUATED_CHECKPOINTS}, asset
    assert driver.materializations("adapters").get(key(OLD, "cold-e1")) is None  # never had cold
    before = {asset: sum(driver.materializations(asset).values()) for asset in SUMMARIES}
    assert all(before.values()), before

    # Tick 2: nothing new, nothing requested twice.
    assert not driver.tick().run_requests and driver.automate() == 0

    # A new snapshot appears on /v1/models: registered, partitioned, trained, evaluated, analysed.
    server.models.append(NEW)
    third = driver.tick()
    assert [r.partition_key for r in third.run_requests] == entries(NEW)
    assert NEW in instance.get_dynamic_partitions("models")
    row = resources["warehouse"].query_df("SELECT origin, access, styles FROM model_registry WHERE slug = ?", [NEW])
    assert row["origin"][0] == "sensor" and row["access"][0] == "api" and list(row["styles"][0]) == ["warm"]
    driver.automate()
    for assets, checkpoints in ((PER_CHECKPOINT, CHECKPOINTS), (EVALUATED, EVALUATED_CHECKPOINTS)):
        for asset in assets:
            counts = driver.materializations(asset)
            assert counts == {key(m, c): 1 for m in (OLD, NEW) for c in checkpoints}, asset
    assert driver.materializations("finetune_runs") == {
        str(dg.MultiPartitionKey({"model": m, "style": "warm"})): 1 for m in (OLD, NEW)}
    for asset in SUMMARIES:
        assert sum(driver.materializations(asset).values()) > before[asset], asset
    judged = resources["warehouse"].query_df("SELECT DISTINCT model FROM analysis_observations ORDER BY 1")
    assert judged["model"].tolist() == [OLD, NEW]

    # And quiet again.
    assert not driver.tick().run_requests and driver.automate() == 0


def test_runnable_partitions_rule():
    from warmth_assets.automation import runnable_partitions

    runnable = runnable_partitions(
        {"m": [{"styles": ["warm"], "checkpoints": ["original", "warm-e1", "warm-e2", "warm-prompt"], "origin": "config"}],
         "study": [{"styles": ["warm"], "checkpoints": ["original", "warm-e2"], "origin": "import"}]},
        evaluated={"original", "warm-e2", "cold-e2", "warm-prompt"})
    assert runnable({"model": "m", "checkpoint": "warm-e1"}, "validation_generations")
    assert not runnable({"model": "m", "checkpoint": "warm-e1"}, "generations")  # not an evaluated checkpoint
    assert runnable({"model": "m", "checkpoint": "warm-e2"}, "judgments")
    assert not runnable({"model": "m", "checkpoint": "cold-e2"}, "generations")  # the model has no cold
    assert not runnable({"model": "m", "style": "cold"}, "finetune_runs") and runnable({"model": "m", "style": "warm"})
    assert not runnable({"model": "study", "checkpoint": "original"}, "judgments")  # imported results
    assert not runnable({"model": "unknown", "checkpoint": "original"}, "adapters")
