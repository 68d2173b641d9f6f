"""`warehouse_maintenance`: compaction of the warehouse, one at a time (Dagster pool `warehouse_maintenance`, limit 1).

On the lake, every partition written and every batch of answers cached is a snapshot with its own small Parquet
file (or inlined rows in the catalog); compaction flushes inlined rows, merges small files and expires old
snapshots. On the DuckDB file it checkpoints the write-ahead log. An op, not an asset: it changes how the tables
are stored, not what they hold, so nothing downstream depends on it. Its schedule starts stopped: turn it on in
the UI for a lake that many runs write to.
"""

import dagster as dg

from resources.warehouse import WarehouseResource

POOL = "warehouse_maintenance"


@dg.op(pool=POOL, description="Compacts the warehouse (the lake's small files and snapshots; the file's WAL).")
def compact_warehouse(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    counts = warehouse.maintain()
    context.log.info(f"{warehouse.backend} warehouse compacted: {counts or 'checkpointed'}")
    context.add_output_metadata({"backend": warehouse.backend, **counts})


@dg.job(description="Compaction of the warehouse, one at a time (pool warehouse_maintenance, limit 1).")
def warehouse_maintenance():
    compact_warehouse()


warehouse_maintenance_schedule = dg.ScheduleDefinition(
    job=warehouse_maintenance, cron_schedule="30 4 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly compaction of the warehouse (turn on for a lake written by many runs).")
