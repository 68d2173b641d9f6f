"""The Ray executor on the local cluster (`warmth cluster up`, Postgres and Ray in a loopback-only namespace):
four CPU-bound steps (about 30 s of CPU each, calibrated here) on two worker nodes of one CPU against one node,
and the executor's fixed cost per step (four empty steps, run one after another on one node) against the
in-process executor. Needs root (network namespaces, Postgres as its user); elsewhere it says it could not run."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warmth_assets.lib import local_cluster, paths

CPU_SECONDS = float(os.environ.get("BENCH_RAY_CPU_SECONDS", "30"))  # per step; a smaller value for a quick try
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _rounds_for(seconds: float) -> int:
    digest, n, t0 = b"warmth", 0, time.process_time()
    while time.process_time() - t0 < 1.0:
        for _ in range(10_000):
            digest = hashlib.sha256(digest).digest()
        n += 10_000
    return int(n * seconds)


def _materialise(env: dict, netns: str, select: str) -> float:
    command = [DAGSTER, "asset", "materialize", "-m", "bench._ray_cpu_defs", "--select", select]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    t0 = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=paths.repo_root(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{select}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def _on_cluster(workers: int, rounds: int, *, noop: bool) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="warmth-bench-ray-"))
    home.chmod(0o711)
    netns = f"warmth-bench-{os.getpid()}-{workers}"
    env = {**os.environ, "WARMTH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "BENCH_CPU_ROUNDS": str(rounds),
           "PYTHONPATH": str(paths.repo_root())}
    (home / "dagster").mkdir()
    try:
        state, _ = local_cluster.up(home, workers, netns=netns, env=env)
        env.update({k: v for k, v in state.environment().items() if not k.startswith("WARMTH_PG")})
        times = {"cpu": _materialise(env, netns, ",".join(f"cpu_{c}" for c in "abcd"))}
        if noop:
            times["noop"] = _materialise(env, netns, ",".join(f"noop_{c}" for c in "abcd"))
        return times
    finally:
        local_cluster.down(home)
        shutil.rmtree(home, ignore_errors=True)


def run() -> list[dict]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        note = "not run: needs root for the cluster's network namespace"
        return [{"name": "ray_two_nodes_speedup", "value": 0.0, "baseline": 0.0, "unit": note, "target": ">= 1.6"},
                {"name": "ray_step_overhead", "value": 0.0, "baseline": 0.0, "unit": note, "target": "reported"}]
    rounds = _rounds_for(CPU_SECONDS)
    one = _on_cluster(1, rounds, noop=True)
    two = _on_cluster(2, rounds, noop=False)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("WARMTH_EXECUTOR", "WARMTH_RAY_ADDRESS")}
        env.update(DAGSTER_HOME=tmp, WARMTH_HOME=tmp, BENCH_CPU_ROUNDS=str(rounds))
        in_process = _materialise(env, "", ",".join(f"noop_{c}" for c in "abcd"))
    return [
        # value/baseline is the speed-up: the one-node time over the two-node time.
        {"name": "ray_two_nodes_speedup", "value": one["cpu"], "baseline": two["cpu"],
         "unit": f"s for 4 CPU-bound steps (~{CPU_SECONDS:.0f} s CPU each): 1 worker node vs 2 (ratio = speed-up)",
         "target": "ratio >= 1.6"},
        {"name": "ray_step_overhead", "value": one["noop"] / 4, "baseline": in_process / 4,
         "unit": "s per empty step: Ray executor (one node, steps in turn) vs in-process, run start included",
         "target": "reported"},
    ]
