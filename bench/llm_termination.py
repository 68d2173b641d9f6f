"""A run stopped mid-batch: `dagster asset materialize` of the warm rewrites against the loopback server (300 ms a
call, [llm] max_concurrency 8), sent SIGTERM once 120 answers have arrived, as a shell, a run timeout or the UI's
Terminate stops it.

- llm_termination: requests the server received after the SIGTERM, vs those it received in an equal window just
  before it (what the run would have sent on). Target: at most the calls in flight, a small fraction of the
  baseline. Also reported: seconds from the SIGTERM to the exit of the command and of its whole process group.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from resources.warehouse import WarehouseResource
from tests.openai_server import FakeOpenAI
from tests.study_configs import write_study_config

REPLIES, CONCURRENCY, LATENCY_S, STOP_AFTER = 400, 8, 0.3, 120
REPO = Path(__file__).resolve().parents[1]


def _group_exit_s(pgid: int, since: float) -> float:
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return time.monotonic() - since
        time.sleep(0.02)


def run() -> dict:
    server = FakeOpenAI(latency_s=LATENCY_S).start()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = write_study_config(tmp, {"llm": {"provider": "openai", "base_url": server.base_url,
                                                  "max_concurrency": CONCURRENCY}, "rewrite": {"rewriter": "llm"}},
                                    new={"llm.base_url"})
        home = tmp / "home"
        (home / "dagster").mkdir(parents=True)
        WarehouseResource(database=str(home / "warehouse.duckdb")).replace_rows("training_conversations", pd.DataFrame(
            [{"conversation_id": f"c{i:03d}", "query_type": "factual", "turn_index": t, "role": role, "text": text}
             for i in range(REPLIES)
             for t, (role, text) in enumerate([("user", f"what is {i} plus two"), ("assistant", f"It is {i + 2}.")])]))
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
        env.update(WARMTH_CONFIG=str(config), WARMTH_HOME=str(home), DAGSTER_HOME=str(home / "dagster"),
                   PYTHONPATH=str(REPO))
        proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                                 "warmth_assets.definitions", "--select", "style_rewrites", "--partition", "warm"],
                                cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        server.wait_until(lambda s: sum(s.answered.values()) >= STOP_AFTER)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        exit_s = time.monotonic() - stopped
        group_s = _group_exit_s(proc.pid, stopped)
        server.wait_until(lambda s: s.in_flight == 0)
        server.stop()
    after = sum(t >= stopped for t in server.arrivals)
    before = sum(stopped - group_s <= t < stopped for t in server.arrivals)
    return {"name": "llm_termination", "value": after, "baseline": before, "unit": "requests",
            "target": f"<= {CONCURRENCY} (the calls in flight)", "exit_s": round(exit_s, 2),
            "group_exit_s": round(group_s, 2), "sent_in_all": len(server.arrivals), "max_in_flight": server.max_in_flight}
