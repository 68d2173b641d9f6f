"""Four GPU steps for the Ray executor, tagged as warmth's GPU steps are (warmth_assets/scaleout.py), with the
executor `build_executor` gives for WARMTH_EXECUTOR=ray, and one untagged step. The first step of each pair holds its GPU until the
second has started (markers under WARMTH_HOME): the job can only finish if Ray runs two at a time, on two nodes."""

import json
import os
import time
from pathlib import Path

import dagster as dg

from warmth_assets.build import build_executor
from warmth_assets.lib.config import ComputeSettings
from warmth_assets.scaleout import gpu_op_tags

STEPS = ("gpu_a", "gpu_b", "gpu_c", "gpu_d")
WAIT_S = 300  # bounds a wait that ends as soon as a second step runs; never a measured time


def _step(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, op_tags=gpu_op_tags(ComputeSettings()))
    def step(context: dg.AssetExecutionContext) -> None:
        running = Path(os.environ["WARMTH_HOME"]) / "running"
        running.mkdir(parents=True, exist_ok=True)
        began = time.time()
        (running / name).write_text(str(began))
        ordinal = len(list(running.iterdir()))
        partners = ordinal + ordinal % 2  # steps 1 and 2, then 3 and 4: the first of a pair waits for the second
        deadline = time.monotonic() + WAIT_S
        while len(list(running.iterdir())) < partners:
            if time.monotonic() > deadline:
                raise RuntimeError("no second step ran beside this one")
            time.sleep(0.2)
        finished = running.parent / "finished"
        finished.mkdir(exist_ok=True)
        (finished / name).write_text(json.dumps({"began": began, "ended": time.time(),
                                                 "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}))
        context.log.info(f"{name} ran beside another step")

    return step


@dg.asset
def light() -> None:
    """A step with no Ray tag (most of the study's steps): it must still run on a worker, never on the head."""


defs = dg.Definitions(assets=[*(_step(n) for n in STEPS), light], executor=build_executor())
