"""The scale-out stack for real on this machine, as `warmth cluster up` starts it for a user: Postgres (Dagster's
runs and events), a Ray head with no CPUs and two worker nodes of one CPU and one logical GPU, all in a network
namespace holding only loopback. Four GPU-tagged steps run through `dagster_ray.ray_executor` (the pinned
dagster-ray: this test guards the pin). `warmth cluster down` leaves no process behind. The study's backfill, the
concurrent writers and the faults run on the same cluster, collected below."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scaleout.conftest import _tails, local_cluster, run_in_cluster

REPO = Path(__file__).resolve().parents[2]
WARMTH = str(Path(sys.executable).parent / "warmth")
pytestmark = [pytest.mark.slow, pytest.mark.scaleout]


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(workers=2) as started:
        yield started


def _exec(env, *command, timeout=600) -> subprocess.CompletedProcess:
    return run_in_cluster(env, *command, timeout=timeout)


def test_the_stack_listens_on_loopback_only(cluster):
    home, env, state = cluster
    stack = {p for part in state["pids"].values() for p in part}
    outside = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    listening_outside = {int(p) for p in re.findall(r"pid=(\d+)", outside)}
    assert not stack & listening_outside, "a process of the stack listens in the machine's own namespace"
    inside = _exec(env, "ss", "-ltnH").stdout.splitlines()
    assert inside, "nothing listens in the cluster's namespace: the check would be empty"
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in inside}
    assert addresses <= {"127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "*", "[::]"}, addresses  # only `lo` exists there
    status = subprocess.run([WARMTH, "cluster", "status"], env=env, capture_output=True, text=True, timeout=300)
    assert "accepting connections" in status.stdout and "3 nodes alive" in status.stdout, status.stdout


def test_gpu_steps_run_two_at_a_time_on_both_workers_with_events_in_postgres(cluster):
    home, env, _ = cluster
    instance = _exec(env, sys.executable, "-m", "warmth_assets.instance")
    assert instance.returncode == 0, instance.stderr[-2000:]
    run = _exec(env, str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                "tests.scaleout.ray_defs", "--select", "gpu_a,gpu_b,gpu_c,gpu_d,light")
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\n{_tails(home)}"
    checked = _exec(env, sys.executable, str(REPO / "tests" / "scaleout" / "check_cluster_run.py"))
    assert checked.returncode == 0, checked.stderr[-3000:]
    seen = json.loads(checked.stdout.strip().splitlines()[-1])
    assert seen["storage"] == "PostgresEventLogStorage" and seen["run_status"] == "SUCCESS"
    assert seen["step_successes"] == ["gpu_a", "gpu_b", "gpu_c", "gpu_d", "light"]  # every step's event, in Postgres
    light = seen["steps"].pop("light")
    assert light["status"] == "SUCCEEDED" and light["node"] != seen["head"]  # the head runs no step, tagged or not
    steps = seen["steps"]
    assert sorted(steps) == ["gpu_a", "gpu_b", "gpu_c", "gpu_d"]
    # Ray gave each step the one GPU its op tag asked for (it sets CUDA_VISIBLE_DEVICES for the reserved GPU).
    assert all(s["status"] == "SUCCEEDED" and s["gpus"] == "0" for s in steps.values()), steps
    nodes = {s["node"] for s in steps.values()}
    assert len(nodes) == 2, "the steps did not use both worker nodes"
    for node in nodes:  # never two GPU steps on one node at once
        spans = sorted((s["began"], s["ended"]) for s in steps.values() if s["node"] == node)
        assert all(a_end <= b_begin for (_, a_end), (b_begin, _) in zip(spans, spans[1:])), spans
    first_done = min(s["ended"] for s in steps.values())
    assert sum(s["began"] >= first_done for s in steps.values()) == 2  # the second pair waited for the first


# Then (pytest collects in this order), on this module's one cluster: the study's generations backfilled on the lake
# and eight concurrent writers, after the checks above read its first run's Ray jobs; last the faults, Postgres
# restarted, then a worker killed (the cluster stays one node short).
from tests.scaleout.study_backfill import (  # noqa: E402, F401 (collected here)
    test_a_backfill_of_generations_on_the_lake_runs_on_both_nodes_with_the_rows_of_one_machine,
    test_eight_writers_on_two_nodes_overwrite_partitions_of_one_table_for_twenty_rounds,
)
from tests.scaleout.ray_faults import (  # noqa: E402, F401 (collected here)
    faults,
    test_postgres_stopped_mid_run_names_the_server_and_a_rerun_completes,
    test_a_lost_worker_fails_its_step_clearly_and_a_rerun_completes_on_the_other,
)
