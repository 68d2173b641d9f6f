"""Asset checks. Blocking where bad data would waste GPU or API money downstream; a non-blocking warning per
partitioned asset whose partitions a settings change (or an updated input) made stale."""

import dagster as dg

from resources.model_registry import read_rows
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets import staleness
from warmth_assets.assets.registry import model_registry
from warmth_assets.lib import guards, stale_report
from warmth_assets.lib.slugs import InvalidSlugError, validate_slug
from warmth_assets.partitions import imported_models_partitions, models_partitions


@dg.asset_check(
    asset=model_registry,
    blocking=True,
    description="The registry rows and the dynamic partitions are the same sets of valid slugs: imported models in "
                "`imported_models`, every other model in `models` (docs/design.md §2).",
)
def model_registry_matches_partitions(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    rows = read_rows(warehouse)
    wanted = {models_partitions.name: {row.slug for row in rows if not row.imported},
              imported_models_partitions.name: {row.slug for row in rows if row.imported}}
    found = {name: set(context.instance.get_dynamic_partitions(name)) for name in wanted}
    invalid = []
    for slug in sorted(set().union(*wanted.values(), *found.values())):
        try:
            validate_slug(slug)
        except InvalidSlugError:
            invalid.append(slug)
    # A row without its key in the partition of its kind; a key of either partition without a row of that kind
    # (an imported model left in `models` counts here).
    missing_partition = sorted({slug for name in wanted for slug in wanted[name] - found[name]})
    missing_row = sorted({slug for name in wanted for slug in found[name] - wanted[name]})
    return dg.AssetCheckResult(
        passed=not (invalid or missing_partition or missing_row),
        metadata={
            "registry_rows": len(rows),
            "partitions": len(found[models_partitions.name]),
            "imported_partitions": len(found[imported_models_partitions.name]),
            "rows_without_partition": missing_partition,
            "partitions_without_row": missing_row,
            "invalid_slugs": invalid,
        },
    )


def _per_type(counts, types: list[str]) -> tuple[dict[str, int], int]:
    """({type: count} over the configured types, spread between the largest and smallest)."""
    per_type = {t: int(counts.get(t, 0)) for t in types}
    return per_type, max(per_type.values()) - min(per_type.values())


@dg.asset_check(
    asset="training_conversations",
    blocking=True,
    description="As many conversations as configured, query types within one of each other (unless rebalanced).",
)
def training_conversations_balanced(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.AssetCheckResult:
    corpus = study.settings.corpus
    counts = warehouse.query_df(
        "SELECT query_type, count(DISTINCT conversation_id) AS n FROM training_conversations GROUP BY 1"
    ).set_index("query_type")["n"]
    per_type, spread = _per_type(counts, corpus.query_types)
    total = sum(per_type.values())
    balanced = spread <= 1 or corpus.on_shortfall == "rebalance"
    return dg.AssetCheckResult(
        passed=total == corpus.training_conversations and balanced,
        metadata={"total": total, "target": corpus.training_conversations, "per_type": per_type, "spread": spread},
    )


@dg.asset_check(
    asset="training_conversations",
    blocking=True,
    description="No conversation beyond max_turns turns, each starts with the user and holds an assistant reply.",
)
def training_conversations_shape(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.AssetCheckResult:
    corpus = study.settings.corpus
    shape = warehouse.query_df(
        "SELECT conversation_id, count(*) AS turns, "
        "arg_min(role, turn_index) AS first_role, count(*) FILTER (WHERE role = 'assistant') AS replies "
        "FROM training_conversations GROUP BY 1"
    )
    too_long = shape[shape["turns"] > corpus.max_turns]
    bad_start = shape[shape["first_role"] != "user"] if corpus.drop_leading_assistant else shape.iloc[:0]
    no_reply = shape[shape["replies"] == 0]
    return dg.AssetCheckResult(
        passed=too_long.empty and bad_start.empty and no_reply.empty,
        metadata={
            "max_turns_seen": int(shape["turns"].max()) if len(shape) else 0,
            "over_max_turns": too_long["conversation_id"].head(20).tolist(),
            "not_starting_with_user": bad_start["conversation_id"].head(20).tolist(),
            "without_assistant_reply": no_reply["conversation_id"].head(20).tolist(),
        },
    )


@dg.asset_check(
    asset="training_conversations",
    blocking=True,
    description="No conversation flagged NSFW by Detoxify is kept, in training or validation.",
)
def corpus_has_no_nsfw(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    flagged = warehouse.query_df(
        "SELECT DISTINCT conversation_id FROM training_conversations JOIN conversation_labels USING (conversation_id) "
        "WHERE nsfw UNION SELECT conversation_id FROM validation_prompts JOIN conversation_labels "
        "USING (conversation_id) WHERE nsfw"
    )
    return dg.AssetCheckResult(passed=flagged.empty, metadata={"nsfw_kept": flagged["conversation_id"].head(20).tolist()})


@dg.asset_check(
    asset="validation_prompts",
    blocking=True,
    description="As many prompts as configured, balanced, none sharing a chat or a prompt text with training.",
)
def validation_prompts_disjoint(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.AssetCheckResult:
    corpus = study.settings.corpus
    chat = "regexp_replace({}, '_[0-9]+$', '')"
    overlap_chat = warehouse.query_df(
        f"SELECT DISTINCT v.conversation_id FROM validation_prompts v JOIN training_conversations t "
        f"ON {chat.format('v.conversation_id')} = {chat.format('t.conversation_id')}"
    )
    overlap_text = warehouse.query_df(
        "SELECT DISTINCT v.conversation_id FROM validation_prompts v JOIN training_conversations t "
        "ON t.role = 'user' AND t.text = v.prompt"
    )
    counts = warehouse.query_df("SELECT query_type, count(*) AS n FROM validation_prompts GROUP BY 1")
    per_type, spread = _per_type(counts.set_index("query_type")["n"], corpus.query_types)
    duplicates = int(warehouse.query_df("SELECT count(*) - count(DISTINCT prompt) AS d FROM validation_prompts")["d"][0])
    return dg.AssetCheckResult(
        passed=(overlap_chat.empty and overlap_text.empty and duplicates == 0
                and sum(per_type.values()) == corpus.validation_prompts
                and (spread <= 1 or corpus.on_shortfall == "rebalance")),
        metadata={
            "total": sum(per_type.values()),
            "target": corpus.validation_prompts,
            "per_type": per_type,
            "sharing_a_chat_with_training": overlap_chat["conversation_id"].head(20).tolist(),
            "prompt_text_in_training": overlap_text["conversation_id"].head(20).tolist(),
            "duplicate_prompts": duplicates,
        },
    )


CHECKS = [
    model_registry_matches_partitions,
    training_conversations_balanced,
    training_conversations_shape,
    corpus_has_no_nsfw,
    validation_prompts_disjoint,
]


@dg.asset_check(
    asset="style_rewrites",
    blocking=False,
    description=(
        "Rewrites that are empty or truncated (finish reason), outside the length band, with a code block "
        "not kept byte for byte, or with numbers dropped. Failing rows are listed, not hidden (a warning: "
        "the study kept its rewrites after a human check, see rewrite_audit)."
    ),
)
def style_rewrites_quality(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    frame = warehouse.query_df(
        "SELECT style, conversation_id, turn_index, issues FROM style_rewrites ORDER BY style, conversation_id, turn_index"
    )
    failing = frame[frame["issues"] != ""]
    counts = {}
    for issues in failing["issues"]:
        for issue in issues.split(","):
            counts[issue] = counts.get(issue, 0) + 1
    listed = failing.head(50)
    return dg.AssetCheckResult(
        passed=failing.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rewrites": len(frame),
            "failing_rows": len(failing),
            "by_issue": counts,
            "failing": dg.MetadataValue.md(listed.to_markdown(index=False) if len(listed) else "none"),
        },
    )


CHECKS.append(style_rewrites_quality)


@dg.asset_check(
    asset="sft_datasets",
    blocking=True,
    description=(
        "Before any training: each style's rows and JSONL file agree (sha256, line count), every example is "
        "valid for TRL and the OpenAI API, no duplicate and no conversation outside the training sample. "
        "finetune_runs also refuses to start on these problems, whoever requested it."
    ),
)
def sft_datasets_ready(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    sft = warehouse.query_df("SELECT * FROM sft_datasets ORDER BY style, conversation_id")
    training = set(warehouse.query_df("SELECT DISTINCT conversation_id FROM training_conversations")["conversation_id"])
    problems = [p for style, rows in sft.groupby("style") for p in guards.sft_problems(style, rows, training)]
    return dg.AssetCheckResult(
        passed=not sft.empty and not problems,
        metadata={"examples_per_style": {k: int(v) for k, v in sft["style"].value_counts().items()},
                  "problems": problems or ["none"]},
    )


@dg.asset_check(
    asset="eval_prompts",
    blocking=True,
    description=(
        "Before any generation: every configured data set has items, every drawn item its prompts with all of its conditions "
        "(28; Disinfo as released), prompt ids are unique and no prompt is empty. Automation does not "
        "generate from prompts that failed this check."
    ),
)
def eval_prompts_complete(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.AssetCheckResult:
    prompts = warehouse.query_df("SELECT prompt_id, dataset, item_key, prompt FROM eval_prompts")
    items = warehouse.query_df("SELECT dataset, count(*) AS n FROM eval_items GROUP BY dataset")
    # Against the items drawn (a data set smaller than its configured size gives all it has), and
    # every configured data set must have some.
    problems = guards.eval_prompt_problems(prompts, dict(zip(items["dataset"], items["n"].astype(int))),
                                           list(study.settings.evaluation.sizes))
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"prompts": len(prompts), "problems": problems or ["none"]},
    )


CHECKS += [sft_datasets_ready, eval_prompts_complete]


# A stale partition is a warning, never a stop: the data is what the settings of its day produced.
STALE_CHECK = "partitions_current"
# Run after the asset's code version changed (a settings change, once the code location reloads) and after any
# partition of it is updated (also in the runs that update it: a check of a materialised asset runs with it).
STALE_CHECK_CONDITION = (
    dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.code_version_changed() | dg.AutomationCondition.newly_updated())
    & ~dg.AutomationCondition.in_progress()
).with_label("its asset's code version changed or a partition updated")


def partitions_current_checks(assets: dict[str, tuple[str, ...]]) -> list[dg.AssetChecksDefinition]:
    """A non-blocking WARN check `partitions_current` on each partitioned asset of `assets` ({asset: the settings its
    code version hashes, named in the reason}): its stale partitions and why, as Dagster's resolver says
    (staleness.py). One op for them all, subset to the checks a run selects: a run of three assets gets one more
    step, not three (a step is a process under the multiprocess executor)."""
    if not assets:
        return []
    specs = [dg.AssetCheckSpec(
        STALE_CHECK, asset=asset, blocking=False, automation_condition=STALE_CHECK_CONDITION,
        description=(
            "Warns when materialised partitions are stale: the code version changed (a setting, prompt or rule "
            "the asset reads) or an input was updated since. The metadata lists them and why "
            f"(`warmth stale --select {asset}` prints the same); Dagster's UI shows staleness only for "
            "unpartitioned assets. [operations] rematerialize_stale = true lets automation re-run them."),
    ) for asset in assets]

    @dg.multi_asset_check(specs=specs, name=STALE_CHECK, can_subset=True)
    def _checks(context: dg.AssetCheckExecutionContext):
        # The job's graph is scoped to the job (the rest external); staleness needs the code location's own.
        graph = context.job_def.asset_layer.asset_graph
        graph = getattr(graph, "source_asset_graph", graph)
        resolver = staleness.resolver(context.instance, graph)
        for check in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()):
            asset = check.asset_key.to_user_string()
            found = staleness.scan_asset(context.instance, resolver, check.asset_key, assets[asset])
            yield dg.AssetCheckResult(
                asset_key=check.asset_key,
                check_name=STALE_CHECK,
                passed=not found.stale,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "stale_partitions": len(found.stale),
                    "materialised_partitions": found.checked,
                    "imported_not_checked": found.imported,
                    "by_reason": stale_report.kind_counts(found),
                    "stale": dg.MetadataValue.md(stale_report.check_table(found)),
                    "stale_keys": [s.partition for s in found.stale],
                    "code_version": found.code_version or "",
                },
            )

    return [_checks]
