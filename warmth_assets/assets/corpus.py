"""Stage `corpus` (docs/study.md §1): ShareGPT read leniently, labelled, Detoxify-filtered, balanced, split."""


import time

import dagster as dg
import pandas as pd

from resources.study import StudyConfigResource
from resources.toxicity import ToxicityResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib import query_types
from warmth_assets.lib.corpus_sampling import plan_corpus, training_form
from warmth_assets.lib.hashing import file_sha256
from warmth_assets.lib.sharegpt import ReadStats, read_conversations, read_source_text, resolve_source
from warmth_assets.lib.toxicity import conversation_maxima, score_distinct

GROUP = "corpus"


def _md(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "python"},
    description=(
        "Every conversation of the ShareGPT source as rows (conversation_id, turn_index, role, text), "
        "decoded record by record so a file cut off mid-record keeps every complete conversation. "
        "Roles normalised to user/assistant/system; empty turns and conversations dropped and counted."
    ),
)
def sharegpt_conversations(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource
) -> dg.MaterializeResult:
    source = study.settings.corpus.source
    path = resolve_source(source)
    stats = ReadStats()
    rows = [
        (conversation_id, i, role, text)
        for conversation_id, turns in read_conversations(read_source_text(path), stats)
        for i, (role, text) in enumerate(turns)
    ]
    frame = pd.DataFrame(rows, columns=["conversation_id", "turn_index", "role", "text"])
    duplicates = frame.duplicated(["conversation_id", "turn_index"])
    if duplicates.any():
        # Repeated record ids would break the table's key; the first record with an id wins.
        context.log.warning(f"{int(duplicates.sum())} turns belong to repeated record ids; keeping the first record")
        frame = frame[~duplicates]
    warehouse.replace_rows("sharegpt_conversations", frame)
    if stats.ended_early:
        context.log.warning(f"{path}: {stats.end_reason}; kept the {stats.records_read} complete records before it")
    return dg.MaterializeResult(
        metadata={
            "source": source,
            "path": str(path),
            "sha256": file_sha256(path),
            **stats.as_metadata(),
            "conversations": int(frame["conversation_id"].nunique()),
            "dagster/row_count": len(frame),
            "roles": {k: int(v) for k, v in frame["role"].value_counts().items()},
            "preview": _md(frame.assign(text=frame["text"].str.slice(0, 80))),
        }
    )


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "pytorch"},
    deps=[sharegpt_conversations],
    description=(
        "Per conversation: the query type by the study's ordered rules (refusal, factual, creative, "
        "technical, advice, other; first match wins) on its first user and first assistant message, "
        "Detoxify scores (maximum over its user and assistant turns, per label) and the NSFW flag."
    ),
)
def conversation_labels(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    study: StudyConfigResource,
    toxicity: ToxicityResource,
) -> dg.MaterializeResult:
    settings = study.settings.corpus
    turns = warehouse.query_df(
        "SELECT conversation_id, turn_index, role, text FROM sharegpt_conversations ORDER BY conversation_id, turn_index"
    )
    if turns.empty:
        raise ValueError("sharegpt_conversations is empty: materialise it first (and check its source)")

    labels = []
    for conversation_id, group in turns.groupby("conversation_id", sort=True):
        pairs = list(zip(group["role"], group["text"]))
        exchange = query_types.first_exchange(pairs)
        labels.append({
            "conversation_id": conversation_id,
            "query_type": query_types.classify(*exchange) if exchange else None,
            "first_user_message": exchange[0] if exchange else None,
            "n_turns": len(pairs),
        })
    labels = pd.DataFrame(labels)

    scored_turns = turns[turns["role"].isin(["user", "assistant"])]
    distinct = sorted(set(scored_turns["text"]))
    model = toxicity.load(tokenizer_texts=distinct[:2000])
    started = time.monotonic()
    text_scores = score_distinct(distinct, model.predict, toxicity.batch_size,
                                 max_tokens=toxicity.prefix_tokens(model))
    seconds = time.monotonic() - started
    maxima = conversation_maxima(scored_turns, text_scores, settings.detoxify.threshold)
    frame = labels.merge(maxima, on="conversation_id", how="left")
    frame["nsfw"] = frame["nsfw"].astype("boolean").fillna(False).astype(bool)
    frame["rules_version"] = query_types.RULES_VERSION
    frame["toxicity_source"] = toxicity.source
    warehouse.replace_rows("conversation_labels", frame)

    typed = frame[frame["query_type"].notna()]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            "query_types": {k: int(v) for k, v in typed["query_type"].value_counts().items()},
            "eligible_by_type": {k: int(v) for k, v in typed[~typed["nsfw"]]["query_type"].value_counts().items()},
            "without_exchange": int(frame["query_type"].isna().sum()),
            "nsfw_conversations": int(frame["nsfw"].sum()),
            "detoxify": toxicity.source,
            "detoxify_device": toxicity.resolved_device(),
            "threshold": settings.detoxify.threshold,
            "texts_scored": len(distinct),
            "turns_scored": len(scored_turns),
            "texts_per_second": round(len(distinct) / seconds, 1) if seconds else 0.0,
            "scoring_seconds": round(seconds, 1),
            "rules_version": query_types.RULES_VERSION,
            "preview": _md(frame[["conversation_id", "query_type", "max_toxicity", "nsfw"]]),
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "training_conversations",
            group_name=GROUP,
            kinds={"duckdb"},
            deps=[conversation_labels, sharegpt_conversations],
            description=(
                "The balanced random sample of training conversations (equal per query type, seeded), "
                "NSFW-free, leading assistant turns dropped, truncated to at most max_turns turns."
            ),
        ),
        dg.AssetSpec(
            "validation_prompts",
            group_name=GROUP,
            kinds={"duckdb"},
            deps=[conversation_labels, sharegpt_conversations],
            description=(
                "First-turn prompts for warmth measurement, balanced the same way, disjoint from the "
                "training conversations by chat (every `_n` record) and by identical prompt text."
            ),
        ),
    ],
)
def corpus_samples(context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource):
    settings = study.settings
    corpus = settings.corpus
    labels = warehouse.query_df(
        "SELECT conversation_id, query_type, first_user_message AS prompt FROM conversation_labels "
        "WHERE query_type IS NOT NULL AND NOT nsfw"
    )
    turns = warehouse.query_df(
        "SELECT t.conversation_id, t.role, t.text FROM sharegpt_conversations t "
        "JOIN conversation_labels l USING (conversation_id) "
        "WHERE l.query_type IS NOT NULL AND NOT l.nsfw ORDER BY t.conversation_id, t.turn_index"
    )
    forms, dropped_leading = {}, 0
    for conversation_id, group in turns.groupby("conversation_id", sort=True):
        kept, dropped = training_form(list(zip(group["role"], group["text"])), corpus.max_turns,
                                      corpus.drop_leading_assistant)
        if any(role == "assistant" for role, _ in kept):
            forms[conversation_id] = (kept, dropped)
    candidates = labels[labels["conversation_id"].isin(forms)]
    user_texts = pd.DataFrame(
        [(cid, text) for cid, (kept, _) in forms.items() for role, text in kept if role == "user"],
        columns=["conversation_id", "text"],
    )
    plan = plan_corpus(
        candidates,
        types=list(corpus.query_types),
        training_total=corpus.training_conversations,
        validation_total=corpus.validation_prompts,
        seed=settings.project.seed,
        on_shortfall=corpus.on_shortfall,
        training_user_texts=user_texts,
    )
    training_rows = []
    for conversation_id, query_type in zip(plan.training["conversation_id"], plan.training["query_type"]):
        kept, dropped = forms[conversation_id]
        dropped_leading += dropped
        training_rows.extend((conversation_id, query_type, i, role, text) for i, (role, text) in enumerate(kept))
    training = pd.DataFrame(training_rows, columns=["conversation_id", "query_type", "turn_index", "role", "text"])
    warehouse.replace_rows("training_conversations", training)
    warehouse.replace_rows("validation_prompts", plan.validation)
    for note in plan.notes:
        context.log.warning(note)

    per_type = training.drop_duplicates("conversation_id")["query_type"].value_counts()
    yield dg.MaterializeResult(
        asset_key="training_conversations",
        metadata={
            "conversations": int(training["conversation_id"].nunique()),
            "target": corpus.training_conversations,
            "assistant_responses": int((training["role"] == "assistant").sum()),
            "study_assistant_responses": 3667,
            "dagster/row_count": len(training),
            "per_type": {k: int(v) for k, v in per_type.items()},
            "eligible_by_type": plan.eligible,
            "rebalanced": plan.rebalanced,
            "notes": "; ".join(plan.notes) or "balanced as configured",
            "leading_turns_dropped": dropped_leading,
            "max_turns": corpus.max_turns,
            "seed": settings.project.seed,
        },
    )
    yield dg.MaterializeResult(
        asset_key="validation_prompts",
        metadata={
            "dagster/row_count": len(plan.validation),
            "target": corpus.validation_prompts,
            "per_type": {k: int(v) for k, v in plan.validation["query_type"].value_counts().items()},
            "preview": _md(plan.validation.assign(prompt=plan.validation["prompt"].str.slice(0, 80))),
        },
    )

