"""Cost of the cross-process warehouse lock: open-query-close through WarehouseResource vs bare duckdb."""

import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from resources.warehouse import WarehouseResource

ROUNDS = 60


def _median_seconds(fn) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        warehouse = WarehouseResource(database=db)
        with warehouse.get_connection():
            pass  # schema applied once, outside the timing

        def locked():
            with warehouse.get_connection() as conn:
                conn.execute("SELECT count(*) FROM model_registry").fetchall()

        def bare():
            conn = duckdb.connect(db)
            conn.execute("SELECT count(*) FROM model_registry").fetchall()
            conn.close()

        bare()
        value, baseline = _median_seconds(locked), _median_seconds(bare)
    return {"value": value * 1000, "baseline": baseline * 1000, "unit": "ms per connection (median)",
            "target": "ratio <= 1.5"}
