"""`warmth inspect`: a real Inspect View server on a free loopback port lists the logs, and stops on Ctrl-C."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from warmth_assets.lib import inspect_export

REPO = Path(__file__).resolve().parents[1]


def one_log(home: Path) -> Path:
    header = inspect_export.LogHeader(model="m", checkpoint="original", source="org/m", config_name="demo.toml",
                                      config_sha256="0" * 64, revision=None)
    judged = pd.DataFrame([{"prompt_id": "t1", "dataset": "triviaqa", "prompt": "Capital of France?",
                            "response": "Paris", "verdict": "CORRECT", "judge_raw": "CORRECT", "refusal": False,
                            "correct_answer": "Paris"}])
    none = pd.DataFrame(columns=["prompt_id", "dataset"])
    logs = inspect_export.partition_logs(header, judged, none, none, {}, {}, {"eval": "eval-v1"},
                                         lambda p: [{"role": "user", "content": p}])
    folder = inspect_export.log_folder(home, "m", "original")
    inspect_export.write_logs(logs, folder)
    return folder / "triviaqa.eval"


@pytest.mark.slow
def test_warmth_inspect_serves_the_logs_on_loopback_and_stops(warmth_home):
    written = one_log(warmth_home)
    env = {**os.environ, "WARMTH_HOME": str(warmth_home), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "warmth_assets.cli", "inspect", "--model", "m", "--checkpoint",
                                "original"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        line = process.stdout.readline()  # printed once the viewer listens
        assert line.startswith("Inspect View: http://127.0.0.1:"), (line, process.stderr.read() if process.poll() else "")
        url = line.split()[2]
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        with urllib.request.urlopen(f"{url}api/log-files", timeout=30) as listing:
            files = json.loads(listing.read())["files"]
        assert [Path(f["name"]).name for f in files] == [written.name]
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it to the foreground group
        code = process.wait(30)
    assert code == 0
    time.sleep(0.5)
    with pytest.raises(OSError):  # nothing listens any more: the viewer stopped with it
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_no_logs_is_said_in_one_line(warmth_home):
    env = {**os.environ, "WARMTH_HOME": str(warmth_home), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "warmth_assets.cli", "inspect"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "materialise `inspect_logs`" in done.stderr and "Traceback" not in done.stderr
