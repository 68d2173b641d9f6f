"""Commands run with no network but loopback (a new network namespace holding only `lo`), for tests whose code
could reach for a public endpoint (a missing key, the default OpenAI URL): whatever it tries cannot leave the
machine. Needs `unshare` with the right to make a namespace (root, as in CI); elsewhere such tests skip, and under
CI=true they fail rather than test nothing."""

import os
import shutil
import subprocess

import pytest


def _can_isolate() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def offline(command: list[str]) -> list[str]:
    """`command` in a new network namespace with only loopback up."""
    if not _can_isolate():
        message = "needs `unshare --net` (root) to run without a network"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "offline", *command]
