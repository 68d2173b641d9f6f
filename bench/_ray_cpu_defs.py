"""Steps for bench/ray_scaleout.py: four CPU-bound partitions' worth of work (a fixed number of sha256 rounds each,
BENCH_CPU_ROUNDS) and four steps that do nothing, each asking Ray for one CPU, under the executor WARMTH_EXECUTOR
selects (`build_executor`)."""

import hashlib
import os

import dagster as dg

from warmth_assets.build import build_executor
from warmth_assets.scaleout import RAY_CONFIG_TAG

TAGS = {RAY_CONFIG_TAG: {"num_cpus": 1}}


def _cpu(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, op_tags=TAGS)
    def step() -> None:
        digest = b"warmth"
        for _ in range(int(os.environ["BENCH_CPU_ROUNDS"])):
            digest = hashlib.sha256(digest).digest()

    return step


def _noop(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, op_tags=TAGS)
    def step() -> None:
        return None

    return step


defs = dg.Definitions(assets=[*(_cpu(f"cpu_{c}") for c in "abcd"), *(_noop(f"noop_{c}") for c in "abcd")],
                      executor=build_executor())
