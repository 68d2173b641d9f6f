"""IO manager for partitioned assets on the lake backend: one DuckLake table per asset, one partition's rows
replaced at a time.

The same contract as `PartitionedParquetIOManager` (every row carries its partition's dimensions as columns; a
moving target's partition is also kept per evaluation date in `<asset>_history`; a mapped partition never
materialised loads as nothing), but the rows live in the lake, so steps on any node write and read them:
- a write deletes the partition's rows and inserts the new ones in one transaction, retried by the warehouse when
  another writer of the same table commits first (DuckLake does not retry a delete itself);
- an asset's table is created by its first partition (its columns are the asset's output, not a file in sql/),
  in that same retried transaction; a later partition with a new column adds it;
- a partition is read with a plain filtered scan, which keeps the order its rows were inserted in (DuckDB's
  `preserve_insertion_order`), so it loads exactly as it was written.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from resources.lake import CATALOG, LakeWarehouseResource
from resources.partitioned_parquet import (
    EVALUATION_DATE,
    PartitionStore,
    _column,
    history_frame,
    history_key,
    split_partition_key,
)


def table_name(asset_key: dg.AssetKey) -> str:
    return "__".join(asset_key.path)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def overwrite_partition(conn, table: str, dims: dict[str, str], frame: pd.DataFrame) -> None:
    """In the caller's transaction: `table`'s rows of partition `dims` become `frame` (created or widened first)."""
    incoming = frame.reset_index(drop=True).assign(**dims)  # every row carries its partition
    conn.register("_incoming", incoming)
    try:
        # IF NOT EXISTS: another writer may have created the table since this transaction began.
        conn.execute(f"CREATE TABLE IF NOT EXISTS {_ident(table)} AS SELECT * FROM _incoming LIMIT 0")
        have = {c[0] for c in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                           "table_catalog = ? AND table_name = ?", [CATALOG, table]).fetchall()}
        if set(incoming.columns) - have:
            types = dict(conn.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM _incoming)")
                         .fetchall())
            for name in incoming.columns:
                if name not in have:
                    conn.execute(f"ALTER TABLE {_ident(table)} ADD COLUMN {_ident(name)} {types[name]}")
        where = " AND ".join(f"{_ident(k)} = ?" for k in sorted(dims)) or "true"
        conn.execute(f"DELETE FROM {_ident(table)} WHERE {where}", [dims[k] for k in sorted(dims)])
        conn.execute(f"INSERT INTO {_ident(table)} BY NAME SELECT * FROM _incoming")
    finally:
        conn.unregister("_incoming")


class PartitionedLakeIOManager(PartitionStore, dg.ConfigurableIOManager):
    """Writes each partition into the lake table `<asset>`; reads the partitions an input maps to."""

    warehouse: LakeWarehouseResource

    def _keep_history(self, context: dg.OutputContext, frame: pd.DataFrame, dims: dict[str, str]) -> None:
        date = history_frame(context, frame)
        history = history_key(context.asset_key).path[-1]
        self.warehouse.write(lambda conn: overwrite_partition(conn, history, {**dims, EVALUATION_DATE: date}, frame),
                             [history])
        context.add_output_metadata({"history_table": history, EVALUATION_DATE: date})

    def store(self, asset_key: dg.AssetKey, partitions_def, dims: dict[str, str], frame: pd.DataFrame) -> dict:
        from resources import lake

        table = table_name(asset_key)
        before = lake.conflicts_retried.get(table, 0)
        self.warehouse.write(lambda conn: overwrite_partition(conn, table, dims, frame), [table])
        return {"table": table, "warehouse": self.warehouse.location,
                "warehouse/conflicts_retried": lake.conflicts_retried.get(table, 0) - before}

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | None:
        table = table_name(context.asset_key)
        if context.has_asset_partitions:
            column = _column(context.upstream_output.definition_metadata if context.upstream_output else None)
            wanted = [split_partition_key(key, context.asset_partitions_def, column)
                      for key in context.asset_partition_keys]
        else:
            wanted = None
        with self.warehouse.get_connection() as conn:
            if not conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND "
                                "table_name = ?", [CATALOG, table]).fetchone()[0]:
                return None
            if wanted is None:
                frame = conn.execute(f"SELECT * FROM {_ident(table)}").df()
            else:
                frames = []
                for dims in wanted:  # one filtered scan per partition: rows in the order they were written
                    where = " AND ".join(f"{_ident(k)} = ?" for k in sorted(dims))
                    frames.append(conn.execute(f"SELECT * FROM {_ident(table)} WHERE {where}",
                                               [dims[k] for k in sorted(dims)]).df())
                frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if frame.empty:
            return None  # e.g. the `original` checkpoint, which no training run maps to
        return frame
