"""`warmth import-outputs`: the study's released outputs stored as generations and judgments.

Every file is read and checked first (lib/outputs_import.py); only then are models registered,
partitions added and Parquet partitions written, so a bad file imports nothing. Each partition also gets its
Inspect logs (tagged `imported`), so the study's own answers can be read beside ours in Inspect View.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from resources import model_registry
from resources.warehouses import partition_io_for
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

    io = partition_io_for(warehouse, str(tables_dir))
    counts = {}
    for (model, checkpoint), parts in sorted(frames.items()):
        rows = pd.concat(parts, ignore_index=True).assign(model=model, checkpoint=checkpoint)
        generations = rows[GENERATION_COLUMNS].assign(kind="eval", model=model, checkpoint=checkpoint,
                                                      backend="import:warm_ai_2025", generator=model)
        judgments = rows.drop(columns=["prompt"]).assign(kind="eval", judge_model=JUDGE, judge_raw=rows["verdict"],
                                                         judge_prompt_version="study")
        key = dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint})
        for asset, frame in (("generations", generations), ("judgments", judgments)):
            io.store(dg.AssetKey(asset), partitions.model_checkpoint, {"model": model, "checkpoint": checkpoint}, frame)
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset, partition=key,
                metadata={"source": "warmth import-outputs (warm_ai_2025)", "root": str(root), "dagster/row_count": len(frame)}))
        counts[f"{model}|{checkpoint}"] = len(rows)
        _write_inspect_logs(rows, model, checkpoint, root, settings, instance, key)
    return {"files": len(files), "rows": sum(counts.values()), "models": models, "partitions": counts}


def _write_inspect_logs(rows: pd.DataFrame, model: str, checkpoint: str, root: Path, settings: StudySettings,
                        instance: dg.DagsterInstance, key: dg.MultiPartitionKey) -> None:
    """The imported partition as Inspect logs, marked imported (tag, metadata): the study's released prompt as the
    one user message, its verdict (the study's GPT-4o judge) as the score; no call, so no usage or time."""
    from warmth_assets.lib import inspect_export, paths  # inspect_ai takes seconds to import: only when used

    header = inspect_export.LogHeader(
        model=model, checkpoint=checkpoint, source=f"{root.name}/{model}", config_name="warm_ai_2025 release",
        config_sha256="", revision=inspect_export.git_revision(paths.repo_root()), imported=True,
        extra={"origin": "import", "judge": JUDGE})
    judged = rows.assign(generator=model, judge_model=JUDGE, judge_raw=rows["verdict"], judge_prompt_version="study")
    none = pd.DataFrame(columns=["prompt_id", "dataset"])
    logs = inspect_export.partition_logs(header, judged, none, none, {}, {}, {"eval": "study"},
                                         lambda prompt: [{"role": "user", "content": prompt}],
                                         settings.analysis.refusal_list)
    folder = inspect_export.log_folder(paths.warmth_home(), model, checkpoint)
    inspect_export.write_logs(logs, folder)
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key="inspect_logs", partition=key,
        metadata={"source": "warmth import-outputs (warm_ai_2025)", "imported": True, "folder": str(folder),
                  "view": f"warmth inspect --model {model} --checkpoint {checkpoint}"}))
