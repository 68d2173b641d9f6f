"""Which warehouse a deployment uses, chosen in one place: the DuckDB file under WARMTH_HOME, or
(`[warehouse] backend = "ducklake"`, or WARMTH_WAREHOUSE) the lake whose catalog is the Postgres of WARMTH_PG_*.
The partition IO manager follows the warehouse."""

from __future__ import annotations

import os

import dagster as dg

from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.warehouse import WarehouseResource
from warmth_assets.lib import paths
from warmth_assets.lib.config import ConfigError, StudySettings

PG_ENV = {"host": "WARMTH_PG_HOST", "port": "WARMTH_PG_PORT", "user": "WARMTH_PG_USER", "db": "WARMTH_PG_DB",
          "password": "WARMTH_PG_PASSWORD"}


def warehouse_backend(settings: StudySettings) -> str:
    backend = os.environ.get("WARMTH_WAREHOUSE") or settings.warehouse.backend
    if backend not in ("duckdb", "ducklake"):
        raise ConfigError(f"WARMTH_WAREHOUSE={backend!r}: the warehouse backend is duckdb or ducklake")
    return backend


def warehouse_for(settings: StudySettings, *, env_vars: bool = True) -> WarehouseResource:
    """The warehouse of `settings`. `env_vars`: the lake's connection as Dagster EnvVars, resolved when a run
    starts and shown by name in the UI (for definitions); False: their values, for code outside a run (the
    `warmth` command, the demo's summary), which never prints them."""
    if warehouse_backend(settings) == "duckdb":
        return WarehouseResource(database=str(paths.warehouse_path()))
    from resources.lake import LakeWarehouseResource

    if not os.environ.get(PG_ENV["host"]):
        raise ConfigError('[warehouse] backend = "ducklake" needs the catalog\'s Postgres: set WARMTH_PG_HOST, '
                          "WARMTH_PG_PORT, WARMTH_PG_USER, WARMTH_PG_DB and WARMTH_PG_PASSWORD (`warmth cluster up` "
                          "prints them)")
    connection = {}
    for field, name in PG_ENV.items():
        if os.environ.get(name):
            if env_vars:
                connection[f"pg_{field}"] = dg.EnvVar.int(name) if field == "port" else dg.EnvVar(name)
            else:
                connection[f"pg_{field}"] = int(os.environ[name]) if field == "port" else os.environ[name]
    home = paths.warmth_home()
    return LakeWarehouseResource(
        data_path=settings.warehouse.lake_data_path or f"{home / 'lake'}/",
        metadata_schema=settings.warehouse.lake_metadata_schema,
        inlining_row_limit=settings.warehouse.lake_inlining_row_limit,
        write_retries=settings.warehouse.write_retries,
        extension_dir=str(home / "duckdb_extensions"), journals=str(home / "lake.journal"), **connection)


def partition_io_for(warehouse: WarehouseResource, tables_dir: str | None = None) -> dg.ConfigurableIOManager:
    """Partitions as Parquet files behind DuckDB views (the file), or as rows of lake tables (the lake)."""
    if warehouse.backend == "ducklake":
        from resources.partitioned_lake import PartitionedLakeIOManager

        return PartitionedLakeIOManager(warehouse=warehouse)
    return PartitionedParquetIOManager(base_dir=str(tables_dir or paths.tables_dir()), warehouse=warehouse)


def default_warehouse(settings: StudySettings | None = None) -> WarehouseResource:
    """The warehouse of the configuration (WARMTH_CONFIG), for code outside a run."""
    from warmth_assets.lib.config import load_config

    return warehouse_for(settings or load_config(), env_vars=False)
