"""The code location: every asset, check and resource of the warmth platform."""

import os

import dagster as dg

from resources.llm import LLMResource, runs_in_process
from resources.local_lm import LocalLMResource
from resources.model_catalog import ModelCatalogResource
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from resources.toxicity import ToxicityResource
from warmth_assets.assets import (analysis, corpus, evaluation, finetune, judging, operations, registry, rewrites,
                                  warmth)
from warmth_assets.automation import automation_sensor
from warmth_assets.checks import CHECKS
from warmth_assets.lib import paths
from warmth_assets.schedules import reevaluation_job, reevaluation_schedule
from warmth_assets.sensors import base_checkpoints_job, new_model_sensor, training_job
from warmth_assets.lib.config import ConfigError, StudySettings, config_path, load_config


def build_llm(settings: StudySettings, warehouse: WarehouseResource) -> LLMResource:
    """The `llm` resource from [llm], with WARMTH_LLM_PROVIDER overriding the provider.

    Secrets stay out of the configuration: the key (and a base URL from the environment) are Dagster
    EnvVars, resolved when a run starts, shown by name in the UI and never logged or stored.
    """
    provider = os.environ.get("WARMTH_LLM_PROVIDER") or settings.llm.provider
    try:
        in_process = runs_in_process(provider)
    except ValueError as exc:
        raise ConfigError(f"WARMTH_LLM_PROVIDER={provider!r}: {exc}") from None
    local = None
    if in_process:
        slug = settings.llm.local_model or settings.models[0].slug
        model = settings.model(slug)
        local = LocalLMResource(source_kind=model.source_kind, source=model.source, chat_template=model.chat_template,
                                batch_size=settings.generation.batch_size,
                                batch_max_chars=settings.generation.batch_max_chars)
    base_url = settings.llm.base_url or (dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None)
    return LLMResource(
        provider=provider,
        base_url=base_url,
        api_key=dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else None,
        local=local,
        warehouse=warehouse,
        max_concurrency=settings.llm.max_concurrency,
        timeout_s=settings.llm.timeout_s,
        max_retries=settings.llm.max_retries,
        prices_per_million_tokens=settings.llm.prices_per_million_tokens,
        budget_usd=settings.operations.budget_usd,
        batch_min_requests=settings.llm.batch_min_requests,
        batch_poll_s=settings.llm.batch_poll_s,
        max_concurrency_per_provider=settings.operations.max_api_concurrency_per_provider,
    )


def build_resources() -> dict:
    warehouse = WarehouseResource(database=str(paths.warehouse_path()))
    settings = load_config()
    detoxify = settings.corpus.detoxify
    return {
        "warehouse": warehouse,
        "study": StudyConfigResource(config_path=str(config_path())),
        "toxicity": ToxicityResource(
            variant=detoxify.variant,
            checkpoint=detoxify.checkpoint,
            huggingface_config_path=detoxify.huggingface_config_path,
            standin=detoxify.standin,
            batch_size=detoxify.batch_size,
            max_length=detoxify.max_length,
        ),
        "llm": build_llm(settings, warehouse),
        "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(paths.tables_dir()), warehouse=warehouse),
        "model_catalog": ModelCatalogResource(
            api_key=dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else None,
            hf_token=dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None,
            hf_endpoint=os.environ.get("HF_ENDPOINT") or None,
        ),
    }


def build_executor():
    """One pod per step under Kubernetes (WARMTH_EXECUTOR=k8s, deploy/k8s/); the default elsewhere."""
    if os.environ.get("WARMTH_EXECUTOR") == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return None


defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [registry, operations, corpus, rewrites, finetune, warmth, evaluation, judging, analysis]),
    asset_checks=CHECKS,
    sensors=[new_model_sensor, automation_sensor],
    schedules=[reevaluation_schedule],
    jobs=[reevaluation_job, training_job, base_checkpoints_job],
    resources=build_resources(),
    executor=build_executor(),
)
