"""Rows of the `model_registry` table, built from the configuration."""

from warmth_assets.lib.checkpoints import ORIGINAL, WARM_PROMPT, checkpoint_key
from warmth_assets.lib.config import ModelSettings, StudySettings

REGISTRY_COLUMNS = [
    "slug", "source_kind", "source", "family", "chat_template", "access",
    "styles", "checkpoints", "moving_target", "origin",
]


def model_checkpoints(model: ModelSettings, settings: StudySettings) -> list[str]:
    """The checkpoint partitions this model has: original, its styles' epochs, warm-prompt.

    GPT-4o, say, has only the API's saved epochs; its other checkpoint keys are never materialised.
    """
    return checkpoints_for(model.styles, model.checkpoint_epochs or settings.finetune.checkpoint_epochs)


def checkpoints_for(styles, epochs) -> list[str]:
    return [ORIGINAL, *(checkpoint_key(style, e) for style in styles for e in sorted(epochs)), WARM_PROMPT]


def registry_rows(settings: StudySettings) -> list[dict]:
    return [
        {
            "slug": m.slug,
            "source_kind": m.source_kind,
            "source": m.source,
            "family": m.family,
            "chat_template": m.chat_template,
            "access": m.access,
            "styles": list(m.styles),
            "checkpoints": model_checkpoints(m, settings),
            "moving_target": m.moving_target,
            "origin": "config",
        }
        for m in settings.models
    ]
