"""`make bench`: run every benchmark in bench/ and write .warmth/bench.json (ratios against in-run baselines)."""

import json
import subprocess
import pkgutil
import sys

import bench
from warmth_assets.lib import paths

# bench/gpu.py is the GPU check (`make gpu-check`, minutes on a GPU): never part of `make bench`.
NOT_RUN = {"gpu"}


def main() -> int:
    results = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                         if not m.name.startswith("_") and m.name not in NOT_RUN):
        # Each benchmark in its own process: torch's idle worker threads from one would slow the next.
        code = f"import json, bench.{module} as m; print('BENCH' + json.dumps(m.run()))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        outcome = json.loads(done.stdout.rsplit("BENCH", 1)[1])
        for result in outcome if isinstance(outcome, list) else [dict(outcome, name=module)]:
            name = result.pop("name")
            result["ratio"] = result["value"] / result["baseline"] if result["baseline"] else None
            results[name] = result
            print(f"{name}: {result['value']:.4g} vs baseline {result['baseline']:.4g} {result['unit']} "
                  f"(ratio {result['ratio']:.3f}, target {result['target']})")
    out = paths.warmth_home() / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
