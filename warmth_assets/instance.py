"""Prepare the Dagster instance in DAGSTER_HOME: the shipped dagster.yaml and the `gpu` pool limit; with
WARMTH_PG_HOST set, runs, events and schedules in that Postgres (deploy/postgres/dagster.yaml)."""

import os
from pathlib import Path

import yaml

from warmth_assets.lib import paths
from warmth_assets.lib.config import StudySettings, load_config

GPU_POOL = "gpu"
MAINTENANCE_POOL = "warehouse_maintenance"  # warmth_assets/maintenance.py


def write_instance_yaml(settings: StudySettings, home: Path) -> Path:
    shipped = yaml.safe_load((paths.repo_root() / "dagster.yaml").read_text())
    if os.environ.get("WARMTH_PG_HOST"):  # a cluster's Postgres (`warmth cluster up`): runs and events there
        shipped.update(yaml.safe_load((paths.repo_root() / "deploy" / "postgres" / "dagster.yaml").read_text()))
    shipped.setdefault("concurrency", {}).setdefault("runs", {})["max_concurrent_runs"] = (
        settings.compute.max_concurrent_runs
    )
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    text = "# Written by warmth_assets.instance from the project's dagster.yaml; edit that one.\n"
    text += yaml.safe_dump(shipped, sort_keys=False)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


def prepare_instance(settings: StudySettings | None = None):
    """The persistent instance of DAGSTER_HOME, configured; dynamic partitions live there."""
    import dagster as dg

    settings = settings or load_config()
    home = paths.dagster_home()
    write_instance_yaml(settings, home)
    instance = dg.DagsterInstance.from_config(str(home))
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, settings.compute.gpu_pool_limit)
    instance.event_log_storage.set_concurrency_slots(MAINTENANCE_POOL, 1)  # compaction, one at a time
    return instance


if __name__ == "__main__":
    instance = prepare_instance()
    print(f"Dagster instance ready in {paths.dagster_home()} (pool '{GPU_POOL}' limit set)")
    instance.dispose()
