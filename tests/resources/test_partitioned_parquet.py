"""Partitioned writes: one Parquet file per partition, DuckDB views over them, no lock failures."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = [
    ("smollm2-135m-instruct", "original"),
    ("smollm2-135m-instruct", "warm-e2"),
    ("other-model", "original"),
    ("other-model", "cold-e2"),
]


def test_partition_round_trip_through_the_view(instance, resources):
    from tests.fixtures.lock_probe import run

    instance.add_dynamic_partitions("models", ["smollm2-135m-instruct"])
    assert run("smollm2-135m-instruct", "warm-e1")
    df = resources["warehouse"].query_df("SELECT * FROM lock_probe_downstream")
    assert len(df) == 100
    assert set(df["model"]) == {"smollm2-135m-instruct"} and set(df["checkpoint"]) == {"warm-e1"}
    assert (df["doubled"] == df["row"] * 2).all()


def test_rematerialising_a_partition_replaces_it(instance, resources):
    from tests.fixtures.lock_probe import run

    instance.add_dynamic_partitions("models", ["smollm2-135m-instruct"])
    assert run("smollm2-135m-instruct", "original") and run("smollm2-135m-instruct", "original")
    assert resources["warehouse"].query_df("SELECT count(*) AS n FROM lock_probe")["n"][0] == 100


@pytest.mark.slow
def test_four_concurrent_partition_runs_never_fail_on_the_lock(instance, resources, warmth_home):
    instance.add_dynamic_partitions("models", sorted({m for m, _ in PARTITIONS}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.lock_probe", model, checkpoint],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for model, checkpoint in PARTITIONS
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
        assert "Could not set lock" not in out

    warehouse = resources["warehouse"]
    log = warehouse.query_df("SELECT * FROM lock_probe_log ORDER BY started")
    assert len(log) == 4 and log["pid"].nunique() == 4
    # The warehouse serialised the four writers: no two held the DuckDB file at once.
    assert (log["started"].iloc[1:].to_numpy() >= log["ended"].iloc[:-1].to_numpy() - 1e-3).all()
    counts = warehouse.query_df(
        "SELECT model, checkpoint, count(*) AS n FROM lock_probe_downstream GROUP BY ALL ORDER BY ALL"
    )
    assert sorted(zip(counts["model"], counts["checkpoint"])) == sorted(PARTITIONS)
    assert (counts["n"] == 100).all()
    runs = instance.get_run_records()
    assert len(runs) == 4 and all(r.dagster_run.is_success for r in runs)


def test_partitions_no_longer_configured_are_left_out_of_the_view(instance, resources, warmth_home):
    """A checkpoint epoch removed from the configuration keeps its file, but not a place in the view."""
    import pandas as pd

    from tests.fixtures.lock_probe import run

    stale = warmth_home / "tables" / "lock_probe" / "checkpoint=warm-e0.25" / "model=smollm2-135m-instruct"
    stale.mkdir(parents=True)
    pd.DataFrame({"row": [1], "text": ["old"], "model": ["smollm2-135m-instruct"],
                  "checkpoint": ["warm-e0.25"]}).to_parquet(stale / "data.parquet")
    instance.add_dynamic_partitions("models", ["smollm2-135m-instruct"])
    assert run("smollm2-135m-instruct", "original")
    view = resources["warehouse"].query_df("SELECT DISTINCT checkpoint FROM lock_probe")
    assert view["checkpoint"].tolist() == ["original"] and (stale / "data.parquet").exists()


def test_history_is_kept_per_evaluation_date_for_moving_targets_only(instance, resources, warmth_home):
    import dagster as dg
    import pandas as pd

    from tests.study_configs import study_settings
    from warmth_assets.partitions import model_checkpoint_key, study_partitions

    model_checkpoint_partitions = study_partitions(study_settings()).model_checkpoint

    instance.add_dynamic_partitions("models", ["alias", "pinned"])
    io = resources["parquet_io_manager"]

    def write(model: str, date: str, moving: bool) -> None:
        context = dg.build_output_context(asset_key=dg.AssetKey("generations"), partition_key=model_checkpoint_key(
            model, "original"), asset_partitions_def=model_checkpoint_partitions, instance=instance)
        io.handle_output(context, pd.DataFrame({"response": ["a", "b"], "evaluation_date": date, "moving_target": moving}))

    for date in ("2026-11-23", "2026-11-30"):
        write("alias", date, True)
        write("pinned", date, False)
    history = resources["warehouse"].query_df(
        "SELECT model, evaluation_date, count(*) AS n FROM generations_history GROUP BY ALL ORDER BY ALL")
    assert history.to_dict("records") == [{"model": "alias", "evaluation_date": "2026-11-23", "n": 2},
                                          {"model": "alias", "evaluation_date": "2026-11-30", "n": 2}]
    latest = resources["warehouse"].query_df("SELECT DISTINCT model, evaluation_date FROM generations ORDER BY 1")
    assert latest["evaluation_date"].tolist() == ["2026-11-30", "2026-11-30"]  # the partitions hold the latest
