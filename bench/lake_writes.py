"""Writing one asset's partitions to the lake (DuckLake, catalog in a real Postgres started here) against the DuckDB
file: the same frames through each backend's partition IO manager (`store`: one partition's rows replaced).

Needs Debian's PostgreSQL and root (as the scale-out tests); elsewhere it reports that it could not run."""

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd

PARTITIONS = 24
ROWS = 300  # about one evaluation partition of the demo (warmth_scores, generations: 100-300 rows)
ROUNDS = 3


def _frame(i: int) -> pd.DataFrame:
    return pd.DataFrame({"conversation_id": [f"c{j}" for j in range(ROWS)], "response": ["some answer text " * 8] * ROWS,
                         "warmth": [j / ROWS for j in range(ROWS)], "se": [0.01] * ROWS, "model": "m",
                         "checkpoint": f"ck{i}"})


def _seconds(io) -> float:
    """Median over rounds of writing every partition once (the first round also creates the table or files)."""
    key = dg.AssetKey("bench_scores")
    io.store(key, None, {"model": "m", "checkpoint": "warmup"}, _frame(-1))
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for i in range(PARTITIONS):
            io.store(key, None, {"model": "m", "checkpoint": f"ck{i}"}, _frame(i))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> dict:
    from resources.lake import LakeWarehouseResource
    from resources.partitioned_lake import PartitionedLakeIOManager
    from resources.partitioned_parquet import PartitionedParquetIOManager
    from resources.warehouse import WarehouseResource
    from warmth_assets.lib import local_cluster

    tmp = Path(tempfile.mkdtemp(prefix="warmth-bench-lake-"))
    tmp.chmod(0o711)
    try:
        state, password = local_cluster.postgres_up(tmp)
    except Exception as exc:  # not root, or no PostgreSQL: say so rather than report a number
        shutil.rmtree(tmp, ignore_errors=True)
        return {"value": 0.0, "baseline": 0.0, "unit": f"not run: {exc}", "target": "ratio <= 1.5"}
    try:
        lake = LakeWarehouseResource(data_path=f"{tmp / 'lake'}/", pg_host="127.0.0.1", pg_port=state.pg_port,
                                     pg_password=password, extension_dir=str(tmp / "ext"), journals=str(tmp / "j"))
        lake.query_df("SELECT 1")  # extensions, attach and schema: once, outside the timing
        file = WarehouseResource(database=str(tmp / "w.duckdb"))
        file.query_df("SELECT 1")
        value = _seconds(PartitionedLakeIOManager(warehouse=lake))
        baseline = _seconds(PartitionedParquetIOManager(base_dir=str(tmp / "tables"), warehouse=file))
    finally:
        local_cluster.postgres_stop(state)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"value": value / PARTITIONS * 1000, "baseline": baseline / PARTITIONS * 1000,
            "unit": f"ms per partition written ({ROWS} rows; lake vs DuckDB file + view)", "target": "ratio <= 1.5"}
