"""build_defs: the definitions follow the settings they are given, and nothing reads the file at import."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resources.study import StudyConfigResource
from tests.study_configs import study_defs, study_settings, write_study_config
from warmth_assets.lib.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_partitions_sensor_schedule_and_jobs_come_from_the_settings_given():
    defs = study_defs({"finetune": {"checkpoint_epochs": [0.5]},
                       "operations": {"sensor_interval_s": 42, "reevaluation_cron": "0 5 * * *"}},
                      new={"operations"})
    [adapters] = [a for a in defs.assets if "adapters" in {k.to_user_string() for k in a.keys}]
    checkpoint = {d.name: d.partitions_def for d in adapters.partitions_def.partitions_defs}["checkpoint"]
    assert checkpoint.get_partition_keys() == ["original", "warm-e0.5", "cold-e0.5", "warm-prompt"]
    # From the lists, not defs.get_sensor_def: resolving wants the resources, built here without them.
    sensors, schedules = {s.name: s for s in defs.sensors}, {s.name: s for s in defs.schedules}
    assert sensors["new_model_sensor"].minimum_interval_seconds == 42
    assert schedules["reevaluation_schedule"].cron_schedule == "0 5 * * *"
    # The same names as before the factory: the UI, sensor cursors and run history refer to them.
    assert set(sensors) == {"new_model_sensor", "pipeline_automation"}
    assert {j.name for j in defs.jobs} == {"reevaluation", "training", "base_checkpoints", "warehouse_maintenance"}


def test_a_study_resource_with_other_settings_is_refused(tmp_path):
    other = write_study_config(tmp_path, {"finetune": {"checkpoint_epochs": [0.5]}})
    with pytest.raises(ConfigError, match="other settings"):
        study_defs(resources={"study": StudyConfigResource(config_path=str(other))})


def test_no_module_reads_the_configuration_at_import(tmp_path):
    """Every module imports with WARMTH_CONFIG naming a file that does not exist; loading the code location reads it."""
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for package in ("warmth_assets", "resources") for p in (REPO / package).rglob("*.py")
        if p.name != "__init__.py")
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    env = {**os.environ, "WARMTH_CONFIG": str(tmp_path / "missing.toml")}
    proc = subprocess.run([sys.executable, "-c", code, *modules], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warmth_assets.build" in modules and "warmth_assets.partitions" in modules

    # definitions.py too: the file is read when Dagster loads the code location (calls `defs`), not at import.
    load = "from warmth_assets.definitions import defs\ndefs()\n"
    proc = subprocess.run([sys.executable, "-c", load], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "missing.toml" in proc.stderr  # the code location does read it


def test_the_served_models_key_comes_from_envvar_vllm_api_key(tmp_path, monkeypatch):
    """The key of the [serving] vLLM server is Dagster's EnvVar("VLLM_API_KEY") (named in the UI, resolved when a run
    starts), absent when the variable is unset; never the value itself in the definitions."""
    import dagster as dg

    from resources.warehouse import WarehouseResource
    from warmth_assets.build import build_llm

    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    assert build_llm(study_settings(), warehouse).vllm_api_key is None
    monkeypatch.setenv("VLLM_API_KEY", "k-from-env")
    llm = build_llm(study_settings(), warehouse)
    assert isinstance(llm.vllm_api_key, dg.EnvVar) and llm.vllm_api_key.env_var_name == "VLLM_API_KEY"
    with dg.build_resources({"llm": llm}) as resolved:
        assert resolved.llm.vllm_api_key == "k-from-env"
