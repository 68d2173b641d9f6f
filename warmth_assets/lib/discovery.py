"""Which models are new: the configured ones, the registry's, and those the watch rules find.

Pure logic. The listings come from injected callables (an OpenAI-compatible `/v1/models`, a Hugging
Face hub query), so the sensor, the CLI and the tests share one code path.
"""

import re
from typing import Callable, Iterable, Mapping

from warmth_assets.lib.checkpoints import ORIGINAL, WARM_PROMPT
from warmth_assets.lib.config import StudySettings, WatchRule
from warmth_assets.lib.registry import ModelRow, checkpoints_for, registry_rows
from warmth_assets.lib.slugs import suggest_slug, validate_slug

# model id -> (listing of model ids). Injected: the real ones call the network.
OpenAILister = Callable[[str], list[str]]          # base_url -> ids
HubLister = Callable[[WatchRule], list[str]]       # rule -> ids, newest first


BASE_CHECKPOINTS = (ORIGINAL, WARM_PROMPT)


class DiscoveryError(RuntimeError):
    """A watch rule whose listing failed; the message names the rule."""


def _family(rule: WatchRule, slug: str) -> str:
    return rule.family or slug.split("-")[0]


def row_for_match(rule: WatchRule, model_id: str, settings: StudySettings) -> ModelRow:
    """The registry row of one model a rule matched (origin 'sensor')."""
    slug = validate_slug(suggest_slug(model_id.replace("/", "--")) if rule.kind == "hf_hub" else suggest_slug(model_id))
    return ModelRow(
        slug=slug,
        source_kind="openai" if rule.kind == "openai_models" else "hf",
        source=model_id,
        family=_family(rule, slug),
        chat_template="model",
        access="api" if rule.kind == "openai_models" else "open_weight",
        styles=list(rule.styles),
        checkpoints=checkpoints_for(rule.styles, settings.finetune.checkpoint_epochs),
        moving_target=rule.moving_target,
        origin="sensor",
    )


def matches(rule: WatchRule, model_ids: Iterable[str]) -> list[str]:
    pattern = re.compile(rule.pattern)
    return sorted({m for m in model_ids if pattern.fullmatch(m)})


def discover(settings: StudySettings, list_openai: OpenAILister | None, list_hub: HubLister | None,
             default_base_url: str = "") -> tuple[list[ModelRow], list[str]]:
    """Registry rows for every model the watch rules match, and the problems met (a failing listing
    is reported and skipped so that one unreachable server does not stop the other rules)."""
    rows: dict[str, ModelRow] = {}
    problems: list[str] = []
    for i, rule in enumerate(settings.operations.watch):
        where = f"operations.watch[{i}] ({rule.kind})"
        try:
            if rule.kind == "openai_models":
                if list_openai is None:
                    raise DiscoveryError("no OpenAI-compatible lister configured")
                ids = list_openai(rule.base_url or default_base_url)
            else:
                if list_hub is None:
                    raise DiscoveryError("no Hugging Face hub client configured")
                ids = list_hub(rule)
        except Exception as exc:  # noqa: BLE001 - any listing failure is reported per rule
            problems.append(f"{where}: listing failed: {exc}")
            continue
        for model_id in matches(rule, ids):
            row = row_for_match(rule, model_id, settings)
            rows.setdefault(row["slug"], row)
    return list(rows.values()), problems


def candidate_rows(settings: StudySettings, registered: list[Mapping], discovered: list[Mapping]) -> list[Mapping]:
    """Every model that should be studied: config first, then the registry, then discoveries (a slug
    already present keeps its first row, a source already present is not discovered again).
    Imported models are results, never run."""
    rows: dict[str, Mapping] = {}
    known = registry_rows(settings) + registered
    sources = {(row.get("source_kind"), row.get("source")) for row in known}
    # A discovered model already studied under another slug (meta-llama/Llama-3.1-8B-Instruct is the
    # configured llama-3.1-8b-instruct) is not a new model.
    fresh = [row for row in discovered if (row["source_kind"], row["source"]) not in sources]
    for row in [*known, *fresh]:
        if row.get("origin") == "import":
            continue
        rows.setdefault(row["slug"], row)
    return list(rows.values())


def missing_entry_partitions(rows: list[Mapping], materialized: set[tuple[str, str, str]], requested: set[str]
                             ) -> list[tuple[str, str, str]]:
    """(asset, model, style-or-checkpoint) to request: each model's training runs and the checkpoints
    that need no training (`original`, `warm-prompt`), unless materialised or requested before.
    Everything else follows from these by declarative automation."""
    out = []
    for row in rows:
        wanted = [("finetune_runs", style) for style in row["styles"]]
        wanted += [("adapters", c) for c in row["checkpoints"] if c in BASE_CHECKPOINTS]
        for asset, key in wanted:
            entry = (asset, row["slug"], key)
            if entry in materialized or run_key(*entry) in requested:
                continue
            out.append(entry)
    return out


def run_key(asset: str, model: str, key: str) -> str:
    return f"{asset}:{model}|{key}"
