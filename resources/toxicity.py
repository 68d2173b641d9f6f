"""Detoxify, batched on the best device; offline through a local checkpoint or the demo's stand-in."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.pretrained import best_device
from warmth_assets.lib import paths
from warmth_assets.lib.config import DetoxifySettings, setting, shared_values


class ToxicityResource(dg.ConfigurableResource):
    """The `detoxify` library itself, configured by [corpus.detoxify] (`from_settings`)."""

    variant: str = setting(DetoxifySettings, "variant")
    checkpoint: str = setting(DetoxifySettings, "checkpoint")
    huggingface_config_path: str = setting(DetoxifySettings, "huggingface_config_path")
    standin: bool = setting(DetoxifySettings, "standin")
    standin_dir: str = Field("", description="Where the stand-in is built once; default WARMTH_HOME/artifacts")
    batch_size: int = setting(DetoxifySettings, "batch_size")
    max_length: int = setting(DetoxifySettings, "max_length")
    device: str = Field("auto", description="auto: cuda when available, else cpu")

    @classmethod
    def from_settings(cls, detoxify: DetoxifySettings, **overrides) -> "ToxicityResource":
        """The resource [corpus.detoxify] describes; `overrides` set what the settings do not hold (device,
        standin_dir)."""
        return cls(**{**shared_values(detoxify, cls), **overrides})

    def resolved_device(self) -> str:
        return best_device(self.device)

    def load(self, tokenizer_texts: list[str] | None = None):
        """A Detoxify model, with its tokenizer's maximum length capped at `max_length`."""
        from detoxify import Detoxify

        checkpoint, hf_config = self.checkpoint or None, self.huggingface_config_path or None
        if self.standin:
            from warmth_assets.lib.detoxify_standin import build_standin

            folder = Path(self.standin_dir) if self.standin_dir else paths.artifacts_dir() / "detoxify-standin"
            checkpoint, hf_config = build_standin(folder, tokenizer_texts or [""], max_length=self.max_length)
        if checkpoint and not Path(checkpoint).is_file():
            raise FileNotFoundError(
                f"Detoxify checkpoint {checkpoint} not found ([corpus.detoxify] checkpoint); "
                "leave it empty to let Detoxify download its weights"
            )
        model = Detoxify(self.variant, checkpoint=str(checkpoint) if checkpoint else None,
                         device=self.resolved_device(),
                         huggingface_config_path=str(hf_config) if hf_config else None)
        model.tokenizer.model_max_length = min(self.max_length, model.tokenizer.model_max_length or self.max_length)
        return model

    @staticmethod
    def prefix_tokens(model) -> int:
        """The truncation `score_distinct` may cut long texts at (`lib/toxicity.same_tokens_prefix`): the
        tokenizer's maximum length where its pre-tokenizer ends pieces at spaces (WordPiece, byte-level BPE,
        SentencePiece: Detoxify's three); 0 (texts whole) for any other."""
        tokenizer = getattr(model, "tokenizer", None)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        pre = type(backend.pre_tokenizer).__name__ if backend is not None and backend.pre_tokenizer else ""
        if pre not in {"BertPreTokenizer", "ByteLevel", "Metaspace", "WhitespaceSplit", "Whitespace"}:
            return 0
        return int(tokenizer.model_max_length)

    @property
    def source(self) -> str:
        if self.standin:
            return "untrained stand-in (scores are meaningless)"
        return f"detoxify {self.variant}" + (f" from {self.checkpoint}" if self.checkpoint else "")
