"""[warehouse]: where the tables live. The embedded DuckDB file on one machine; a DuckLake (catalog in Postgres,
Parquet files on a shared path or object storage) when steps on several nodes write at once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from warmth_assets.lib.config.base import Section


class WarehouseSettings(Section):
    backend: Literal["duckdb", "ducklake"] = Field(
        "duckdb", description="duckdb: one file under WARMTH_HOME, one writer at a time; ducklake: the catalog in the "
        "Postgres of WARMTH_PG_HOST/PORT/USER/DB (password WARMTH_PG_PASSWORD), many writers. WARMTH_WAREHOUSE "
        "overrides it")
    lake_data_path: str = Field(
        "", description="ducklake: the Parquet files, a folder every node sees or an s3:// URL; empty: "
        "WARMTH_HOME/lake/ (one machine). Fixed when the lake is created")
    lake_metadata_schema: str = Field(
        "warmth_lake", pattern=r"^[a-z_][a-z0-9_]*$", description="ducklake: Postgres schema of the catalog's tables")
    lake_inlining_row_limit: int = Field(
        0, ge=0, description="ducklake: inserts of at most this many rows stay in the catalog until the maintenance "
        "job flushes them to Parquet (fewer small files); 0: every insert writes a file")
    write_retries: int = Field(
        30, ge=0, description="ducklake: retries of a partition overwrite refused because another writer of the "
        "table committed first (each is logged and counted)")
