"""Two GPU steps that wait (holding their node) until the test lets them finish: a node can be lost, or Postgres
restarted, while both run. Each records where it ran under WARMTH_HOME; once released, each writes what a study
step writes to the warehouse of the run's environment (the lake in tests/scaleout/ray_faults.py): its
partition of a table, replaced whole, and its answers into the call cache."""

import os
import time
from pathlib import Path

import dagster as dg

from warmth_assets.build import build_executor
from warmth_assets.lib.config import ComputeSettings
from warmth_assets.scaleout import gpu_op_tags

WAIT_S = 300  # bounds a wait that ends as soon as the test releases the steps; never a measured time


def _write_results(name: str) -> None:
    import pandas as pd

    from resources import llm_cache
    from resources.partitioned_lake import overwrite_partition
    from resources.warehouses import default_warehouse

    warehouse = default_warehouse()
    frame = pd.DataFrame({"item": range(4), "step": name})
    warehouse.write(lambda conn: overwrite_partition(conn, "fault_results", {"model": name}, frame), ["fault_results"])
    llm_cache.insert_rows(warehouse, [{
        "request_key": f"{name}-{i}", "provider": "test", "endpoint": "none", "model": name, "template_version": "v",
        "request_json": "{}", "response_text": f"answer {i}", "finish_reason": "stop", "prompt_tokens": 1,
        "completion_tokens": 1, "latency_s": 0.0} for i in range(3)])


def _step(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, op_tags=gpu_op_tags(ComputeSettings()))
    def step(context: dg.AssetExecutionContext) -> None:
        home = Path(os.environ["WARMTH_HOME"])
        (home / "started").mkdir(exist_ok=True)
        (home / "started" / name).write_text(os.environ.get("DAGSTER_RUN_STEP_KEY", name))
        deadline = time.monotonic() + WAIT_S
        while not (home / "release").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never released this step")
            time.sleep(0.2)
        _write_results(name)
        context.log.info(f"{name} finished")

    return step


defs = dg.Definitions(assets=[_step("hold_a"), _step("hold_b")], executor=build_executor())
