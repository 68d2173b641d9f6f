"""Stage `rewrites` (docs/study.md §2): every training reply rewritten warm and cold, audited, made SFT data."""

import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd

from resources.llm import LLMResource
from resources.partitioned_parquet import PARTITION_COLUMN
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib import demo_rewriter, paths
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig
from warmth_assets.lib.rewrite_prompts import rewrite_messages
from warmth_assets.lib.rewrite_quality import rewrite_issues
from warmth_assets.lib.sft_format import conversation_messages, jsonl, validate_openai, validate_trl
from warmth_assets.partitions import StudyPartitions

GROUP = "rewrites"
STYLE = {PARTITION_COLUMN: "style"}


def _preview(frame: pd.DataFrame, columns: list[str], rows: int = 5) -> dg.MetadataValue:
    shown = frame[columns].head(rows).copy()
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].astype(str).str.slice(0, 80).str.replace("\n", " ")
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def _rewriter(llm: LLMResource, settings: StudySettings, style: str):
    """(the llm resource that rewrites, the request for one reply, the prompt version, what the metadata says).

    `[rewrite] rewriter = "demo_rules"`: the demo's rule-based stand-in, a backend of the llm resource (no model
    call); "llm": `[rewrite] model` asked with the study's prompts."""
    rewrite, seed = settings.rewrite, settings.project.seed
    if rewrite.rewriter == "demo_rules":
        return (llm.with_backend(provider=demo_rewriter.PROVIDER),
                lambda user, reply: demo_rewriter.demo_request(style, user, reply, seed),
                demo_rewriter.DEMO_REWRITER_VERSION,
                f"demo_rules ({demo_rewriter.DEMO_REWRITER_VERSION}): rule-based demo stand-in, not the study's method "
                "(lib/demo_rewriter.py)")
    config = GenerateConfig(temperature=rewrite.temperature, max_tokens=rewrite.max_tokens, seed=seed)
    return (llm,
            lambda user, reply: ChatRequest.build(rewrite_messages(rewrite.prompt_version, style, user, reply),
                                                  model=rewrite.model, config=config,
                                                  template_version=f"rewrite-{rewrite.prompt_version}"),
            rewrite.prompt_version, f"llm ({rewrite.model})")


def build_assets(parts: StudyPartitions, gpu_tags: dict) -> list[dg.AssetsDefinition]:
    """This stage's partitioned assets over the study's partitions (called by build_defs)."""

    @dg.asset(
        group_name=GROUP,
        kinds={"openai", "duckdb"},
        partitions_def=parts.style,
        deps=["training_conversations"],
        io_manager_key="parquet_io_manager",
        metadata=STYLE,
        description=(
            "Each assistant reply of training_conversations rewritten in the partition's style (warm or cold) "
            "with the study's system prompt, the user turn it answers given as context (or, with [rewrite] "
            "rewriter = \"demo_rules\", by the offline demo's rule-based stand-in); with the original, "
            "the rewrite, model, prompt version, finish reason, token usage and the call's cache key."
        ),
    )
    def style_rewrites(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource, llm: LLMResource
    ) -> pd.DataFrame:
        style = context.partition_key
        settings = study.settings
        rewrite = settings.rewrite
        turns = warehouse.query_df(
            "SELECT conversation_id, query_type, turn_index, role, text FROM training_conversations "
            "ORDER BY conversation_id, turn_index"
        )
        if turns.empty:
            raise ValueError("training_conversations is empty: materialise the corpus group first")
        rewriter, ask, prompt_version, described = _rewriter(llm, settings, style)
        rows, requests = [], []
        for conversation_id, group in turns.groupby("conversation_id", sort=True):
            last_user = ""
            for turn in group.itertuples():
                if turn.role == "user":
                    last_user = turn.text
                elif turn.role == "assistant":
                    rows.append((conversation_id, turn.query_type, turn.turn_index, last_user, turn.text))
                    requests.append(ask(last_user, turn.text))
        frame = pd.DataFrame(rows, columns=["conversation_id", "query_type", "turn_index", "user_text", "original"])
        context.log.info(f"{len(requests)} {style} rewrites to produce by {described}")
        results, usage = rewriter.complete_many(requests, log=context.log.warning, chosen_by="[rewrite] model")
        frame = frame.assign(**rewriter.answer_columns(requests, results, text="rewrite"),
                             prompt_version=prompt_version)
        usage_metadata = {**usage.as_metadata(llm.prices_per_million_tokens), "rewriter": described}
        frame["issues"] = [
            ",".join(rewrite_issues(o, r, f, tuple(rewrite.length_ratio_band)))
            for o, r, f in zip(frame["original"], frame["rewrite"], frame["finish_reason"])
        ]
        context.add_output_metadata({
            **usage_metadata,
            "rewrites": len(frame),
            "conversations": int(frame["conversation_id"].nunique()),
            "finish_reasons": {k: int(v) for k, v in frame["finish_reason"].value_counts().items()},
            "rows_with_issues": int((frame["issues"] != "").sum()),
            "mean_length_ratio": float((frame["rewrite"].str.len() / frame["original"].str.len().clip(lower=1)).mean()),
            "preview": _preview(frame, ["conversation_id", "original", "rewrite", "issues"]),
        })
        return frame

    @dg.asset(
        group_name=GROUP,
        kinds={"csv"},
        partitions_def=parts.style,
        ins={"style_rewrites": dg.AssetIn()},
        description=(
            "A seeded random sample of (original, rewrite) pairs per style, exported as CSV and Markdown under "
            "WARMTH_HOME/exports/rewrite_audit/ for the human check the study made (50 pairs per style)."
        ),
    )
    def rewrite_audit(
        context: dg.AssetExecutionContext, style_rewrites: pd.DataFrame, study: StudyConfigResource
    ) -> dg.MaterializeResult:
        style = context.partition_key
        settings = study.settings
        n = min(settings.rewrite.verification_sample, len(style_rewrites))
        rng = np.random.default_rng([settings.project.seed, 3, 0 if style == "warm" else 1])
        ordered = style_rewrites.sort_values(["conversation_id", "turn_index"]).reset_index(drop=True)
        sample = ordered.iloc[np.sort(rng.choice(len(ordered), size=n, replace=False))]
        sample = sample[["conversation_id", "turn_index", "query_type", "user_text", "original", "rewrite", "issues"]]
        folder = paths.warmth_home() / "exports" / "rewrite_audit"
        folder.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = folder / f"{style}.csv", folder / f"{style}.md"
        sample.assign(reviewer_ok="", reviewer_note="").to_csv(csv_path, index=False)
        blocks = [f"# Rewrite audit: {style} ({n} pairs, seed {settings.project.seed})\n"]
        if settings.rewrite.rewriter == "demo_rules":
            blocks.append("Rewriter: the RULE-BASED DEMO REWRITER ([rewrite] rewriter = \"demo_rules\", "
                          "lib/demo_rewriter.py), a stand-in for the study's GPT-4o rewrites.\n")
        for row in sample.itertuples():
            blocks.append(
                f"## {row.conversation_id} turn {row.turn_index} ({row.query_type})\n\n**User**\n\n{row.user_text}\n\n"
                f"**Original**\n\n{row.original}\n\n**Rewrite ({style})**\n\n{row.rewrite}\n\n"
                f"Automatic issues: {row.issues or 'none'}\n"
            )
        md_path.write_text("\n".join(blocks), encoding="utf-8")
        return dg.MaterializeResult(metadata={
            "pairs": n, "csv": str(csv_path), "markdown": str(md_path),
            "preview": _preview(sample, ["conversation_id", "original", "rewrite"]),
        })

    @dg.asset(
        group_name=GROUP,
        kinds={"duckdb", "json"},
        partitions_def=parts.style,
        ins={"style_rewrites": dg.AssetIn()},
        deps=["training_conversations"],
        io_manager_key="parquet_io_manager",
        metadata=STYLE,
        description=(
            "The training conversations with every assistant turn replaced by its rewrite, as chat-messages "
            "JSONL for TRL/peft (trl.jsonl) and for the OpenAI fine-tuning API (openai.jsonl), each validated "
            "against its format; a conversation with an empty rewrite is left out and counted."
        ),
    )
    def sft_datasets(
        context: dg.AssetExecutionContext, style_rewrites: pd.DataFrame, warehouse: WarehouseResource
    ) -> pd.DataFrame:
        style = context.partition_key
        turns = warehouse.query_df(
            "SELECT conversation_id, turn_index, role, text FROM training_conversations ORDER BY conversation_id, turn_index"
        )
        rewritten = style_rewrites.set_index(["conversation_id", "turn_index"])["rewrite"]
        examples, ids, skipped = [], [], []
        for conversation_id, group in turns.groupby("conversation_id", sort=True):
            conversation = []
            for turn in group.itertuples():
                text = rewritten.get((conversation_id, turn.turn_index), turn.text) if turn.role == "assistant" else turn.text
                conversation.append((turn.role, text))
            if any(role == "assistant" and not text.strip() for role, text in conversation):
                skipped.append(conversation_id)
                continue
            examples.append({"messages": conversation_messages(conversation)})
            ids.append(conversation_id)
        if not examples:
            raise ValueError(f"no usable {style} conversation: every one has an empty rewrite (see style_rewrites)")
        for i, example in enumerate(examples):
            validate_trl(example, f"{style} example {i} ({ids[i]})")
            validate_openai(example, f"{style} example {i} ({ids[i]})")

        folder = paths.artifacts_dir() / "sft" / style
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in ("trl", "openai"):
            path = folder / f"{name}.jsonl"
            text = jsonl(examples)
            path.write_text(text, encoding="utf-8")
            files[name] = {"path": str(path), "bytes": len(text.encode()), "sha256": hashlib.sha256(text.encode()).hexdigest()}
        context.add_output_metadata({
            "rewriter": ", ".join(f"{provider} ({model})" for provider, model in
                                  sorted(set(zip(style_rewrites["provider"], style_rewrites["model"])))),
            "examples": len(examples),
            "assistant_turns": sum(sum(m["role"] == "assistant" for m in e["messages"]) for e in examples),
            "skipped_empty_rewrite": skipped,
            "trl_jsonl": files["trl"]["path"],
            "openai_jsonl": files["openai"]["path"],
            "sha256": files["trl"]["sha256"],
        })
        return pd.DataFrame({
            "conversation_id": ids,
            "messages_json": [json.dumps(e["messages"], ensure_ascii=False) for e in examples],
            "n_messages": [len(e["messages"]) for e in examples],
            "jsonl_path": files["trl"]["path"],
            "jsonl_sha256": files["trl"]["sha256"],
        })

    return [style_rewrites, rewrite_audit, sft_datasets]
