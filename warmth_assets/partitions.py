"""Partitions (docs/design.md §2): `model` (dynamic, "models") x `checkpoint` (static, from config); `style`.

Every asset lists only partitions it can materialise (docs/design.md §2, "Only partitions that can be
materialised"): a key that never can reads as work left undone. Dagster's partitions are the full product of their
dimensions, and only its own kinds (static, dynamic, time window, multi) reach the UI, so each asset gets the
product that holds exactly what it runs for:

- `models` holds the models this pipeline trains and evaluates (configured, found by the sensor, added by hand).
  Models whose released results were imported (`warmth import-outputs`) are not in it: they have no training
  run, adapter, warmth score or capability score, and would show every checkpoint as missing for ever.
- The training and warmth stages (`adapters`, `validation_generations`, `warmth_scores`) run for every
  configured checkpoint; the evaluation stage (`generations`, `judgments`, `capability_scores`, `inspect_logs`)
  only for the evaluated ones ([evaluation] checkpoints), so its `checkpoint` dimension lists only those.
- Imported results are data made outside Dagster, so they are an external asset, `imported_outputs`, on their own
  `imported_models` x `imported_checkpoints` (both dynamic, filled by the importer): the pairs imported, browsed
  like every other model x checkpoint asset. Their rows sit in the `generations` and `judgments` tables, where
  the analysis reads them beside ours.

Left as it is: a model with only some of the configured checkpoints (an API model fine-tuned warm only, or at
fewer epochs; the registry's `checkpoints` column) still shows the others. Automation never requests them
(automation.RegisteredPartition), and `adapters` refuses them naming the model's checkpoints, so a backfill
over them fails there. One dynamic partition of model-checkpoint pairs would list only real pairs, but lose the
model x checkpoint view users browse by (a multi-partition has at most two dimensions) and need a custom
checkpoint -> training-run mapping.

`models` and the imported ones live in the Dagster instance and do not depend on the settings; the static ones
do, so they are built by `study_partitions(settings)` (called by build_defs), never at import.
"""

import warnings
from dataclasses import dataclass
from typing import Iterable

import dagster as dg

from warmth_assets.lib.checkpoints import keys_by_style
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.registry import ModelRow
from warmth_assets.lib.slugs import validate_slug

models_partitions = dg.DynamicPartitionsDefinition(name="models")
# What `warmth import-outputs` brought in: the imported models and the checkpoints their results were stored at.
imported_models_partitions = dg.DynamicPartitionsDefinition(name="imported_models")
imported_checkpoints_partitions = dg.DynamicPartitionsDefinition(name="imported_checkpoints")
imported_partitions = dg.MultiPartitionsDefinition(
    {"model": imported_models_partitions, "checkpoint": imported_checkpoints_partitions})


@dataclass(frozen=True)
class StudyPartitions:
    checkpoint: dg.StaticPartitionsDefinition
    style: dg.StaticPartitionsDefinition
    model_checkpoint: dg.MultiPartitionsDefinition
    model_style: dg.MultiPartitionsDefinition
    # One training run (model x style) writes every checkpoint of its style; `original` and
    # `warm-prompt` map to no run.
    checkpoint_to_training_run: dg.MultiPartitionMapping
    # The evaluation stage's: `models` x the checkpoints it runs for ([evaluation] checkpoints), in the order of
    # `checkpoint`; the very `model_checkpoint` when every checkpoint is evaluated.
    evaluated_checkpoint: dg.StaticPartitionsDefinition
    model_evaluated: dg.MultiPartitionsDefinition
    # The checkpoints the evaluation stage runs for ([evaluation] checkpoints); None: every one a model has.
    evaluated: frozenset[str] | None = None

    def model_checkpoint_key(self, model: str, checkpoint: str) -> dg.MultiPartitionKey:
        """The key, refused when `checkpoint` is not one the settings configure."""
        return _checked_key(model, checkpoint, self.checkpoint, "configured")

    def model_evaluated_key(self, model: str, checkpoint: str) -> dg.MultiPartitionKey:
        """A key of the evaluation stage, refused when `checkpoint` is not evaluated ([evaluation] checkpoints)."""
        return _checked_key(model, checkpoint, self.evaluated_checkpoint, "evaluated ([evaluation] checkpoints)")


def _checked_key(model: str, checkpoint: str, keys: dg.StaticPartitionsDefinition, what: str) -> dg.MultiPartitionKey:
    known = keys.get_partition_keys()
    if checkpoint not in known:
        raise ValueError(f"unknown checkpoint {checkpoint!r}; {what}: {known}")
    return model_checkpoint_key(model, checkpoint)


def study_partitions(settings: StudySettings) -> StudyPartitions:
    checkpoints = settings.checkpoint_keys()
    checkpoint = dg.StaticPartitionsDefinition(checkpoints)
    style = dg.StaticPartitionsDefinition(list(settings.finetune.styles))
    with warnings.catch_warnings():
        # MultiPartitionMapping is marked beta; the recipe is checked against our pinned Dagster (docs/pitfalls.md §2.4).
        warnings.simplefilter("ignore", dg.BetaWarning)
        to_run = dg.MultiPartitionMapping({
            "model": dg.DimensionPartitionMapping("model", dg.IdentityPartitionMapping()),
            "style": dg.DimensionPartitionMapping("checkpoint", dg.StaticPartitionMapping(keys_by_style(checkpoints))),
        })
    model_checkpoint = dg.MultiPartitionsDefinition({"model": models_partitions, "checkpoint": checkpoint})
    evaluated = settings.evaluated_checkpoints()
    if evaluated is None:
        evaluated_checkpoint, model_evaluated = checkpoint, model_checkpoint
    else:
        evaluated_checkpoint = dg.StaticPartitionsDefinition([c for c in checkpoints if c in evaluated])
        model_evaluated = dg.MultiPartitionsDefinition({"model": models_partitions, "checkpoint": evaluated_checkpoint})
    return StudyPartitions(
        checkpoint=checkpoint,
        style=style,
        model_checkpoint=model_checkpoint,
        model_style=dg.MultiPartitionsDefinition({"model": models_partitions, "style": style}),
        checkpoint_to_training_run=to_run,
        evaluated_checkpoint=evaluated_checkpoint,
        model_evaluated=model_evaluated,
        evaluated=None if evaluated is None else frozenset(evaluated),
    )


def model_checkpoint_key(model: str, checkpoint: str) -> dg.MultiPartitionKey:
    """A model x checkpoint key; whether the checkpoint is configured is StudyPartitions.model_checkpoint_key's job."""
    validate_slug(model)
    return dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint})


def model_style_key(model: str, style: str) -> dg.MultiPartitionKey:
    validate_slug(model)
    return dg.MultiPartitionKey({"model": model, "style": style})


def sync_model_partitions(instance: dg.DagsterInstance, rows: Iterable[ModelRow]) -> dict[str, list[str]]:
    """Each registry row's slug in the partition its origin belongs to: imported models in `imported_models`,
    every other model in `models`; an imported slug still in `models` (an instance from before imported models
    were kept out) is taken out of it. Returns the slugs added and those moved."""
    rows = list(rows)
    imported = [row.slug for row in rows if row.imported]
    done: dict[str, list[str]] = {"added": [], "moved_to_imported": []}
    for partitions, slugs in ((models_partitions, [row.slug for row in rows if not row.imported]),
                              (imported_models_partitions, imported)):
        existing = set(instance.get_dynamic_partitions(partitions.name))
        added = [s for s in slugs if s not in existing]
        if added:
            instance.add_dynamic_partitions(partitions.name, added)
            done["added"] += added
    in_models = set(instance.get_dynamic_partitions(models_partitions.name))
    for slug in imported:
        if slug in in_models:
            instance.delete_dynamic_partition(models_partitions.name, slug)
            done["moved_to_imported"].append(slug)
    return done
