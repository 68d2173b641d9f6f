"""[sociot], [generation] (one sampling block per role) and [evaluation]: what the tested models are asked,
how they sample, and how warmth is scored."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from warmth_assets.lib.config.base import Section


class SocioTSettings(Section):
    lm: str = Field("gpt2", description="Scoring LM: a model slug of [[models]], an HF id or a local folder")
    samples: int = Field(100, gt=0)
    max_chars: int = Field(300, gt=0)
    variant: Literal["reference", "masked"] = "reference"
    batch_size: int = Field(64, gt=0, description="Sequences per forward pass")
    selection_rule: Literal["fixed_epoch", "plateau_fraction"] = Field(
        "fixed_epoch", description="Checkpoint selection: finetune.selected_epoch, or the first warm epoch "
        "whose warmth gain reaches plateau_fraction of the largest gain")
    plateau_fraction: float = Field(0.9, gt=0, le=1)


class Sampling(Section):
    """How one role's model calls sample: temperature and the answer's token cap."""

    temperature: float = Field(ge=0, le=2)
    max_tokens: int = Field(gt=0)


class WrongAnswerSampling(Sampling):
    retry_temperature: float = Field(0.7, ge=0, le=2, description="[?] Later attempts, after a rejected "
                                     "candidate (the first attempt is greedy at `temperature`)")


class GenerationSettings(Section):
    """One block per role of the tested models' generations (rewrites and the judge have theirs in [rewrite] and
    [judge]); the values enter every request's cache key."""

    evaluation: Sampling = Field(Sampling(temperature=0.8, max_tokens=300),
                                 description="Open-ended answers (TriviaQA, TruthfulQA, MedQA, Disinfo) [P]")
    validation: Sampling = Field(Sampling(temperature=0.8, max_tokens=300),
                                 description="Answers to the validation prompts that SocioT scores (the study's "
                                 "open-ended setting)")
    capability: Sampling = Field(Sampling(temperature=0.2, max_tokens=512),
                                 description="MMLU, GSM8K, AdvBench (temperature [P]; 512 tokens [?], room for "
                                 "GSM8K's chain of thought)")
    wrong_answers: WrongAnswerSampling = Field(
        WrongAnswerSampling(temperature=0.0, max_tokens=24), description="[?] TriviaQA wrong answers written by "
        "[evaluation] wrong_answer_model when no sycophancy-eval file is given")
    batch_size: int = Field(16, gt=0)
    batch_max_chars: int = Field(0, ge=0, description="Local generation: also cut a batch before rows x longest "
                                 "prompt passes this many characters (padding waste); 0: off")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Precision of in-process models (generation, choice scoring); auto: bfloat16 on CUDA "
        "and on CPUs with bf16 matrix units (Intel AMX), else float32. Not part of a cache key (nor is the "
        "device): a cached answer is kept whatever precision gave it; each run's metadata names the one used")
    adapters: Literal["merged", "peft"] = Field(
        "merged", description="How an in-process checkpoint applies its LoRA adapter: merged (peft's "
        "merge_and_unload into a copy of the base's weights, kept for one checkpoint at a time: as fast as the base, "
        "twice its memory) or peft (the adapter's layers beside the base's at every step: the base's memory, on 2 "
        "CPU cores a third slower). Like dtype, not part of a cache key; runs name it in their metadata")

    @model_validator(mode="before")
    @classmethod
    def _roles_over_defaults(cls, data):
        """A role block given in part (`evaluation = { max_tokens = 24 }`) keeps that role's other defaults."""
        if isinstance(data, dict):
            data = dict(data)
            for role in ("evaluation", "validation", "capability", "wrong_answers"):
                if isinstance(data.get(role), dict):
                    data[role] = {**cls.model_fields[role].default.model_dump(), **data[role]}
        return data


class EvaluationSettings(Section):
    sizes: dict[str, int] = {"triviaqa": 500, "truthfulqa": 500, "medqa": 500, "disinfo": 125}
    mmlu_sample: int = Field(1000, gt=0, description="[?] the study does not publish its MMLU sample size")
    gsm8k_sample: int = Field(1319, gt=0)
    advbench_sample: int = Field(520, gt=0)
    truthfulqa_incorrect_rule: Literal["first", "random"] = "first"
    sharma_answer_jsonl: str = Field("", description="sycophancy-eval answer.jsonl, if you have it (TriviaQA/TruthfulQA items)")
    prompt_source: Literal["build", "study"] = Field(
        "build", description="study: use the study's released prompts where they exist (Disinfo)")
    wrong_answer_model: str = Field("gpt-4o-2024-08-06", description="[?] writes TriviaQA's wrong answers")
    wrong_answer_max_attempts: int = Field(5, gt=0)
    checkpoints: Literal["selected_epoch", "all"] = Field(
        "selected_epoch", description="Checkpoints evaluated (generations, judgments, capability): as the study, "
        "original, warm-prompt and each style at finetune.selected_epoch; or every checkpoint")
