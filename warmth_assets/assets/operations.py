"""Stage `operations`: what the configured study will cost before it is run."""

import dagster as dg
import pandas as pd

from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib import costs

GROUP = "operations"


def warehouse_counts(warehouse: WarehouseResource) -> dict:
    """What the warehouse already knows about the texts (an empty table contributes nothing)."""
    row = warehouse.query_df("""
        SELECT (SELECT count(*) FROM training_conversations WHERE role = 'assistant') AS assistant_turns,
               (SELECT avg(length(text)) FROM training_conversations WHERE role = 'assistant') AS assistant_chars,
               (SELECT sum(length(text)) FROM training_conversations) AS sft_chars,
               (SELECT count(*) FROM eval_prompts) AS eval_prompts,
               (SELECT avg(length(prompt)) FROM eval_prompts) AS eval_prompt_chars,
               (SELECT count(*) FROM capability_items) AS capability_items,
               (SELECT count(*) FROM validation_prompts) AS validation_prompts
    """).iloc[0]
    counts = {k: int(row[k]) for k in ("assistant_turns", "eval_prompts", "capability_items", "validation_prompts")
              if row[k]}
    if pd.notna(row["assistant_chars"]) and row["assistant_chars"]:
        counts["assistant_turn_tokens"] = row["assistant_chars"] / costs.CHARS_PER_TOKEN
        counts["sft_tokens"] = row["sft_chars"] / costs.CHARS_PER_TOKEN
    if pd.notna(row["eval_prompt_chars"]) and row["eval_prompt_chars"]:
        counts["eval_prompt_tokens"] = row["eval_prompt_chars"] / costs.CHARS_PER_TOKEN
    return counts


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    description=(
        "Dry run: calls, tokens and dollars of the configured study's API work (rewrites, judging, API-model "
        "generations, API fine-tuning), from the real texts where the warehouse has them, else from the "
        "configured sizes; beside [operations] budget_usd, which the llm resource enforces before every batch."
    ),
)
def cost_estimate(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.MaterializeResult:
    settings = study.settings
    counts = warehouse_counts(warehouse)
    frame = costs.study_estimate(settings, counts)
    warehouse.replace_rows("cost_estimate", frame)
    total = float(frame["usd"].sum())
    budget = settings.operations.budget_usd
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "estimated_usd": round(total, 2),
        "budget_usd": budget or "none",
        "within_budget": (not budget) or total <= budget,
        "from_warehouse": sorted(counts),
        "estimate": dg.MetadataValue.md(frame.to_markdown(index=False)),
    })
