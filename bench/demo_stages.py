"""`make demo` from an empty demo home, stage by stage, against its re-run in the same home.

value = seconds of the whole demo from nothing (the GGUF conversion and the Detoxify stand-in included, as from a
clean clone); baseline = seconds of the same demo run again at once, where every model call comes from the cache
(what is left: loading models, the graph's own overhead, SocioT scoring, the analysis). `stages` and
`rerun_stages` hold the seconds per stage of each, so a regression shows where it is. Target: value <= 600 s on a
quiet 2-core machine.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"^\[(\w+)\] ok: .* in ([0-9.]+) s", re.MULTILINE)
DONE = re.compile(r"^Done in ([0-9.]+) s\.", re.MULTILINE)


def _demo(home: Path) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "WARMTH_CONFIG": str(REPO / "demo.toml"), "WARMTH_HOME": str(home),
           "DAGSTER_HOME": str(home / "dagster")}
    env.pop("WARMTH_MODEL_CACHE", None)  # converted models under the demo's home, as `make demo` has them
    done = subprocess.run([sys.executable, "-m", "warmth_assets.demo"], env=env, cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"the demo failed ({done.returncode}): {done.stderr[-2000:]}")
    total = DONE.search(done.stdout)
    if total is None:
        raise RuntimeError(f"the demo printed no total: {done.stdout[-2000:]}")
    return float(total.group(1)), {name: float(seconds) for name, seconds in STAGE.findall(done.stdout)}


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="warmth-bench-demo-") as folder:
        home = Path(folder)
        first, stages = _demo(home)
        again, rerun_stages = _demo(home)
    return {"value": first, "baseline": again, "unit": "s", "target": "value <= 600 s on a quiet 2-core machine",
            "stages": stages, "rerun_stages": rerun_stages}
