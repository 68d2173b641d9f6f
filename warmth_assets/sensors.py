"""`new_model_sensor`: models arrive by themselves (docs/design.md §6).

Each tick: the configured models, the rows of `model_registry` and what the watch rules find
(`/v1/models` listings, HF hub queries) are compared with the registry and the `models` dynamic
partition. New models get a registry row (origin 'sensor') and a partition, and their entry partitions are requested: the training runs
(`finetune_runs`, one per model x style) and the checkpoints that need none (`adapters` of `original`
and `warm-prompt`); at most [operations] max_runs_per_tick per tick, each once (the cursor remembers
what was requested). Everything downstream (trained adapters, generations, judgments, warmth scores,
the analysis) follows by declarative automation (automation.py).
"""

import json
import os

import dagster as dg

from resources import model_registry as registry_table
from resources.model_catalog import ModelCatalogResource
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.discovery import candidate_rows, discover, missing_entry_partitions, run_key
from warmth_assets.lib.registry import ModelRow
from warmth_assets.lib.slugs import InvalidSlugError, validate_slug
from warmth_assets.partitions import StudyPartitions, model_style_key, models_partitions


def _materialized(instance: dg.DagsterInstance, entry_assets: dict) -> set[tuple[str, str, str]]:
    done = set()
    for name, (asset, _) in entry_assets.items():
        for key in instance.get_materialized_partitions(asset.key):
            model, other = _dims(asset.partitions_def.get_partition_key_from_str(str(key)))
            done.add((name, model, other))
    return done


def _dims(key: dg.MultiPartitionKey) -> tuple[str, str]:
    dims = key.keys_by_dimension
    return dims["model"], dims.get("style") or dims["checkpoint"]


def _unusable(row: ModelRow, settings: StudySettings) -> str:
    """Why a hand-written registry row cannot be partitioned or trained (one bad row must not stop every tick)."""
    try:
        validate_slug(row.slug)
    except InvalidSlugError as exc:
        return str(exc)
    unknown = sorted(set(row.styles) - set(settings.finetune.styles))
    return f"styles {unknown} are not in [finetune] styles" if unknown else ""


def build_new_model_sensor(settings: StudySettings, parts: StudyPartitions, finetune_runs: dg.AssetsDefinition,
                           adapters: dg.AssetsDefinition) -> tuple[dg.SensorDefinition, list]:
    """The sensor and its two entry jobs, over the given `finetune_runs` and `adapters` (build_defs)."""
    entry_assets = {"finetune_runs": (finetune_runs, model_style_key), "adapters": (adapters, parts.model_checkpoint_key)}
    # One job per partitions definition: a job's assets must share one.
    training_job = dg.define_asset_job(
        "training", selection=[finetune_runs], partitions_def=finetune_runs.partitions_def,
        description="One model x style training run (LoRA or the fine-tuning API).")
    base_checkpoints_job = dg.define_asset_job(
        "base_checkpoints", selection=[adapters], partitions_def=adapters.partitions_def,
        description="The checkpoints that need no training (original, warm-prompt); automation runs the rest.")
    entry_jobs = {"finetune_runs": training_job, "adapters": base_checkpoints_job}

    @dg.sensor(
        name="new_model_sensor",
        minimum_interval_seconds=settings.operations.sensor_interval_s,
        jobs=[training_job, base_checkpoints_job],
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Registers new models (config, model_registry rows, [[operations.watch]] rules over /v1/models and "
            "the HF hub), adds their `models` partitions and requests their missing training runs, bounded per "
            "tick, each once (cursor). Downstream partitions follow by declarative automation."
        ),
    )
    def new_model_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                         study: StudyConfigResource, model_catalog: ModelCatalogResource) -> dg.SensorResult:
        settings = study.settings
        cursor = json.loads(context.cursor) if context.cursor else {"requested": []}
        requested = set(cursor["requested"])

        default_base_url = settings.llm.base_url or os.environ.get("OPENAI_BASE_URL", "")
        discovered, problems = discover(settings, model_catalog.list_openai, model_catalog.list_hub, default_base_url)
        for problem in problems:
            context.log.warning(problem)

        registered = []
        for row in registry_table.read_rows(warehouse):
            problem = _unusable(row, settings)
            if problem:
                context.log.warning(f"model_registry row {row.slug!r} skipped: {problem}")
            else:
                registered.append(row)
        known = {row.slug for row in registered}
        rows = candidate_rows(settings, registered, discovered)
        new_rows = [row for row in rows if row["slug"] not in known]
        if new_rows:
            # New rows only: a row written by hand or by an earlier tick keeps what it says.
            registry_table.upsert(warehouse, new_rows, update=())
            context.log.info(f"registered {[row['slug'] for row in new_rows]}")

        partitions = set(context.instance.get_dynamic_partitions(models_partitions.name))
        to_add = [row["slug"] for row in rows if row["slug"] not in partitions]

        todo = missing_entry_partitions(rows, _materialized(context.instance, entry_assets), requested)
        limit = settings.operations.max_runs_per_tick
        run_requests = [
            dg.RunRequest(run_key=run_key(name, model, other), partition_key=entry_assets[name][1](model, other),
                          job_name=entry_jobs[name].name, asset_selection=[entry_assets[name][0].key],
                          tags={"warmth/trigger": "new_model_sensor"})
            for name, model, other in todo[:limit]
        ]
        requested |= {r.run_key for r in run_requests}
        if len(todo) > limit:
            context.log.info(f"{len(todo) - limit} runs wait for the next tick (max_runs_per_tick={limit})")
        if not (to_add or run_requests):
            return dg.SensorResult(skip_reason=dg.SkipReason("no new model and no missing entry partition"),
                                   cursor=json.dumps({"requested": sorted(requested)}))
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[models_partitions.build_add_request(to_add)] if to_add else [],
            cursor=json.dumps({"requested": sorted(requested)}),
        )

    return new_model_sensor, [training_job, base_checkpoints_job]
