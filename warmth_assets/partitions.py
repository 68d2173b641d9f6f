"""Partitions (docs/design.md §2): `model` (dynamic, "models") x `checkpoint` (static, from config); `style`.

`models` lives in the Dagster instance and does not depend on the settings; the static ones do, so they
are built by `study_partitions(settings)` (called by build_defs), never at import.
"""

import warnings
from dataclasses import dataclass

import dagster as dg

from warmth_assets.lib.checkpoints import keys_by_style
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.slugs import validate_slug

models_partitions = dg.DynamicPartitionsDefinition(name="models")


@dataclass(frozen=True)
class StudyPartitions:
    checkpoint: dg.StaticPartitionsDefinition
    style: dg.StaticPartitionsDefinition
    model_checkpoint: dg.MultiPartitionsDefinition
    model_style: dg.MultiPartitionsDefinition
    # One training run (model x style) writes every checkpoint of its style; `original` and
    # `warm-prompt` map to no run.
    checkpoint_to_training_run: dg.MultiPartitionMapping
    # The checkpoints the evaluation stage runs for ([evaluation] checkpoints); None: every one a model has.
    evaluated: frozenset[str] | None = None

    def model_checkpoint_key(self, model: str, checkpoint: str) -> dg.MultiPartitionKey:
        """The key, refused when `checkpoint` is not one the settings configure."""
        configured = self.checkpoint.get_partition_keys()
        if checkpoint not in configured:
            raise ValueError(f"unknown checkpoint {checkpoint!r}; configured: {configured}")
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
    return StudyPartitions(
        checkpoint=checkpoint,
        style=style,
        model_checkpoint=dg.MultiPartitionsDefinition({"model": models_partitions, "checkpoint": checkpoint}),
        model_style=dg.MultiPartitionsDefinition({"model": models_partitions, "style": style}),
        checkpoint_to_training_run=to_run,
        evaluated=None if settings.evaluated_checkpoints() is None else frozenset(settings.evaluated_checkpoints()),
    )


def model_checkpoint_key(model: str, checkpoint: str) -> dg.MultiPartitionKey:
    """A model x checkpoint key; whether the checkpoint is configured is StudyPartitions.model_checkpoint_key's job."""
    validate_slug(model)
    return dg.MultiPartitionKey({"model": model, "checkpoint": checkpoint})


def model_style_key(model: str, style: str) -> dg.MultiPartitionKey:
    validate_slug(model)
    return dg.MultiPartitionKey({"model": model, "style": style})
