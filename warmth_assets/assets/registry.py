"""Stage `registry`: the models under study, and the `models` dynamic partition kept in step with them
(imported models in `imported_models`: docs/design.md §2)."""

import dagster as dg
import pandas as pd

from resources import model_registry as registry_table
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib.registry import registry_rows
from warmth_assets.partitions import imported_models_partitions, models_partitions, sync_model_partitions


@dg.asset(
    group_name="registry",
    kinds={"duckdb"},
    description=(
        "Every model under study (from the configuration, and later from discovery): slug, where its "
        "weights or API name come from, family, chat template, open-weight or API, its checkpoints. "
        "Adds any missing key to the `models` dynamic partition (models whose results were imported go to "
        "`imported_models` instead, and out of `models`); `added_at` survives re-runs."
    ),
)
def model_registry(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource
) -> dg.MaterializeResult:
    rows = registry_rows(study.settings)
    registry_table.upsert(warehouse, rows)
    registered = sorted(registry_table.read_rows(warehouse), key=lambda row: row.slug)
    columns = ["slug", "source_kind", "source", "family", "access", "styles", "origin", "added_at"]
    registry = pd.DataFrame([[getattr(row, c) for c in columns] for row in registered], columns=columns)

    synced = sync_model_partitions(context.instance, registered)
    added = synced["added"]
    if synced["moved_to_imported"]:
        context.log.info(f"imported models moved from 'models' to 'imported_models': {synced['moved_to_imported']}")
    keys = {name: set(context.instance.get_dynamic_partitions(name))
            for name in (models_partitions.name, imported_models_partitions.name)}
    orphans = sorted(set().union(*keys.values()) - set(registry["slug"]))
    if orphans:
        context.log.warning(f"partitions of 'models' or 'imported_models' with no registry row: {orphans}")

    preview = registry.assign(styles=registry["styles"].map(", ".join))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(registry),
            "configured_models": len(rows),
            "partitions_added": added,
            "moved_to_imported_models": synced["moved_to_imported"],
            "partitions_without_registry_row": orphans,
            "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
        }
    )
