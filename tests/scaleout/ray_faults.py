"""Faults on the local cluster, for real: a worker node killed (SIGKILL) while a step runs on it, and Postgres stopped
while a run is in flight. Each gives a clear error, and a re-run completes. Two steps that hold their node until
the test releases them (tests/scaleout/fault_defs.py); every wait ends on an event (a file, a process exit).

Collected last in test_ray_cluster.py, on that module's cluster (starting one costs about half a minute, stopping it
a few seconds): Postgres restarted first, then the lost worker, which leaves the cluster one node short."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.scaleout.conftest import DAGSTER, REPO, WARMTH, _tails, run_in_cluster
from warmth_assets.lib import local_cluster as stack

GENEROUS_S = 300  # bounds a wait that ends as soon as its event happens; never a measured time
STEPS = ["hold_a", "hold_b"]


@pytest.fixture(scope="module")
def faults(cluster):
    """The cluster with the steps' environment: they write to the lake, with the demo's settings."""
    home, env, state = cluster
    env = {**env, "WARMTH_WAREHOUSE": "ducklake", "WARMTH_CONFIG": str(REPO / "demo.toml")}
    prepared = run_in_cluster(env, str(Path(DAGSTER).parent / "python"), "-m", "warmth_assets.instance")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    return home, env, state


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + GENEROUS_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


def _start_run(env) -> subprocess.Popen:
    return subprocess.Popen([WARMTH, "cluster", "exec", "--", DAGSTER, "asset", "materialize", "-m",
                             "tests.scaleout.fault_defs", "--select", ",".join(STEPS)],
                            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _fresh(home: Path) -> None:
    for marker in (home / "started").glob("*"):  # globbing a missing folder yields nothing
        marker.unlink()
    (home / "release").unlink(missing_ok=True)


def _rerun_completes(home: Path, env) -> None:
    """Both steps again, released from the start: the run must succeed on what is left of the cluster."""
    _fresh(home)
    (home / "release").write_text("")
    again = subprocess.run([WARMTH, "cluster", "exec", "--", DAGSTER, "asset", "materialize", "-m",
                            "tests.scaleout.fault_defs", "--select", ",".join(STEPS)],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=GENEROUS_S)
    assert again.returncode == 0, f"{again.stdout[-3000:]}\n{again.stderr[-2000:]}\n{_tails(home)}"


def test_a_lost_worker_fails_its_step_clearly_and_a_rerun_completes_on_the_other(faults):
    home, env, _ = faults
    _fresh(home)
    run = _start_run(env)
    try:
        _wait_for(lambda: len(list((home / "started").glob("*"))) == 2 if (home / "started").exists() else False,
                  "both steps running, one on each worker")
        state = stack.read_state(home)
        # The node and everything running on it now (its raylet, workers, the step's job driver): a machine lost.
        for pid in stack._descendants(state.groups["ray-worker-1"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (home / "release").write_text("")
        output, _ = run.communicate(timeout=GENEROUS_S)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0, output[-3000:]
    failed = [line for line in output.splitlines() if "STEP_FAILURE" in line]
    assert len(failed) == 1, output[-4000:]  # the step on the lost node; the other finished
    assert "Ray job" in output and "STEP_SUCCESS" not in failed[0], output[-4000:]
    print("lost node:", next(line for line in output.splitlines() if "Discovered failed Ray job" in line
                             or "could not be found" in line)[-400:])

    _rerun_completes(home, env)
    _written_once(env)


def _written_once(env) -> None:
    """After the fault and the re-run: each step's partition and answers in the lake exactly once."""
    code = ("import json\nfrom resources.warehouses import default_warehouse\nw = default_warehouse()\n"
            "print(json.dumps([w.query_df('SELECT model, item FROM fault_results ORDER BY model, item').values.tolist(),"
            " w.query_df(\"SELECT request_key FROM llm_calls WHERE provider = 'test' ORDER BY request_key\")"
            "['request_key'].tolist()]))")  # the lake also holds the study backfill's calls (same cluster)
    done = run_in_cluster(env, str(Path(DAGSTER).parent / "python"), "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    rows, keys = json.loads(done.stdout.strip().splitlines()[-1])
    assert rows == [[step, i] for step in STEPS for i in range(4)]
    assert keys == [f"{step}-{i}" for step in STEPS for i in range(3)]


def test_postgres_stopped_mid_run_names_the_server_and_a_rerun_completes(faults):
    home, env, _ = faults
    _fresh(home)
    run = _start_run(env)
    state = stack.read_state(home)
    try:
        _wait_for(lambda: (home / "started").exists() and any((home / "started").glob("*")), "a step running")
        stack.postgres_stop(state)
        (home / "release").write_text("")
        output, _ = run.communicate(timeout=GENEROUS_S)
    finally:
        if run.poll() is None:
            run.kill()
        if not (state.folder / "postgres" / "postmaster.pid").exists():
            stack.postgres_start(state)
    assert run.returncode != 0
    named = [line for line in output.splitlines() if f'"127.0.0.1", port {state.pg_port}' in line
             or f"127.0.0.1:{state.pg_port}" in line]
    assert named, output[-3000:]  # the error names the server
    print("postgres stopped:", named[0][-300:])

    _rerun_completes(home, env)
    _written_once(env)
