"""`warmth import-outputs`: the study's released outputs stored as generations and judgments.

Every file is read and checked first (lib/outputs_import.py); only then are models registered,
partitions added and Parquet partitions written, so a bad file imports nothing.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from resources import model_registry
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.warehouse import WarehouseResource
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.outputs_import import read_release
from warmth_assets.lib.registry import ModelRow
from warmth_assets.partitions import models_partitions, study_partitions

JUDGE = "study:gpt-4o-2024-08-06"
GENERATION_COLUMNS = ["prompt_id", "dataset", "prompt", "response", "source_file", "source_row"]


def import_outputs(root: Path, warm_checkpoint: str, *, settings: StudySettings, warehouse: WarehouseResource,
                   tables_dir: Path, instance: dg.DagsterInstance) -> dict:
    partitions = study_partitions(settings)
    if warm_checkpoint not in partitions.checkpoint.get_partition_keys():
        raise ValueError(f"--warm-checkpoint {warm_checkpoint!r} is not a configured checkpoint "
                         f"({partitions.checkpoint.get_partition_keys()})")
    files = read_release(root)
    frames: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for f in files:
        checkpoint = "original" if f.stage == "original" else warm_checkpoint
        frames.setdefault((f.model, checkpoint), []).append(f.rows)

    models = sorted({m for m, _ in frames})
    model_registry.upsert(warehouse, [
        ModelRow(slug=model, source_kind="local", source=str(root / model), family=model, chat_template="model",
                 access="open_weight", styles=["warm"], checkpoints=["original", warm_checkpoint], origin="import")
        for model in models], update=("source", "checkpoints", "origin"))
    existing = set(instance.get_dynamic_partitions(models_partitions.name))
    instance.add_dynamic_partitions(models_partitions.name, [m for m in models if m not in existing])

    io = PartitionedParquetIOManager(base_dir=str(tables_dir), warehouse=warehouse)
    counts = {}
    for (model, checkpoint), parts in sorted(frames.items()):
        rows = pd.concat(parts, ignore_index=True).assign(model=model, checkpoint=checkpoint)
        generations = rows[GENERATION_COLUMNS].assign(kind="eval", model=model, checkpoint=checkpoint,
                                                      backend="import:warm_ai_2025", generator=model)
        judgments = rows.drop(columns=["prompt"]).assign(kind="eval", judge_model=JUDGE, judge_raw=rows["verdict"],
                                                         judge_prompt_version="study")
        key = dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint})
        for asset, frame in (("generations", generations), ("judgments", judgments)):
            target = tables_dir / asset / f"checkpoint={checkpoint}" / f"model={model}" / "data.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(target, index=False)
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset, partition=key,
                metadata={"source": "warmth import-outputs (warm_ai_2025)", "root": str(root), "dagster/row_count": len(frame)}))
        counts[f"{model}|{checkpoint}"] = len(rows)
    for asset in ("generations", "judgments"):
        io._refresh_view(dg.AssetKey(asset), partitions.model_checkpoint)
    return {"files": len(files), "rows": sum(counts.values()), "models": models, "partitions": counts}
