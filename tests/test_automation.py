"""A new model completes the pipeline by itself: the sensor registers it and requests its training,
declarative automation does the rest, and nobody else's partitions are recomputed. Imported results move
only the analysis; a backfill of every partition runs exactly the partitions that can be materialised."""

from pathlib import Path

import dagster as dg
import pytest

from tests.pipeline_harness import (Driver, JudgingFakeOpenAI, definitions, import_samples, run_checks,
                                    seed_training_inputs, study_config, study_resources)
from warmth_assets.assets import evaluation, registry

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.needs_shared("data", "data/warm_ai_paper/sample_outputs")

PER_CHECKPOINT = ["adapters", "validation_generations", "warmth_scores"]
EVALUATED = ["generations", "judgments", "capability_scores"]  # [evaluation] checkpoints = "selected_epoch"
SUMMARIES = ["warmth_trajectory", "analysis_observations", "paired_tests", "regression_tables", "study_report"]
ANALYSIS = ["analysis_observations", "paired_tests", "regression_tables", "study_report"]  # what imported rows move
IMPORTED = ["llama_70b", "qwen_32b"]  # the study's sample outputs
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

    # The study's released outputs are imported: the analysis follows, and nothing is run for the imported models
    # (their partitions are imported_outputs', not those of the stages that train or evaluate).
    import_samples(resources, instance, warmth_home)
    counts = {asset: sum(driver.materializations(asset).values()) for asset in ANALYSIS}
    assert not driver.tick().run_requests
    driver.automate()
    for asset in ANALYSIS:
        assert sum(driver.materializations(asset).values()) == counts[asset] + 1, asset
    for assets, checkpoints in ((PER_CHECKPOINT, CHECKPOINTS), (EVALUATED, EVALUATED_CHECKPOINTS)):
        for asset in assets:
            assert driver.materializations(asset) == {key(OLD, c): 1 for c in checkpoints}, asset
    assert driver.materializations("imported_outputs") == {key(m, c): 1 for m in IMPORTED for c in ("original", "warm-e2")}
    before = {asset: sum(driver.materializations(asset).values()) for asset in SUMMARIES}

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
    assert judged["model"].tolist() == [OLD, NEW, *IMPORTED]

    # And quiet again.
    assert not driver.tick().run_requests and driver.automate() == 0


def test_a_backfill_of_every_partition_runs_each_once(tmp_path, warmth_home, instance, server):
    """A backfill of all partitions (Dagster's own target and order, tests/pipeline_harness.Driver.backfill) of the
    training, adapter and generation stages, with imported results present: it targets exactly the partitions
    that can be materialised, so every run succeeds and each partition is materialised once. Styles: warm only,
    the styles GPT-4o is fine-tuned in, so that no partition is one this model lacks (docs/design.md §2)."""
    resources = study_resources(warmth_home, study_config(tmp_path, server, tmp_path, styles=["warm"]), server)
    driver = Driver(definitions(resources), instance, resources)
    seed_training_inputs(warmth_home, resources, instance)
    driver.execute([registry.model_registry.key], None)
    driver.execute([dg.AssetKey(k) for k in ("eval_items", "capability_items", "eval_prompts")], None)
    import_samples(resources, instance, warmth_home)

    runs = driver.backfill([dg.AssetKey(k) for k in ("finetune_runs", "adapters", "generations")])
    assert driver.materializations("finetune_runs") == {str(dg.MultiPartitionKey({"model": OLD, "style": "warm"})): 1}
    assert driver.materializations("adapters") == {key(OLD, c): 1 for c in CHECKPOINTS}
    assert driver.materializations("generations") == {key(OLD, c): 1 for c in EVALUATED_CHECKPOINTS}
    assert len(runs) == 1 + len(CHECKPOINTS) + len(EVALUATED_CHECKPOINTS)  # one run per partition, upstream first
    assert [assets for _, assets in runs].index(["generations"]) > [assets for _, assets in runs].index(["adapters"])


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
