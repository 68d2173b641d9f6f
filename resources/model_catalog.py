"""Where the new_model_sensor looks for models: OpenAI-compatible `/v1/models` listings and the HF hub."""

import dagster as dg
from pydantic import Field

from warmth_assets.lib.config import WatchRule


class ModelCatalogResource(dg.ConfigurableResource):
    """Lists model ids. Keys come in through EnvVar (OPENAI_API_KEY, HF_TOKEN), never logged or stored."""

    api_key: str | None = Field(None, description="EnvVar('OPENAI_API_KEY') for /v1/models")
    hf_token: str | None = Field(None, description="EnvVar('HF_TOKEN'), for gated or private organisations")
    hf_endpoint: str | None = Field(None, description="Hub mirror; empty: HF_ENDPOINT or huggingface.co")
    timeout_s: float = Field(10.0, description="Per listing, no retries: a sensor tick must stay well under "
                             "Dagster's 60 s limit; an unreachable server is reported and tried next tick")

    def list_openai(self, base_url: str) -> list[str]:
        import openai

        client = openai.OpenAI(api_key=self.api_key or "not-needed", base_url=base_url or None,
                               timeout=self.timeout_s, max_retries=0)
        return [m.id for m in client.models.list()]

    def list_hub(self, rule: WatchRule) -> list[str]:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.hf_endpoint or None, token=self.hf_token or None)
        # Newest first, so a bounded listing still sees this week's releases.
        found = api.list_models(author=rule.author or None, search=rule.search or None, sort="created_at",
                                limit=rule.limit)
        return [m.id for m in found]
