"""IO manager for partitioned assets: one Parquet file per partition, one DuckDB view per asset.

This is the `project_fully_featured` pattern, and needed because Dagster's DuckDB IO manager cannot handle a
MultiPartitionsDefinition with a dynamic dimension (docs/pitfalls.md §2.1): partition runs
write their own file with no lock at all, then take the warehouse lock only for the instant it
takes to (re)create the view `<asset>` over all of the asset's files. Every row carries its
partition's dimensions as columns (`model`, `checkpoint`, ...), so the view needs no hive paths.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from resources.warehouse import WarehouseResource


PARTITION_COLUMN = "warmth/partition_column"
# A partition of a moving target (rows with MOVING_TARGET true and one EVALUATION_DATE) is also kept
# per date under history/, so a re-evaluation (reevaluation_schedule) never erases earlier results.
# Pinned models are not: their answers do not change, and copies per date would only fill the disk.
EVALUATION_DATE = "evaluation_date"
MOVING_TARGET = "moving_target"


def split_partition_key(key: str | dg.MultiPartitionKey, partitions_def, column: str = "partition") -> dict[str, str]:
    """{'checkpoint': ..., 'model': ...} for a multi-partition key; {column: key} otherwise.

    A single-dimension asset names its column with the definition metadata PARTITION_COLUMN
    (e.g. "style"); the default is "partition".
    """
    if isinstance(key, dg.MultiPartitionKey):
        return dict(key.keys_by_dimension)
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        # Multi-partition keys join the dimensions' keys in the order of the sorted dimension names.
        names = sorted(d.name for d in partitions_def.partitions_defs)
        return dict(zip(names, str(key).split("|")))
    return {column: str(key)}


def _static_keys(partitions_def) -> dict[str, set[str]]:
    """{dimension: keys} of the static dimensions of a partitions definition."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return {d.name: set(d.partitions_def.get_partition_keys()) for d in partitions_def.partitions_defs
                if isinstance(d.partitions_def, dg.StaticPartitionsDefinition)}
    return {}


def _column(metadata) -> str:
    return str((metadata or {}).get(PARTITION_COLUMN, "partition"))


def partition_frame(context: dg.OutputContext, obj: pd.DataFrame) -> tuple[dict[str, str], pd.DataFrame]:
    """The partition's dimensions and the rows to store, each row carrying them as columns."""
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"{context.asset_key.to_user_string()}: expected a pandas DataFrame, got {type(obj).__name__}")
    dims = split_partition_key(context.partition_key, context.asset_partitions_def,
                               _column(context.definition_metadata)) if context.has_partition_key else {}
    frame = obj.copy()
    for name, value in dims.items():
        if name in frame.columns and not (frame[name].astype(str) == value).all():
            raise ValueError(
                f"{context.asset_key.to_user_string()}: column {name!r} disagrees with partition {name}={value}"
            )
        frame[name] = value
    return dims, frame


def history_frame(context: dg.OutputContext, frame: pd.DataFrame) -> str:
    """The one evaluation date of a moving target's partition (its history is kept per date)."""
    dates = frame[EVALUATION_DATE].astype(str).unique()
    if len(dates) != 1:
        raise ValueError(f"{context.asset_key.to_user_string()}: one evaluation_date per partition, got {list(dates)}")
    return str(dates[0])


def history_key(asset_key: dg.AssetKey) -> dg.AssetKey:
    return dg.AssetKey(["history", f"{asset_key.path[-1]}_history"])


class PartitionStore:
    """What both partition IO managers do with an output: the partition's rows stored (`store`, per backend), and a
    moving target's partition kept per evaluation date as well (`_keep_history`, per backend)."""

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        dims, frame = partition_frame(context, obj)
        metadata = self.store(context.asset_key, context.asset_partitions_def if context.has_asset_partitions else None,
                              dims, frame)
        context.add_output_metadata({**metadata, "dagster/row_count": len(frame)})
        if EVALUATION_DATE in frame.columns and MOVING_TARGET in frame.columns and frame[MOVING_TARGET].any():
            self._keep_history(context, frame, dims)


class PartitionedParquetIOManager(PartitionStore, dg.ConfigurableIOManager):
    """Writes `<base_dir>/<asset>/<dim>=<key>/.../data.parquet` and keeps the DuckDB view current."""

    base_dir: str = Field(description="Folder of the Parquet files (WARMTH_HOME/tables)")
    warehouse: WarehouseResource

    def _asset_dir(self, asset_key: dg.AssetKey) -> Path:
        return Path(self.base_dir) / "__".join(asset_key.path)

    def _file(self, asset_key: dg.AssetKey, dims: dict[str, str]) -> Path:
        folder = self._asset_dir(asset_key)
        for name in sorted(dims):
            folder = folder / f"{name}={dims[name]}"
        return folder / "data.parquet"


    def store(self, asset_key: dg.AssetKey, partitions_def, dims: dict[str, str], frame: pd.DataFrame) -> dict:
        """Write one partition's rows (its file replaced whole) and refresh the asset's view."""
        target = self._file(asset_key, dims)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename: a crash never leaves a half-written partition behind.
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)
        self._refresh_view(asset_key, partitions_def)
        return {"path": str(target)}

    def _keep_history(self, context: dg.OutputContext, frame: pd.DataFrame, dims: dict[str, str]) -> None:
        date = history_frame(context, frame)
        history = history_key(context.asset_key)
        target = self._file(history, {**dims, EVALUATION_DATE: date})
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)
        self._refresh_view(history, None, view=history.path[-1])
        context.add_output_metadata({"history_path": str(target), EVALUATION_DATE: date})

    def _refresh_view(self, asset_key: dg.AssetKey, partitions_def=None, view: str | None = None) -> None:
        """(Re)create the view over the asset's files, leaving out partitions the configuration no
        longer has (e.g. a checkpoint epoch removed from [finetune]): their files stay on disk."""
        name = view or "__".join(asset_key.path)
        allowed = _static_keys(partitions_def)
        # List the files under the lock: whoever refreshes last sees every file written before it.
        with self.warehouse.get_connection() as conn:
            files = sorted(self._asset_dir(asset_key).glob("**/data.parquet"))
            if allowed:
                files = [f for f in files if all(
                    part.split("=", 1)[1] in allowed[part.split("=", 1)[0]]
                    for part in f.relative_to(self._asset_dir(asset_key)).parts[:-1]
                    if part.split("=", 1)[0] in allowed)]
            if files:
                listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                conn.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false)')

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | None:
        asset_key = context.asset_key
        if context.has_asset_partitions:
            column = _column(context.upstream_output.definition_metadata if context.upstream_output else None)
            files = [
                self._file(asset_key, split_partition_key(key, context.asset_partitions_def, column))
                for key in context.asset_partition_keys
            ]
        else:
            files = sorted(self._asset_dir(asset_key).glob("**/data.parquet"))
        present = [f for f in files if f.exists()]
        if len(present) < len(files):
            context.log.info(f"{asset_key.to_user_string()}: {len(files) - len(present)} mapped partitions not materialised")
        if not present:
            # e.g. the `original` checkpoint, which no training run maps to
            return None
        return pd.concat([pd.read_parquet(f) for f in present], ignore_index=True)
