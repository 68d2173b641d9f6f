"""Every `warmth` verb answers a user's mistake (a bad or missing configuration, an unknown model, a missing folder)
with one line naming the file, key or value, exit status 2 and no traceback; `--debug` shows the traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

WARMTH = str(Path(sys.executable).parent / "warmth")


@pytest.fixture
def env(tmp_path):
    (tmp_path / "misspelt.toml").write_text((Path(__file__).resolve().parents[1] / "demo.toml").read_text()
                                            .replace("[sociot]\n", "[sociot]\nsampels = 3\n", 1))
    return {**{k: v for k, v in os.environ.items() if k not in ("WARMTH_CONFIG", "WARMTH_SETTINGS_SNAPSHOT",
                                                                 "VLLM_API_KEY")},
            "WARMTH_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "home" / "dagster")}


CASES = [
    (["estimate"], "misspelt.toml", "sociot.sampels: unknown key"),
    (["demo"], "misspelt.toml", "sociot.sampels: unknown key"),
    (["estimate"], "missing.toml", "missing.toml: configuration file not found"),
    (["stale"], "misspelt.toml", "sociot.sampels: unknown key"),
    (["stale", "--select", "no_such_asset"], None, "unknown asset 'no_such_asset'; assets: adapters, "),
    (["vllm-command", "no-such-model"], None, "model 'no-such-model' is not in the configuration"),
    (["serve", "no-such-model"], None, "model 'no-such-model' is not in the configuration"),
    (["vllm-command", "gpt-4o-2024-08-06"], None, "is an API model"),
    (["import-outputs", "/nowhere/at/all"], None, "/nowhere/at/all: not a folder"),
    (["cluster", "exec", "--", "true"], None, "no cluster under"),
    (["serve", "smollm2-135m-instruct", "--host", "0.0.0.0"], None, "beyond loopback, where the server requires an "
     "API key: export VLLM_API_KEY"),
]


@pytest.mark.parametrize("verb, config, said", CASES, ids=[" ".join(c[0][:2]) + f" {c[1] or ''}" for c in CASES])
def test_a_users_mistake_gets_one_line_and_status_2(tmp_path, env, verb, config, said):
    if config:
        env["WARMTH_CONFIG"] = str(tmp_path / config)
    done = subprocess.run([WARMTH, *verb], env=env, capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-2000:]
    assert lines[-1].startswith(f"warmth {verb[0]}") and said in lines[-1], lines[-1]


def test_debug_shows_the_traceback(tmp_path, env):
    done = subprocess.run([WARMTH, "--debug", "vllm-command", "no-such-model"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" in done.stderr and "UnknownModel" in done.stderr


def test_a_warehouse_from_a_newer_duckdb_or_a_lake_without_its_postgres_is_one_line(tmp_path, env):
    import gzip

    home = Path(env["WARMTH_HOME"])
    home.mkdir(parents=True)
    (home / "warehouse.duckdb").write_bytes(gzip.decompress(
        (Path(__file__).parent / "fixtures" / "written_by_duckdb_2.0.1.duckdb.gz").read_bytes()))
    lake = {k: v for k, v in env.items() if not k.startswith("WARMTH_PG_")}
    for extra, said in (({}, "was written by a newer DuckDB"),
                        ({"WARMTH_WAREHOUSE": "ducklake"}, "needs the catalog's Postgres: set WARMTH_PG_HOST")):
        done = subprocess.run([WARMTH, "estimate"], env={**lake, **extra}, capture_output=True, text=True, timeout=300)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-2000:]
        assert said in lines[-1], lines[-1]
