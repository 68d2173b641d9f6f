"""A run terminated mid-batch (SIGTERM to `dagster asset materialize`, as a stop from the shell, a run timeout or
the UI's Terminate delivers it) against the loopback server: nothing is sent after the stop beyond the calls
already in flight, the process and its step exit, and a re-run repays none of the answers received.

Synchronised on the server's state, never on sleeps: the server holds every request after the first
`RECEIVED` answered, so at the stop exactly the two callers' requests are in flight and no call can end
(and let another start) before the interrupt arrives; they are released once the run has gone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.assets.test_rewrites_resume import rewrite_resources
from tests.study_configs import demo_asset, write_study_config

REPO = Path(__file__).resolve().parents[2]
N_REPLIES, RECEIVED, MAX_CONCURRENCY = 24, 6, 2
GENEROUS_S = 300  # bounds a wait that returns as soon as its event happens; never a measured time


def _group_gone(pgid: int, within_s: float) -> bool:
    """True once no process of the group is left (returns as soon as it is; `within_s` only bounds a hang)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    return False


@pytest.mark.slow
def test_a_terminated_run_sends_nothing_more_exits_and_repays_no_received_answer(tmp_path, openai_server):
    config = write_study_config(tmp_path, {"llm": {"provider": "openai", "base_url": openai_server.base_url,
                                                   "max_concurrency": MAX_CONCURRENCY},
                                           "rewrite": {"rewriter": "llm"}}, new={"llm.base_url"})
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    resources = rewrite_resources(openai_server.base_url, str(home), str(config))
    resources["warehouse"].replace_rows("training_conversations", pd.DataFrame(
        [{"conversation_id": f"c{i:02d}", "query_type": "factual", "turn_index": t, "role": role, "text": text}
         for i in range(N_REPLIES)
         for t, (role, text) in enumerate([("user", f"what is {i} plus two"), ("assistant", f"It is {i + 2}.")])]))
    openai_server.hold_after = RECEIVED

    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WARMTH_EXECUTOR")}
    env.update(WARMTH_CONFIG=str(config), WARMTH_HOME=str(home), DAGSTER_HOME=str(home / "dagster"),
               PYTHONPATH=str(REPO))
    dagster = Path(sys.executable).parent / "dagster"
    run = subprocess.Popen([str(dagster), "asset", "materialize", "-m", "warmth_assets.definitions",
                            "--select", "style_rewrites", "--partition", "warm"],
                           cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        openai_server.wait_until(lambda s: sum(s.answered.values()) == RECEIVED and s.in_flight == MAX_CONCURRENCY,
                                 timeout=GENEROUS_S)
        sent_at_stop, received = openai_server.total_attempts, set(openai_server.answered)
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=GENEROUS_S)  # the run exits though its two calls never answer
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        openai_server.release.set()
    assert run.returncode != 0, output[-3000:]
    assert "RUN_FAILURE" in output or "interrupt" in output.lower(), output[-3000:]
    assert openai_server.total_attempts == sent_at_stop  # nothing sent after the stop
    openai_server.wait_until(lambda s: s.in_flight == 0, timeout=GENEROUS_S)
    assert _group_gone(run.pid, GENEROUS_S), "a step process outlived its run"

    # The re-run sends what was not received: the two held calls and those never sent, none of the six answered.
    openai_server.hold_after = None
    result = dg.materialize([demo_asset("style_rewrites")], partition_key="warm", resources=resources,
                            instance=dg.DagsterInstance.ephemeral())
    frame = result.output_for_node("style_rewrites")
    assert len(frame) == N_REPLIES and frame["rewrite"].str.startswith("answer to:").all()
    assert int(frame["cached"].sum()) == RECEIVED
    assert len(received) == RECEIVED and all(openai_server.attempts[key] == 1 for key in received)  # none repaid
    print(f"sent before the stop: {sent_at_stop} ({RECEIVED} answered, {MAX_CONCURRENCY} in flight); "
          f"sent after: {openai_server.total_attempts - sent_at_stop - (N_REPLIES - RECEIVED)} "
          f"beyond the re-run's {N_REPLIES - RECEIVED}")
