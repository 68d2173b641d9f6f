"""The `needs_shared` rule: a missing ../shared skips on a laptop and fails under CI, saying why."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = "tests/lib/test_eval_items.py"  # every test there reads ../shared/data


def _pytest(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "WARMTH_DATA_DIR")}
    env["WARMTH_SHARED_DIR"] = str(tmp_path / "no-shared-here")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", TARGET, "-q", "-p", "no:cacheprovider", "-x"],
                          cwd=REPO, env=env, capture_output=True, text=True)


def test_missing_shared_fails_under_ci_and_says_why(tmp_path):
    done = _pytest(tmp_path, "true")
    assert done.returncode != 0
    assert "CI=true and needs" in done.stdout and "no-shared-here/data" in done.stdout
    assert "put the shared folder" in done.stdout


def test_missing_shared_skips_outside_ci(tmp_path):
    done = _pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "SKIPPED [8]" in done.stdout and "needs " in done.stdout, done.stdout[-2000:]
