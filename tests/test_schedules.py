"""reevaluation_schedule: moving targets asked again on each evaluation date, earlier results kept."""

import datetime
from pathlib import Path

import dagster as dg
import pytest

from tests.pipeline_harness import Driver, JudgingFakeOpenAI, definitions, study_config, study_resources
from warmth_assets.assets import registry
from warmth_assets.partitions import model_checkpoint_key

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.needs_shared("data")
MODEL = "gpt-4o-2024-08-06"


def tick(driver: Driver, day: int) -> list[dg.RunRequest]:
    when = datetime.datetime(2026, 11, day, 3, tzinfo=datetime.timezone.utc)
    with dg.build_schedule_context(instance=driver.instance, scheduled_execution_time=when,
                                   resources=driver.resources) as context:
        result = driver.defs.get_schedule_def("reevaluation_schedule")(context)
    return [] if isinstance(result, dg.SkipReason) else list(result)


def test_moving_target_is_re_asked_per_date_and_history_kept(tmp_path, warmth_home, instance):
    server = JudgingFakeOpenAI().start()
    try:
        resources = study_resources(warmth_home, study_config(tmp_path, server, tmp_path), server)
        driver = Driver(definitions(resources), instance, resources)
        driver.execute([registry.model_registry.key], None)
        driver.execute([dg.AssetKey(k) for k in ("eval_items", "capability_items", "eval_prompts")], None)
        assert tick(driver, 23) == []  # nothing is a moving target yet

        with resources["warehouse"].get_connection() as conn:
            conn.execute("UPDATE model_registry SET moving_target = true WHERE slug = ?", [MODEL])
        for checkpoint in ("original", "warm-prompt"):
            driver.execute([dg.AssetKey("adapters")], model_checkpoint_key(MODEL, checkpoint))

        requests = tick(driver, 23)
        assert [r.partition_key for r in requests] == [model_checkpoint_key(MODEL, "original"),
                                                      model_checkpoint_key(MODEL, "warm-prompt")]
        # the job's partitions are the evaluation stage's: the evaluated checkpoints of the pipeline's models
        assert set(driver.defs.resolve_job_def("reevaluation").partitions_def.get_partition_keys(
            dynamic_partitions_store=instance)) == {str(model_checkpoint_key(MODEL, c))
                                                    for c in ("original", "warm-e2", "cold-e2", "warm-prompt")}
        assert requests[0].tags["warmth/evaluation_date"] == "2026-11-23"
        job = driver.defs.resolve_job_def("reevaluation")

        def run(request):
            result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                            tags=request.tags)
            assert result.success

        sent = lambda: sum(server.answered.values())  # noqa: E731
        before = sent()
        run(requests[0])
        first = sent() - before
        prompts = resources["warehouse"].query_df(
            "SELECT (SELECT count(*) FROM eval_prompts) + (SELECT count(*) FROM capability_items) AS n")["n"][0]
        assert first >= prompts  # every generation, and the judge

        run(requests[0])  # the same date again: every call answered from the cache
        assert sent() - before == first

        monday = tick(driver, 30)
        assert monday[0].tags["warmth/evaluation_date"] == "2026-11-30" and monday[0].run_key != requests[0].run_key
        before = sent()
        run(monday[0])
        # The generations are asked again (the date is in their cache key); the judge sees the very
        # same responses from this deterministic server, so its verdicts come from the cache.
        assert sent() - before == prompts

        history = resources["warehouse"].query_df(
            "SELECT evaluation_date, count(*) AS n FROM judgments_history WHERE model = ? AND checkpoint = 'original' "
            "GROUP BY 1 ORDER BY 1", [MODEL])
        assert history["evaluation_date"].tolist() == ["2026-11-23", "2026-11-30"]
        assert history["n"].nunique() == 1
        latest = resources["warehouse"].query_df("SELECT DISTINCT evaluation_date FROM generations")
        assert latest["evaluation_date"].tolist() == ["2026-11-30"]

        # The report shows the drift: one row per evaluation date of the re-evaluated checkpoint.
        report = driver.defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("study_report")])
        meta = report.asset_materializations_for_node("study_report")[0].metadata
        assert meta["moving_target_dates"].value == 2
        assert "Drift of moving targets (re-evaluated on a schedule)" in meta["report"].value
    finally:
        server.stop()


def test_only_evaluated_checkpoints_can_be_re_evaluated():
    """The schedule re-runs the evaluation stage, whose partitions are the evaluated checkpoints: a configuration
    asking for another is refused when it loads, not at a tick."""
    from tests.study_configs import study_settings

    with pytest.raises(ValueError, match=r"operations.reevaluate_checkpoints \['warm-e1'\]: not checkpoints the "
                                         r"evaluation stage runs for"):
        study_settings({"operations": {"reevaluate_checkpoints": ["warm-e1"]}}, new={"operations"})
    settings = study_settings({"operations": {"reevaluate_checkpoints": ["original", "warm-e2"]}}, new={"operations"})
    assert settings.operations.reevaluate_checkpoints == ["original", "warm-e2"]
