"""[llm], [serving], [compute] and [operations]: how calls are sent, where steps run, what is watched and
what may be spent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from warmth_assets.lib.config.base import Section


class LLMSettings(Section):
    provider: Literal["openai", "local"] = Field(
        "openai", description="openai: any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp); local: the "
        "in-process model local_model. WARMTH_LLM_PROVIDER overrides it")
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


class ServingSettings(Section):
    vllm_base_url: str = Field("", description="OpenAI-compatible vLLM server with the checkpoints as LoRA modules")
    max_concurrency: int = Field(
        32, gt=0, description="Requests in flight to the vLLM server from one run (it batches what it is sent); "
        "[operations] max_api_concurrency_per_provider still caps the endpoint across runs")


class ComputeSettings(Section):
    gpu_pool_limit: int = Field(1, gt=0, description="Concurrent steps in the Dagster concurrency pool 'gpu'")
    max_concurrent_runs: int = Field(4, gt=0)
    gpu_node_selector: dict[str, str] = Field(
        default_factory=dict, description="k8s node selector for GPU steps (dagster-k8s/config tag)")
    gpu_resources: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu": "1"}, description="k8s resource limits for GPU steps")
    ray_gpus_per_step: float = Field(1.0, ge=0, description="GPUs a GPU step asks of Ray (dagster-ray/config tag)")
    ray_cpus_per_step: float = Field(1.0, ge=0, description="CPUs a GPU step asks of Ray besides its GPUs")


class WatchRule(Section):
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


class OperationsSettings(Section):
    sensor_interval_s: int = Field(300, gt=0, description="Seconds between new_model_sensor ticks")
    max_runs_per_tick: int = Field(8, gt=0, description="Run requests per sensor tick; the rest wait")
    watch: list[WatchRule] = Field(default_factory=list)
    reevaluation_cron: str = Field("0 3 * * 1", description="When moving targets are re-evaluated (UTC)")
    reevaluate_checkpoints: list[str] = Field(
        default_factory=lambda: ["original", "warm-prompt"],
        description="Checkpoints of a moving target re-evaluated: the alias moves; a fine-tuned snapshot is fixed. "
        "Evaluated checkpoints only ([evaluation] checkpoints): the evaluation stage has no other partitions")
    budget_usd: float = Field(0.0, ge=0, description="Stop before total API spend would pass this; 0: no limit")
    max_api_concurrency_per_provider: int = Field(
        16, gt=0, description="Calls in flight to one endpoint across every run and process")
    rematerialize_stale: bool = Field(
        False, description="Automation also re-materialises the partitions (and summaries) Dagster marks stale, e.g. "
        "after a setting they read changed; off: `warmth stale` and the partitions_current checks only show them. "
        "finetune_runs, imported partitions and checkpoints a model does not have are never re-run")
