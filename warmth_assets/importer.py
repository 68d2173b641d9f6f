"""`warmth import-outputs`: the study's released outputs stored as generations and judgments.

Every file is read and checked first (lib/outputs_import.py); only then are models registered,
partitions added and Parquet partitions written, so a bad file imports nothing. Each partition also gets its
Inspect logs (tagged `imported`), so the study's own answers can be read beside ours in Inspect View.

Dagster records an import on the external asset `imported_outputs`, one partition per imported model x
checkpoint (`imported_models` x `imported_checkpoints`); the imported models stay out of `models`, the partition
of the stages they never enter (docs/design.md §2). The rows go to the `generations` and `judgments` tables
beside our own, so the analysis reads both alike.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from resources import model_registry
from resources.warehouses import partition_io_for
from resources.warehouse import WarehouseResource
from warmth_assets.assets.analysis import imported_outputs
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.outputs_import import read_release
from warmth_assets.lib.registry import ModelRow
from warmth_assets.partitions import imported_checkpoints_partitions, study_partitions, sync_model_partitions

JUDGE = "study:gpt-4o-2024-08-06"
GENERATION_COLUMNS = ["prompt_id", "dataset", "prompt", "response", "source_file", "source_row"]


def import_outputs(root: Path, warm_checkpoint: str, *, settings: StudySettings, warehouse: WarehouseResource,
                   tables_dir: Path, instance: dg.DagsterInstance) -> dict:
    partitions = study_partitions(settings)
    evaluated = partitions.evaluated_checkpoint.get_partition_keys()
    if warm_checkpoint not in evaluated:
        # The generations and judgments tables list only the evaluated checkpoints' files: rows stored at another
        # would never be read.
        raise ValueError(f"--warm-checkpoint {warm_checkpoint!r} is not an evaluated checkpoint "
                         f"([evaluation] checkpoints: {evaluated})")
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
    sync_model_partitions(instance, [row for row in model_registry.read_rows(warehouse) if row.slug in models])
    checkpoints = sorted({checkpoint for _, checkpoint in frames}, key=evaluated.index)
    existing = set(instance.get_dynamic_partitions(imported_checkpoints_partitions.name))
    instance.add_dynamic_partitions(imported_checkpoints_partitions.name, [c for c in checkpoints if c not in existing])

    io = partition_io_for(warehouse, str(tables_dir))
    counts = {}
    for (model, checkpoint), parts in sorted(frames.items()):
        rows = pd.concat(parts, ignore_index=True).assign(model=model, checkpoint=checkpoint)
        generations = rows[GENERATION_COLUMNS].assign(kind="eval", model=model, checkpoint=checkpoint,
                                                      backend="import:warm_ai_2025", generator=model)
        judgments = rows.drop(columns=["prompt"]).assign(kind="eval", judge_model=JUDGE, judge_raw=rows["verdict"],
                                                         judge_prompt_version="study")
        files_written = {}
        for asset, frame in (("generations", generations), ("judgments", judgments)):
            stored = io.store(dg.AssetKey(asset), partitions.model_evaluated, {"model": model, "checkpoint": checkpoint},
                              frame)
            files_written[f"{asset}_stored"] = dg.MetadataValue.text(str(stored.get("path") or stored.get("table")))
        counts[f"{model}|{checkpoint}"] = len(rows)
        folder = _write_inspect_logs(rows, model, checkpoint, root, settings)
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=imported_outputs.key, partition=dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint}),
            metadata={"source": "warmth import-outputs (warm_ai_2025)", "root": str(root), "imported": True,
                      "dagster/row_count": len(rows), **files_written, "inspect_folder": str(folder),
                      "view": f"warmth inspect --model {model} --checkpoint {checkpoint}"}))
    return {"files": len(files), "rows": sum(counts.values()), "models": models, "partitions": counts}


def _write_inspect_logs(rows: pd.DataFrame, model: str, checkpoint: str, root: Path, settings: StudySettings) -> Path:
    """The imported partition as Inspect logs, marked imported (tag, metadata): the study's released prompt as the
    one user message, its verdict (the study's GPT-4o judge) as the score; no call, so no usage or time. Returns
    their folder."""
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
    return folder
