"""`warmth inspect`: Inspect View over the logs of `inspect_logs`, on loopback, until Ctrl-C.

The viewer is inspect_ai's own server (`python -m inspect_ai view start`), run in its own process group so that
stopping `warmth inspect` stops it and nothing else; bound to 127.0.0.1 (the logs hold every prompt and answer)
on a free port unless one is given.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


def log_dir(home: Path, model: str | None = None, checkpoint: str | None = None) -> Path:
    """WARMTH_HOME/inspect, narrowed to a model and a checkpoint when given (a checkpoint needs its model)."""
    if checkpoint and not model:
        raise ValueError("--checkpoint needs --model (checkpoint keys repeat across models)")
    folder = home / "inspect"
    for part in (model, checkpoint):
        if part:
            folder = folder / part
    if not folder.is_dir() or not any(folder.rglob("*.eval")):
        raise FileNotFoundError(f"no Inspect logs under {folder}: materialise `inspect_logs` (make demo does)")
    return folder


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def view_argv(folder: Path, port: int, host: str = HOST) -> list[str]:
    """Inspect's viewer through this interpreter (the venv's `inspect` script may point at another one)."""
    return [sys.executable, "-m", "inspect_ai", "view", "start", "--log-dir", str(folder), "--recursive",
            "--host", host, "--port", str(port)]


def wait_ready(process: subprocess.Popen, port: int, timeout_s: float, host: str = HOST) -> None:
    """Until the port accepts connections; RuntimeError if the server exits or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"inspect view exited with code {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"inspect view did not listen on {host}:{port} within {timeout_s:.0f} s")


def stop(process: subprocess.Popen, grace_s: float = 10.0) -> int:
    """SIGINT to the viewer's process group (its own Ctrl-C), then SIGKILL after `grace_s`; its exit code."""
    import os

    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGINT)
            return process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return process.wait()
