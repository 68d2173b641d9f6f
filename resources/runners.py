"""Which backend answers a model checkpoint: `runner_for`, the one factory of generation runners.

Open-weight checkpoints run in-process (the base model, plus the adapter when there is one) or, with
[serving] vllm_base_url set, through that vLLM server (the adapter as the LoRA module named by its
checkpoint; the key the server requires beyond loopback is the `llm` resource's `vllm_api_key`, from
EnvVar("VLLM_API_KEY")); API checkpoints go to the API under their fine-tuned model name. Every runner is the `llm`
resource with another backend (`LLMResource.with_backend`): one call cache, and the settings nobody
overrides here (retries, timeouts, the cross-process limit per endpoint) carried over, not picked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from resources.llm import LOCAL, OPENAI, LLMResource
from resources.local_lm import LocalLMResource
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.vllm_server import served_base_name


@dataclass(frozen=True)
class Runner:
    llm: LLMResource
    model: str  # the model name its requests carry
    server: str = ""  # the vLLM server of [serving] answering; "" for in-process and API runners

    @property
    def backend(self) -> str:
        """The package that generates, for the rows' provenance."""
        return "transformers" if self.llm.in_process else "openai"

    @property
    def generator(self) -> str:
        """What produced the answers: the in-process model's identity (adapter included), else the model name."""
        return self.llm.endpoint if self.llm.in_process else self.model


def runner_for(llm: LLMResource, settings: StudySettings, model_row: Mapping, adapter: Mapping, checkpoint: str, *,
               use_server: bool = True) -> Runner:
    """The runner of one model checkpoint (`model_row`: its registry row; `adapter`: its `adapters` row).
    `use_server=False` keeps open-weight checkpoints in-process even when a vLLM server is configured."""
    if model_row["access"] == "api":
        return Runner(llm, adapter["fine_tuned_model"] or model_row["source"])
    lora = adapter["kind"] == "lora"
    vllm_url = settings.serving.vllm_base_url
    if use_server and vllm_url:
        # [serving] max_concurrency in flight from this run (vLLM batches them; [llm]'s is sized for the
        # local backend). A local server has no Batch API and costs nothing: no batches, no budget. Its key is
        # VLLM_API_KEY (`vllm_api_key`), never [llm]'s OpenAI key: that one stays with the API.
        server = llm.with_backend(provider=OPENAI, base_url=vllm_url, api_key=llm.vllm_api_key,
                                  max_concurrency=settings.serving.max_concurrency, batch_min_requests=0,
                                  budget_usd=0.0, prices_per_million_tokens={})
        return Runner(server, checkpoint if lora else served_base_name(model_row["slug"]), server=vllm_url)
    local = LocalLMResource.from_settings(model_row, settings.generation, adapter_path=adapter["path"] if lora else "",
                                          adapter_sha256=adapter["sha256"] if lora else "")
    return Runner(llm.with_backend(provider=LOCAL, local=local), model_row["slug"])
