"""The whole file: [project], the sections, [[models]] and the rules that span sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from warmth_assets.lib.checkpoints import checkpoint_key, checkpoint_keys, format_epoch
from warmth_assets.lib.config.base import Section, UnknownModel
from warmth_assets.lib.config.corpus import CorpusSettings, DataSettings, RewriteSettings
from warmth_assets.lib.config.evaluation import EvaluationSettings, GenerationSettings, SocioTSettings
from warmth_assets.lib.config.finetune import FinetuneSettings
from warmth_assets.lib.config.judging import AnalysisSettings, JudgeSettings
from warmth_assets.lib.config.operations import ComputeSettings, LLMSettings, OperationsSettings, ServingSettings
from warmth_assets.lib.config.warehouse import WarehouseSettings
from warmth_assets.lib.slugs import validate_slug


class ProjectSettings(Section):
    name: str = "warmth"
    seed: int = Field(2025, description="Master seed; every sampler derives its own from it. [?] not published")


class ModelSettings(Section):
    slug: str
    source_kind: Literal["hf", "local", "gguf", "openai"]
    source: str = Field(description="HF id, local folder, GGUF file (or package:<pkg>/<file>), or API model name")
    family: str
    chat_template: str = Field("model", description="'model' uses the tokenizer's own template; else the path of "
                               "a Jinja chat template file, used in generation, scoring, training and serving "
                               "(its hash enters the cache keys and the training fingerprint)")
    styles: list[Literal["warm", "cold"]] = ["warm"]
    checkpoint_epochs: list[float] | None = Field(None, description="Overrides finetune.checkpoint_epochs")
    moving_target: bool = False

    @field_validator("slug")
    @classmethod
    def _slug(cls, slug: str) -> str:
        return validate_slug(slug)

    @property
    def access(self) -> Literal["open_weight", "api"]:
        return "api" if self.source_kind == "openai" else "open_weight"


class StudySettings(Section):
    project: ProjectSettings = ProjectSettings()
    data: DataSettings = DataSettings()
    corpus: CorpusSettings = CorpusSettings()
    rewrite: RewriteSettings = RewriteSettings()
    finetune: FinetuneSettings = FinetuneSettings()
    sociot: SocioTSettings = SocioTSettings()
    generation: GenerationSettings = GenerationSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    judge: JudgeSettings = JudgeSettings()
    llm: LLMSettings = LLMSettings()
    compute: ComputeSettings = ComputeSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    serving: ServingSettings = ServingSettings()
    operations: OperationsSettings = OperationsSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    models: list[ModelSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _models_consistent(self) -> "StudySettings":
        slugs = [m.slug for m in self.models]
        duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
        if duplicates:
            raise ValueError(f"duplicate model slugs: {duplicates}")
        for model in self.models:
            unknown = set(model.styles) - set(self.finetune.styles)
            if unknown:
                raise ValueError(f"model {model.slug!r} uses styles {sorted(unknown)} not in finetune.styles")
            extra = {format_epoch(e) for e in model.checkpoint_epochs or []} - {
                format_epoch(e) for e in self.finetune.checkpoint_epochs
            }
            if extra:
                raise ValueError(
                    f"model {model.slug!r} lists checkpoint epochs {sorted(extra)} that are not in "
                    "finetune.checkpoint_epochs (the checkpoint partitions)"
                )
        return self

    @model_validator(mode="after")
    def _reevaluated_checkpoints_are_evaluated(self) -> "StudySettings":
        # The schedule re-runs the evaluation stage, whose partitions are the evaluated checkpoints only.
        evaluated = self.evaluated_checkpoints()
        allowed = [c for c in self.checkpoint_keys() if evaluated is None or c in evaluated]
        outside = [c for c in self.operations.reevaluate_checkpoints if c not in allowed]
        if outside:
            raise ValueError(f"operations.reevaluate_checkpoints {outside}: not checkpoints the evaluation stage runs "
                             f"for ([evaluation] checkpoints: {allowed})")
        return self

    def checkpoint_keys(self) -> list[str]:
        return checkpoint_keys(list(self.finetune.styles), list(self.finetune.checkpoint_epochs))

    def evaluated_checkpoints(self) -> set[str] | None:
        """The checkpoints the evaluation stage runs for; None: every one a model has."""
        if self.evaluation.checkpoints == "all":
            return None
        selected = {checkpoint_key(style, self.finetune.selected_epoch) for style in self.finetune.styles}
        return {"original", "warm-prompt", *selected}

    def model(self, slug: str) -> ModelSettings:
        for model in self.models:
            if model.slug == slug:
                return model
        raise UnknownModel(f"model {slug!r} is not in the configuration ([[models]] slug); known: "
                           f"{', '.join(m.slug for m in self.models)}")
