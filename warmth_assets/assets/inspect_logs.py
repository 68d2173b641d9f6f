"""Stage `inspect`: every answer of a checkpoint as Inspect evaluation logs, read in Inspect View (`warmth inspect`).

Evaluation teams read transcripts sample by sample; the answers, verdicts and judge replies sit in the warehouse.
This asset writes them per model x checkpoint with inspect_ai's own classes (mapping: lib/inspect_export.py), one
`.eval` log per evaluation set under WARMTH_HOME/inspect/<model>/<checkpoint>/. It calls no model.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from resources.model_registry import read_row
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.automation import per_partition
from warmth_assets.lib import capability, paths
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.rewrite_prompts import chat_messages
from warmth_assets.partitions import StudyPartitions

GROUP = "inspect"
# The template versions the generation requests carry (assets/evaluation.py, assets/warmth.py).
EVAL_TEMPLATE, VALIDATION_TEMPLATE = "eval-v1", "validation-v1"


def shareable(source: str) -> str:
    """A model source as it can be shown to anyone: a path on this machine by its name (hub ids, API names and
    package files as they are). No hashing: the logs are rewritten per partition, weights can be gigabytes."""
    return Path(source).name if Path(source).is_absolute() else source


def generate_configs(settings: StudySettings) -> dict[str, dict]:
    """The generation settings each set was answered with, as Inspect's generate config."""
    gen, seed = settings.generation, settings.project.seed
    return {kind: {"temperature": s.temperature, "max_tokens": s.max_tokens, "seed": seed}
            for kind, s in (("eval", gen.evaluation), ("capability", gen.capability), ("validation", gen.validation))}


def _validation_rows(warehouse: WarehouseResource, model: str, checkpoint: str) -> pd.DataFrame:
    """The checkpoint's validation answers with their SocioT scores (no scores yet: answers alone)."""
    if not warehouse.has_table("validation_generations"):
        return pd.DataFrame(columns=["prompt_id"])
    scored = warehouse.has_table("warmth_scores")
    return warehouse.query_df(
        "SELECT g.conversation_id AS prompt_id, g.* EXCLUDE (conversation_id)"
        + (", s.warm, s.cold, s.warmth, s.se, s.variant, s.scoring_lm" if scored else "")
        + " FROM validation_generations g"
        + (" LEFT JOIN warmth_scores s USING (model, checkpoint, conversation_id)" if scored else "")
        + " WHERE g.model = ? AND g.checkpoint = ?", [model, checkpoint])


def _calls(warehouse: WarehouseResource, frames: list[pd.DataFrame]) -> dict[str, dict]:
    from warmth_assets.lib import inspect_export

    keys = sorted({k for f in frames if "request_key" in f for k in f["request_key"].dropna()})
    if not keys:
        return {}
    return inspect_export.call_lookup(warehouse.query_df(
        "SELECT request_key, request_json, prompt_tokens, completion_tokens, latency_s, created_at FROM llm_calls "
        "WHERE request_key IN (SELECT unnest(?))", [keys]))


def partition_metadata(written: dict[str, tuple[Path, bool]], logs: dict, folder: Path, model: str,
                       checkpoint: str) -> dict:
    """The files (samples, bytes, rewritten or unchanged) and the commands that open them."""
    return {
        "folder": dg.MetadataValue.path(str(folder)),
        "files": dg.MetadataValue.md(pd.DataFrame(
            [{"log": p.name, "samples": len(logs[n].samples or []), "bytes": p.stat().st_size,
              "written": "yes" if w else "unchanged"} for n, (p, w) in sorted(written.items())]).to_markdown(index=False)),
        "samples": sum(len(log.samples or []) for log in logs.values()),
        "bytes": sum(p.stat().st_size for p, _ in written.values()),
        "view": f"warmth inspect --model {model} --checkpoint {checkpoint}",
        "view_with_inspect": f"inspect view --log-dir {folder} --host 127.0.0.1",
    }


def build_assets(parts: StudyPartitions, gpu_tags: dict) -> list[dg.AssetsDefinition]:
    """This stage's partitioned asset over the study's partitions (called by build_defs; no GPU step)."""

    @dg.asset(
        group_name=GROUP,
        automation_condition=per_partition(parts.evaluated),
        kinds={"python", "duckdb"},
        partitions_def=parts.model_evaluated,
        ins={"judgments": dg.AssetIn(), "capability_scores": dg.AssetIn()},
        deps=["warmth_scores", "validation_generations"],
        description=(
            "Every answer of the checkpoint as Inspect evaluation logs (inspect_ai.log classes, `.eval` format), one "
            "per set (TriviaQA, TruthfulQA, MedQA, Disinfo, MMLU, GSM8K, AdvBench, the validation prompts), under "
            "WARMTH_HOME/inspect/<model>/<checkpoint>/: per sample our prompt id, the chat messages sent (from the "
            "call cache), the reference, the answer with token usage, the verdict as the analysis read it (judge's "
            "raw reply as explanation), the refusal flag, reference match, SocioT warmth; per log the error rate "
            "with its Wilson interval, the generation settings, git commit and config sha256. Open with "
            "`warmth inspect`. A re-run leaves unchanged logs as they are."
        ),
    )
    def inspect_logs(context: dg.AssetExecutionContext, judgments: pd.DataFrame, capability_scores: pd.DataFrame,
                     warehouse: WarehouseResource, study: StudyConfigResource) -> dg.MaterializeResult:
        # here, not at the top: inspect_ai takes seconds to import, which every code-location load would pay
        from warmth_assets.lib import inspect_export

        dims = context.partition_key.keys_by_dimension
        model, checkpoint = dims["model"], dims["checkpoint"]
        settings = study.settings
        row = read_row(warehouse, model)
        judged = judgments[judgments["kind"] == "eval"] if "kind" in judgments else judgments
        validation = _validation_rows(warehouse, model, checkpoint)
        header = inspect_export.LogHeader(
            model=model, checkpoint=checkpoint, source=shareable(row.source), config_name=Path(study.config_path).name,
            config_sha256=study.sha256, revision=inspect_export.git_revision(paths.repo_root()),
            imported=row.origin == "import", extra={"origin": row.origin})
        logs = inspect_export.partition_logs(
            header, judged, capability_scores, validation, _calls(warehouse, [judged, capability_scores, validation]),
            generate_configs(settings),
            {"eval": EVAL_TEMPLATE, "capability": capability.TEMPLATE_VERSION, "validation": VALIDATION_TEMPLATE},
            lambda prompt: chat_messages(checkpoint, prompt, settings.rewrite.prompt_version),
            settings.analysis.refusal_list)
        folder = inspect_export.log_folder(paths.warmth_home(), model, checkpoint)
        written = inspect_export.write_logs(logs, folder)
        return dg.MaterializeResult(metadata=partition_metadata(written, logs, folder, model, checkpoint))

    return [inspect_logs]
