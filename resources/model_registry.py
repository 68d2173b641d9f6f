"""The `model_registry` table: every read and write of it goes through here.

Writers: the `model_registry` asset (the configuration, every column updated), `new_model_sensor` (new rows
only: a row already there, by hand or from an earlier tick, is never overwritten) and `warmth import-outputs`
(source, checkpoints and origin of imported models). Readers: the assets of a model checkpoint (one row), the
sensor, the automation conditions, the registry check, the report and the demo summary (all rows), the
re-evaluation schedule (moving targets). The rows are `lib/registry.ModelRow`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import dagster as dg

from resources.warehouse import WarehouseResource, merge_sql
from warmth_assets.lib.registry import REGISTRY_COLUMNS, ModelRow

_COLUMNS = ", ".join(REGISTRY_COLUMNS)
EVERY_COLUMN = tuple(c for c in REGISTRY_COLUMNS if c != "slug")


class ModelNotRegistered(dg.Failure):
    """A model checkpoint's run for a slug with no registry row."""


def _select(warehouse: WarehouseResource, where: str = "", params: list | None = None,
            order: str = "added_at, slug") -> list[ModelRow]:
    with warehouse.get_connection() as conn:
        cursor = conn.execute(f"SELECT {_COLUMNS}, added_at FROM model_registry {where} ORDER BY {order}", params or [])
        names = [d[0] for d in cursor.description]
        return [ModelRow.from_mapping(dict(zip(names, record))) for record in cursor.fetchall()]


def read_row(warehouse: WarehouseResource, slug: str) -> ModelRow:
    rows = _select(warehouse, "WHERE slug = ?", [slug])
    if not rows:
        raise ModelNotRegistered(
            f"model {slug!r} is not in model_registry: add it to [[models]] and materialise model_registry")
    return rows[0]


def read_rows(warehouse: WarehouseResource) -> list[ModelRow]:
    """Every row, oldest first (a slug registered twice over time keeps its place)."""
    return _select(warehouse)


def moving_targets(warehouse: WarehouseResource, checkpoints: list[str]) -> list[tuple[str, str]]:
    """(model, checkpoint) of every moving target, for the checkpoints it has among `checkpoints`, by slug.
    Imported models are results: never asked again, whatever their row says."""
    rows = _select(warehouse, "WHERE moving_target AND origin <> 'import'", order="slug")
    return [(row.slug, c) for row in rows for c in row.checkpoints if c in checkpoints]


def upsert(warehouse: WarehouseResource, rows: Iterable[Mapping], update: Iterable[str] = EVERY_COLUMN) -> int:
    """Insert `rows`; a slug already registered gets the columns in `update` (and `updated_at`) from its new row,
    or is left as it is when `update` is empty. `added_at` is never touched: it dates the first registration."""
    rows = [ModelRow.from_mapping(row) for row in rows]
    update = list(update)
    unknown = sorted(set(update) - set(EVERY_COLUMN))
    if unknown:
        raise ValueError(f"not updatable registry columns: {unknown}")
    if rows:
        sql = merge_sql("model_registry", ["slug"], REGISTRY_COLUMNS, update=update, touch="updated_at")
        warehouse.write(lambda conn: conn.executemany(sql, [list(row.values()) for row in rows]),
                        ["model_registry"], exclusive=True)
    return len(rows)
