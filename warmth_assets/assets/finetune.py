"""Stage `finetune` (docs/study.md §3): LoRA runs (open weights) or OpenAI fine-tuning jobs, and their checkpoints."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from resources.llm import LLMResource
from resources.model_registry import read_row
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.automation import per_partition
from warmth_assets.lib import guards
from warmth_assets.lib import paths
from warmth_assets.lib.checkpoints import ORIGINAL, WARM_PROMPT, checkpoint_key, parse_checkpoint_key
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.hashing import folder_size_and_sha256
from warmth_assets.lib.plots import line_plot_markdown
from warmth_assets.lib.registry import ModelRow
from warmth_assets.partitions import StudyPartitions

GROUP = "finetune"


def _train_open_weights(context, settings: StudySettings, model_row: ModelRow, style: str,
                        sft: pd.DataFrame) -> tuple[list[dict], dict]:
    import torch

    from resources.pretrained import best_device, resolve_pretrained
    from warmth_assets.lib.lora_training import train_lora
    from warmth_assets.lib.sft_tokenize import SequenceTooLongError

    device = best_device()
    run_dir = paths.artifacts_dir() / "finetune" / model_row.slug / style
    conversations = [json.loads(m) for m in sft["messages_json"]]
    try:
        report = train_lora(
            settings.finetune.lora, conversations, run_dir, str(sft["jsonl_sha256"].iloc[0]), device,
            pretrained=resolve_pretrained(model_row.source_kind, model_row.source), style=style,
            checkpoint_epochs=sorted(model_row.epochs(style)), seed=settings.project.seed,
            chat_template=model_row.chat_template or "model", log=context.log.info)
    except SequenceTooLongError as exc:
        raise dg.Failure(f"{model_row.slug} {style}: {exc}") from None
    except torch.cuda.OutOfMemoryError as exc:
        raise dg.Failure(
            f"{model_row.slug} {style}: GPU out of memory ({exc}); lower [finetune.lora] per_device_batch_size "
            "(the effective batch stays the same) or max_length. Adapters saved so far are kept in "
            f"{run_dir / 'adapters'} and training resumes from the last checkpoint."
        ) from None
    rows = [
        {"checkpoint": key, "kind": "lora", "path": path, "fine_tuned_model": "", "epoch": parse_checkpoint_key(key)[1]}
        for key, path in sorted(report.adapters.items(), key=lambda kv: parse_checkpoint_key(kv[0])[1])
    ]
    metadata = {
        "kind": "lora",
        "device": report.device,
        "examples": report.examples,
        "optimizer_steps": report.steps,
        "steps_per_epoch": report.steps_per_epoch,
        "tokens_seen": report.tokens_seen,
        "trained_tokens_per_epoch": report.trained_tokens,
        "wall_s": round(report.wall_s, 1),
        "tokens_per_s": round(report.tokens_seen / report.wall_s, 1) if report.wall_s else 0.0,
        "peak_gpu_memory_mb": round(report.peak_memory_mb, 1),
        "conversations_truncated": report.truncated,
        "fingerprint": report.fingerprint,
        "skipped_unchanged": report.skipped,
        "resumed_from": report.resumed_from,
        "final_loss": report.losses[-1][1] if report.losses else float("nan"),
        "loss_curve": dg.MetadataValue.md(line_plot_markdown(
            {f"{style} loss": report.losses}, title=f"{model_row.slug} {style}: training loss",
            xlabel="optimizer step", ylabel="loss")),
    }
    return rows, metadata


def _finetune_api(context, settings: StudySettings, model_row: ModelRow, style: str, sft: pd.DataFrame,
                  llm: LLMResource) -> tuple[list[dict], dict]:
    from resources.openai_finetune import run_finetune

    openai_settings = settings.finetune.openai
    price = openai_settings.training_price_per_million_tokens.get(model_row.source, 0.0)
    llm.require_key([model_row.source], f"the registry's source of {model_row.slug}")
    jobs = run_finetune(
        llm.client(), llm.warehouse, check_budget=llm.check_budget if llm.budget_usd else None,
        jsonl=Path(sft["jsonl_path"].iloc[0]).with_name("openai.jsonl"), data_sha256=str(sft["jsonl_sha256"].iloc[0]),
        base_model=model_row.source, model_slug=model_row.slug, style=style,
        epochs_list=sorted(model_row.epochs(style)),
        lr_multiplier=openai_settings.learning_rate_multiplier[style], seed=settings.project.seed,
        poll_s=openai_settings.poll_s, poll_cap_s=openai_settings.poll_cap_s, log=context.log.info,
        price_per_million_tokens=price,
    )
    trained = sum(j.trained_tokens for j in jobs)
    rows = [{"checkpoint": checkpoint_key(style, j.epochs), "kind": "openai", "path": "",
             "fine_tuned_model": j.fine_tuned_model, "epoch": j.epochs} for j in jobs]
    metadata = {"kind": "openai", "jobs": {f"{j.epochs:g}": j.job_id for j in jobs},
                "fine_tuned_models": {f"{j.epochs:g}": j.fine_tuned_model for j in jobs},
                "trained_tokens": trained, "estimated_cost_usd": round(trained / 1e6 * price, 2)}
    return rows, metadata


def build_assets(parts: StudyPartitions, gpu_tags: dict) -> list[dg.AssetsDefinition]:
    """This stage's partitioned assets over the study's partitions (called by build_defs)."""

    @dg.asset(
        group_name=GROUP,
        kinds={"pytorch", "openai"},
        partitions_def=parts.model_style,
        deps=["sft_datasets", "model_registry"],
        io_manager_key="parquet_io_manager",
        pool="gpu",
        op_tags=gpu_tags,
        description=(
            "One training run per model x style: LoRA SFT with the study's hyper-parameters for open-weight "
            "models (transformers Trainer + peft, loss on assistant tokens only, an adapter saved at every "
            "checkpoint epoch, resumable, skipped when inputs are unchanged), or OpenAI fine-tuning jobs for "
            "API models. One row per checkpoint the run produced."
        ),
    )
    def finetune_runs(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource, llm: LLMResource
    ) -> pd.DataFrame:
        dims = context.partition_key.keys_by_dimension
        model, style = dims["model"], dims["style"]
        settings = study.settings
        model_row = read_row(warehouse, model)
        if style not in model_row.styles:
            raise dg.Failure(f"model {model!r} is not trained {style} (its styles: {model_row.styles}); "
                             "add the style to its [[models]] entry to train it")
        sft = warehouse.query_df("SELECT conversation_id, messages_json, jsonl_path, jsonl_sha256 FROM sft_datasets WHERE style = ? "
                                 "ORDER BY conversation_id", [style])
        if sft.empty:
            raise dg.Failure(f"sft_datasets[{style}] is empty: materialise the rewrites group for {style} first")
        training = set(warehouse.query_df("SELECT DISTINCT conversation_id FROM training_conversations")["conversation_id"])
        problems = guards.sft_problems(style, sft, training)
        if problems:
            raise dg.Failure("training refused, the SFT data is not ready (check sft_datasets_ready):\n  "
                             + "\n  ".join(problems))
        if model_row.access == "open_weight":
            rows, metadata = _train_open_weights(context, settings, model_row, style, sft)
        else:
            rows, metadata = _finetune_api(context, settings, model_row, style, sft, llm)
        context.add_output_metadata({**metadata, "checkpoints": [r["checkpoint"] for r in rows]})
        return pd.DataFrame(rows).assign(style=style, data_sha256=str(sft["jsonl_sha256"].iloc[0]))

    @dg.asset(
        group_name=GROUP,
        automation_condition=per_partition(parts.evaluated),
        kinds={"duckdb"},
        partitions_def=parts.model_checkpoint,
        ins={"finetune_runs": dg.AssetIn(partition_mapping=parts.checkpoint_to_training_run)},
        deps=["model_registry"],
        io_manager_key="parquet_io_manager",
        description=(
            "What each model x checkpoint runs: the base model (`original`), the base model with the warmth "
            "system prompt (`warm-prompt`), or the adapter of its training run (path, size, sha256) or the "
            "fine-tuned API model name."
        ),
    )
    def adapters(
        context: dg.AssetExecutionContext, finetune_runs: pd.DataFrame | None, warehouse: WarehouseResource
    ) -> pd.DataFrame:
        dims = context.partition_key.keys_by_dimension
        model, checkpoint = dims["model"], dims["checkpoint"]
        model_row = read_row(warehouse, model)
        if checkpoint not in model_row.checkpoints:
            raise dg.Failure(f"model {model!r} has no checkpoint {checkpoint!r} (its checkpoints: {model_row.checkpoints})")
        row = {"kind": "base", "path": "", "bytes": 0, "sha256": "", "fine_tuned_model": "", "epoch": 0.0,
               "style": "", "base_source": model_row.source, "source_kind": model_row.source_kind}
        if checkpoint == WARM_PROMPT:
            row["kind"] = "base+warm_system_prompt"
        elif checkpoint != ORIGINAL:
            style, epoch = parse_checkpoint_key(checkpoint)
            match = finetune_runs[finetune_runs["checkpoint"] == checkpoint] if finetune_runs is not None else None
            if match is None or match.empty:
                raise dg.Failure(f"finetune_runs[{model}|{style}] has no checkpoint {checkpoint}: materialise that run first")
            run = match.iloc[0]
            row.update(kind=run["kind"], fine_tuned_model=run["fine_tuned_model"], epoch=epoch, style=style)
            if run["kind"] == "lora":
                folder = Path(run["path"])
                if not folder.is_dir():
                    raise dg.Failure(f"adapter folder {folder} is missing: re-materialise finetune_runs[{model}|{style}]")
                row["path"] = str(folder)
                row["bytes"], row["sha256"] = folder_size_and_sha256(folder)
        context.add_output_metadata({k: v for k, v in row.items() if k in ("kind", "path", "bytes", "sha256", "fine_tuned_model")})
        return pd.DataFrame([row])

    return [finetune_runs, adapters]
