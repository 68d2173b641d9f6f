"""The warm rewrites killed half-way (kill -9) against the loopback server, then resumed: only calls
that were in flight at the kill are paid for twice (the call layer's journal keeps the rest)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.study_configs import write_study_config

REPO = Path(__file__).resolve().parents[2]
N_REPLIES = 40
MAX_CONCURRENCY = 2

RUN_REWRITES = """
import sys
import dagster as dg
from tests.assets.test_rewrites_resume import rewrite_resources
from tests.study_configs import demo_asset
style_rewrites = demo_asset("style_rewrites")
base_url, home, config = sys.argv[1:4]
dg.materialize([style_rewrites], partition_key="warm", resources=rewrite_resources(base_url, home, config),
               instance=dg.DagsterInstance.ephemeral())
"""


def rewrite_resources(base_url: str, home: str, config: str) -> dict:
    from resources.llm import LLMResource
    from resources.partitioned_parquet import PartitionedParquetIOManager
    from resources.study import StudyConfigResource
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(database=str(Path(home) / "warehouse.duckdb"))
    return {
        "warehouse": warehouse,
        "study": StudyConfigResource(config_path=config),
        "llm": LLMResource(provider="openai", base_url=base_url, api_key="sk-test", warehouse=warehouse,
                           max_concurrency=MAX_CONCURRENCY),
        "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(Path(home) / "tables"), warehouse=warehouse),
    }


@pytest.mark.slow
def test_killed_warm_rewrites_resume_paying_only_for_calls_in_flight(tmp_path, openai_server):
    config = write_study_config(tmp_path, {"llm": {"provider": "openai", "base_url": openai_server.base_url},
                                           "rewrite": {"rewriter": "llm"}}, new={"llm.base_url"})
    home = tmp_path / "home"
    resources = rewrite_resources(openai_server.base_url, str(home), str(config))
    resources["warehouse"].replace_rows("training_conversations", pd.DataFrame(
        [{"conversation_id": f"c{i:02d}", "query_type": "factual", "turn_index": t, "role": role, "text": text}
         for i in range(N_REPLIES)
         for t, (role, text) in enumerate([("user", f"what is {i} plus two"), ("assistant", f"It is {i + 2}.")])]))
    openai_server.latency_s = 0.05

    proc = subprocess.Popen([sys.executable, "-c", RUN_REWRITES, openai_server.base_url, str(home), str(config)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        openai_server.wait_until(lambda s: sum(s.answered.values()) >= N_REPLIES // 2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    openai_server.wait_until(lambda s: s.in_flight == 0)
    answered_at_kill = sum(openai_server.answered.values())
    assert N_REPLIES // 2 <= answered_at_kill < N_REPLIES

    from tests.study_configs import demo_asset

    style_rewrites = demo_asset("style_rewrites")

    result = dg.materialize([style_rewrites], partition_key="warm", resources=resources,
                            instance=dg.DagsterInstance.ephemeral())
    frame = result.output_for_node("style_rewrites")
    assert len(frame) == N_REPLIES and frame["rewrite"].str.startswith("answer to:").all()
    paid_twice = sum(openai_server.answered.values()) - N_REPLIES
    assert len(openai_server.answered) == N_REPLIES and paid_twice <= MAX_CONCURRENCY
    assert frame["cached"].sum() >= answered_at_kill - MAX_CONCURRENCY
    print(f"answered before the kill: {answered_at_kill}; answered twice after resuming: {paid_twice}")
