"""Two GPU steps that wait (holding their node) until the test lets them finish: a node can be lost, or Postgres
restarted, while both run. Each records where it ran under WARMTH_HOME."""

import os
import time
from pathlib import Path

import dagster as dg

from warmth_assets.build import build_executor
from warmth_assets.lib.config import ComputeSettings
from warmth_assets.scaleout import gpu_op_tags

WAIT_S = 300  # bounds a wait that ends as soon as the test releases the steps; never a measured time


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
        context.log.info(f"{name} finished")

    return step


defs = dg.Definitions(assets=[_step("hold_a"), _step("hold_b")], executor=build_executor())
