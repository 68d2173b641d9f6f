"""One settings snapshot per code location: the file is read when the code location loads; runs started from it
(child processes, as Dagster starts runs and steps) keep those settings after the file is edited; a reload (a new
code-location process) reads the edit. Shown on `model_registry`, which writes the configured [[models]]."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from resources.study import StudyConfigResource
from tests.study_configs import study_data, write_study_config
from warmth_assets.lib.config.snapshot import SNAPSHOT_ENV, SettingsSnapshot, read_file

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _with_extra_model(tmp_path) -> Path:
    models = study_data()["models"]
    extra = {**models[0], "slug": "added-after-load"}
    return write_study_config(tmp_path, {"models": [*models, extra]})


def _registry(home: Path) -> set[str]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT slug FROM model_registry").fetchall()}


def test_the_snapshot_round_trips_the_settings_exactly():
    for name in ("dagster_project.toml", "demo.toml"):
        snapshot = read_file(REPO / name)
        assert SettingsSnapshot.from_json(snapshot.to_json()) == snapshot
        resource = StudyConfigResource.from_snapshot(snapshot)
        assert resource.settings == snapshot.settings and resource.sha256 == snapshot.sha256


@pytest.mark.slow
def test_an_edit_after_load_reaches_no_run_until_the_code_location_reloads(tmp_path, warmth_home, monkeypatch):
    config = write_study_config(tmp_path, {})
    monkeypatch.setenv("WARMTH_CONFIG", str(config))
    from warmth_assets.definitions import defs as load_defs

    defs = load_defs()  # the code location loads: its snapshot is taken here
    loaded = {m.slug for m in defs.resources["study"].settings.models}
    pinned = os.environ[SNAPSHOT_ENV]
    _with_extra_model(tmp_path)  # the file is edited after the load

    assert {m.slug for m in defs.resources["study"].settings.models} == loaded  # this process: unchanged
    # A run of the loaded code location: a child process, which loads the definitions again.
    run = subprocess.run([DAGSTER, "asset", "materialize", "-m", "warmth_assets.definitions", "--select",
                          "model_registry"], cwd=REPO, env={**os.environ, SNAPSHOT_ENV: pinned},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _registry(warmth_home) == loaded  # the edit did not reach the run

    # Reloaded: a new code-location process, not a child of the loaded one, reads the edited file.
    fresh = {k: v for k, v in os.environ.items() if k != SNAPSHOT_ENV}
    run = subprocess.run([DAGSTER, "asset", "materialize", "-m", "warmth_assets.definitions", "--select",
                          "model_registry"], cwd=REPO, env=fresh, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _registry(warmth_home) == loaded | {"added-after-load"}
    assert len(list((warmth_home / "settings").glob("*.json"))) == 2  # one snapshot per version of the file
