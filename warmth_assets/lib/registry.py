"""Rows of the `model_registry` table: the typed row, and the rows the configuration gives.

Reading and writing the table is resources/model_registry.py; this module holds what needs no warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from warmth_assets.lib.checkpoints import ORIGINAL, WARM_PROMPT, checkpoint_key, parse_checkpoint_key
from warmth_assets.lib.config import ModelSettings, StudySettings

REGISTRY_COLUMNS = [
    "slug", "source_kind", "source", "family", "chat_template", "access",
    "styles", "checkpoints", "moving_target", "origin",
]


@dataclass(frozen=True, eq=False)
class ModelRow(Mapping):
    """One row of `model_registry`.

    Also a read-only mapping over REGISTRY_COLUMNS, so that it goes wherever a registry row went as a dict
    (discovery's rules, `runner_for`, a comparison with a dict in a test); `added_at` is an attribute only:
    a row built from the configuration has none, and two rows differing only there are the same model.
    """

    slug: str
    source_kind: str
    source: str
    family: str
    chat_template: str
    access: str
    styles: list[str]
    checkpoints: list[str]
    moving_target: bool = False
    origin: str = "config"
    added_at: datetime | None = field(default=None, repr=False)

    @classmethod
    def from_mapping(cls, row: Mapping) -> ModelRow:
        """From a dict or a warehouse record; the list columns arrive as lists, tuples or numpy arrays."""
        if isinstance(row, ModelRow):
            return row
        return cls(
            **{c: row[c] for c in REGISTRY_COLUMNS if c not in ("styles", "checkpoints", "moving_target", "origin")},
            styles=list(row["styles"]), checkpoints=list(row["checkpoints"]),
            moving_target=bool(row.get("moving_target", False)), origin=row.get("origin") or "config",
            added_at=row.get("added_at"),
        )

    def __getitem__(self, key: str):
        if key not in REGISTRY_COLUMNS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(REGISTRY_COLUMNS)

    def __len__(self) -> int:
        return len(REGISTRY_COLUMNS)

    @property
    def imported(self) -> bool:
        """Released results imported as they are (`warmth import-outputs`): never trained, run or re-run here."""
        return self.origin == "import"

    def epochs(self, style: str) -> list[float]:
        """The epochs of `style` this model has a checkpoint for, in registry order."""
        parsed = [parse_checkpoint_key(k) for k in self.checkpoints]
        return [p[1] for p in parsed if p and p[0] == style]


def model_checkpoints(model: ModelSettings, settings: StudySettings) -> list[str]:
    """The checkpoint partitions this model has: original, its styles' epochs, warm-prompt.

    GPT-4o, say, has only the API's saved epochs; its other checkpoint keys are never materialised.
    """
    return checkpoints_for(model.styles, model.checkpoint_epochs or settings.finetune.checkpoint_epochs)


def checkpoints_for(styles, epochs) -> list[str]:
    return [ORIGINAL, *(checkpoint_key(style, e) for style in styles for e in sorted(epochs)), WARM_PROMPT]


def registry_rows(settings: StudySettings) -> list[ModelRow]:
    return [
        ModelRow(
            slug=m.slug, source_kind=m.source_kind, source=m.source, family=m.family, chat_template=m.chat_template,
            access=m.access, styles=list(m.styles), checkpoints=model_checkpoints(m, settings),
            moving_target=m.moving_target, origin="config",
        )
        for m in settings.models
    ]


def registry_frame(rows: list[ModelRow]) -> pd.DataFrame:
    """The rows as a table with every registry column, also when there are none (the report's provenance)."""
    return pd.DataFrame([list(row.values()) for row in rows], columns=REGISTRY_COLUMNS)
