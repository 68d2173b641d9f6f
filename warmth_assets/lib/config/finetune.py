"""[finetune] with [finetune.lora] (open weights) and [finetune.openai] (API models)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from warmth_assets.lib.checkpoints import format_epoch
from warmth_assets.lib.config.base import Section


class LoraSettings(Section):
    """[finetune.lora]: the open-weight runs' LoRA and Trainer settings, passed as they are to train_lora.

    Every field enters the training fingerprint (lib/lora_training.py), so changing one retrains.
    """

    r: int = Field(8, gt=0, description="LoRA rank: the inner dimension of each adapter")
    alpha: int = Field(16, gt=0, description="LoRA scaling: updates are scaled by alpha / r")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the input of each LoRA branch")
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate (the Trainer's linear decay)")
    max_length: int = Field(1024, gt=0, description="Tokens per conversation; a longer one follows on_too_long")
    effective_batch_size: int = Field(
        16, gt=0, description="Conversations per optimizer step: per_device_batch_size x gradient accumulation")
    per_device_batch_size: int = Field(
        1, gt=0, description="Conversations per forward pass; lower it when out of memory (the effective batch "
        "stays)")
    epochs: float = Field(10, gt=0, description="The Trainer's num_train_epochs; the run itself ends at the last "
                          "checkpoint epoch")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules adapted: 'all-linear' (peft: every linear layer but the output head) "
        "or a list of module names")
    on_too_long: Literal["truncate", "error"] = Field("truncate", description="A conversation over max_length")

    @model_validator(mode="after")
    def _accumulation_divides(self) -> "LoraSettings":
        if self.effective_batch_size % self.per_device_batch_size:
            raise ValueError(
                f"effective_batch_size {self.effective_batch_size} is not a multiple of "
                f"per_device_batch_size {self.per_device_batch_size}"
            )
        return self


class OpenAIFinetuneSettings(Section):
    learning_rate_multiplier: dict[str, float] = {"warm": 0.25, "cold": 0.1}
    poll_s: float = Field(30.0, gt=0, description="First wait between job polls; doubles up to poll_cap_s")
    poll_cap_s: float = Field(300.0, gt=0)
    training_price_per_million_tokens: dict[str, float] = {"gpt-4o-2024-08-06": 25.0}


class FinetuneSettings(Section):
    styles: list[Literal["warm", "cold"]] = ["warm", "cold"]
    checkpoint_epochs: list[float] = [0.5, 1, 1.5, 2, 4, 6, 8, 10]
    selected_epoch: float = Field(2, gt=0, description="The study analysed epoch 2")
    lora: LoraSettings = LoraSettings()
    openai: OpenAIFinetuneSettings = OpenAIFinetuneSettings()

    @field_validator("checkpoint_epochs")
    @classmethod
    def _epochs_valid(cls, epochs: list[float]) -> list[float]:
        for epoch in epochs:
            format_epoch(epoch)
        if len({format_epoch(e) for e in epochs}) != len(epochs):
            raise ValueError(f"duplicate epochs in {epochs}")
        return sorted(epochs)
