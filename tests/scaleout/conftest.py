"""The local cluster as `warmth cluster up` starts it, for the scale-out tests: a context manager for a module-scoped
fixture (test_ray_cluster.py's, which every scale-out test shares; the fault that kills a node runs last), stopped
by `warmth cluster down` at the end, with the logs' tails in any error."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tests.offline import offline

REPO = Path(__file__).resolve().parents[2]
WARMTH = str(Path(sys.executable).parent / "warmth")
DAGSTER = str(Path(sys.executable).parent / "dagster")


def _tails(home: Path) -> str:
    logs = sorted((home / "cluster").glob("*.log")) + sorted((home / "cluster").glob("postgres/server.log"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs if p.exists())


@contextmanager
def local_cluster(workers: int = 2):
    offline(["true"])  # skips (fails under CI) where namespaces cannot be made
    home = Path(tempfile.mkdtemp(prefix="warmth-cluster-"))
    home.chmod(0o711)  # Postgres runs as the postgres user and must reach its folder
    netns = f"warmth-test-{os.getpid()}-{home.name[-6:]}"
    env = {**os.environ, "WARMTH_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PYTHONPATH": str(REPO)}
    for name in ("WARMTH_EXECUTOR", "WARMTH_RAY_ADDRESS", "WARMTH_PG_HOST", "WARMTH_CONFIG", "WARMTH_SETTINGS_SNAPSHOT"):
        env.pop(name, None)
    (home / "dagster").mkdir()
    up = subprocess.run([WARMTH, "cluster", "up", "--workers", str(workers), "--netns", netns], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=600)
    recorded: set[int] = set()
    try:
        assert up.returncode == 0, f"{up.stderr[-3000:]}\n{_tails(home)}"
        exports = dict(re.findall(r"^export (\w+)=(.*)$", up.stdout, flags=re.MULTILINE))
        env.update({k: v.strip("'") for k, v in exports.items()})
        state = json.loads((home / "cluster" / "state.json").read_text())
        recorded = {p for part in state["pids"].values() for p in part}
        yield home, env, state
    finally:
        down = subprocess.run([WARMTH, "cluster", "down"], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=600)
        assert down.returncode == 0, down.stderr
        assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left = [p for p in recorded if Path(f"/proc/{p}").exists()
                and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]
        assert not left, f"processes left after `warmth cluster down`: {left}"
        # Kept only where a check above failed: its logs are the evidence. Ray's short temp dir lies outside it.
        shutil.rmtree((home / "cluster" / "ray").resolve(), ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def run_in_cluster(env, *command, timeout=600) -> subprocess.CompletedProcess:
    """`command` in the cluster's network namespace with its environment (`warmth cluster exec`)."""
    return subprocess.run([WARMTH, "cluster", "exec", "--", *command], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
