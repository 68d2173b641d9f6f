"""`build_defs(settings)`: the whole code location built from the settings it is given.

Partitions, GPU tags, code versions, the sensor, the schedule and the jobs all come from `settings`, so
a test builds the same definitions as definitions.py from its own settings and no module reads the
configuration at import. definitions.py calls this when the code location loads, with its settings snapshot.
"""

import os

import dagster as dg

from resources.backends import backend_class
from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.model_catalog import ModelCatalogResource
from resources.study import StudyConfigResource
from resources.toxicity import ToxicityResource
from resources.warehouse import WarehouseResource
from resources.warehouses import partition_io_for, warehouse_for
from warmth_assets.assets import (analysis, corpus, evaluation, finetune, inspect_logs, judging, operations, registry,
                                  rewrites, warmth)
from warmth_assets.automation import automation_sensor, or_stale
from warmth_assets.checks import CHECKS, partitions_current_checks
from warmth_assets.code_versions import READS, code_version
from warmth_assets.lib import paths
from warmth_assets.maintenance import warehouse_maintenance, warehouse_maintenance_schedule
from warmth_assets.lib.config import ConfigError, StudySettings
from warmth_assets.lib.config.snapshot import SettingsSnapshot
from warmth_assets.partitions import StudyPartitions, study_partitions
from warmth_assets.scaleout import RAY_WORKER_RESOURCE, gpu_op_tags
from warmth_assets.schedules import build_reevaluation
from warmth_assets.sensors import build_new_model_sensor

UNPARTITIONED = [registry, operations, corpus, rewrites, finetune, warmth, evaluation, judging, analysis]
PARTITIONED = [rewrites, finetune, warmth, evaluation, judging, inspect_logs]


def with_code_versions(assets: list[dg.AssetsDefinition], settings: StudySettings) -> list[dg.AssetsDefinition]:
    """Each asset with its code version; external assets (imported_outputs) run no code here and get none."""
    return [a.map_asset_specs(lambda spec: spec.replace_attributes(
        code_version=code_version(spec.key.to_user_string(), settings))) if a.is_executable else a for a in assets]


def with_stale_rematerialised(assets: list[dg.AssetsDefinition], settings: StudySettings,
                              parts: StudyPartitions) -> list[dg.AssetsDefinition]:
    """[operations] rematerialize_stale: each automation condition also takes the partitions Dagster marks stale."""
    if not settings.operations.rematerialize_stale:
        return assets
    return [a.map_asset_specs(lambda spec: spec if spec.automation_condition is None else spec.replace_attributes(
        automation_condition=or_stale(spec.automation_condition, parts.evaluated, spec.partitions_def is not None)))
        for a in assets]


def build_defs(settings: StudySettings, resources: dict | None = None, executor=None) -> dg.Definitions:
    """The assets, checks, sensors, schedules and jobs of the study `settings` describes.

    `resources["study"]`, if given, must hold the same settings: the assets read it at run time, and
    partitions built from one file with assets reading another would disagree silently.
    """
    study = (resources or {}).get("study")
    if isinstance(study, StudyConfigResource) and study.settings != settings:
        raise ConfigError(f"build_defs: the study resource ({study.config_path}) holds other settings than the "
                          "ones the definitions are built from")
    parts = study_partitions(settings)
    gpu_tags = gpu_op_tags(settings.compute)
    built = {a.key.to_user_string(): a for m in PARTITIONED for a in m.build_assets(parts, gpu_tags)}
    assets = with_stale_rematerialised(
        with_code_versions([*dg.load_assets_from_modules(UNPARTITIONED), *built.values()], settings), settings, parts)
    by_name = {key.to_user_string(): a for a in assets for key in a.keys}
    # What runs can materialise (an external asset, such as the imported results, is recorded, never run: no check).
    partitioned = [s.key.to_user_string() for a in assets if a.is_executable for s in a.specs
                   if s.partitions_def is not None]
    sensor, entry_jobs = build_new_model_sensor(settings, parts, by_name["finetune_runs"], by_name["adapters"])
    schedule, reevaluation_job = build_reevaluation(settings, parts)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*CHECKS, *partitions_current_checks({name: READS[name].settings for name in partitioned})],
        sensors=[sensor, automation_sensor],
        schedules=[schedule, warehouse_maintenance_schedule],
        jobs=[reevaluation_job, *entry_jobs, warehouse_maintenance],
        resources=resources,
        executor=executor,
    )


def build_llm(settings: StudySettings, warehouse: WarehouseResource) -> LLMResource:
    """The `llm` resource from [llm], with WARMTH_LLM_PROVIDER overriding the provider.

    Secrets stay out of the configuration: the keys (OPENAI_API_KEY; VLLM_API_KEY, the [serving] server's) and
    a base URL from the environment are Dagster EnvVars, resolved when a run starts, shown by name in the UI
    and never logged or stored.
    """
    provider = os.environ.get("WARMTH_LLM_PROVIDER") or settings.llm.provider
    try:
        backend = backend_class(provider)
    except ValueError as exc:
        raise ConfigError(f"WARMTH_LLM_PROVIDER={provider!r}: {exc}") from None
    local = None
    if backend.in_process:
        slug = settings.llm.local_model or settings.models[0].slug
        local = LocalLMResource.from_settings(settings.model(slug), settings.generation)
    base_url = settings.llm.base_url or (dg.EnvVar("OPENAI_BASE_URL") if os.environ.get("OPENAI_BASE_URL") else None)
    return LLMResource.from_settings(
        settings.llm, settings.operations, warehouse=warehouse, provider=provider, base_url=base_url,
        api_key=dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else None, local=local,
        # the [serving] vLLM server's key (runners.runner_for sends it there, and only there)
        vllm_api_key=dg.EnvVar("VLLM_API_KEY") if os.environ.get("VLLM_API_KEY") else None)


def build_resources(snapshot: SettingsSnapshot) -> dict:
    """The resources of the settings `snapshot`, which the study resource hands to every run whole."""
    settings = snapshot.settings
    warehouse = warehouse_for(settings)
    return {
        "warehouse": warehouse,
        "study": StudyConfigResource.from_snapshot(snapshot),
        "toxicity": ToxicityResource.from_settings(settings.corpus.detoxify),
        "llm": build_llm(settings, warehouse),
        "parquet_io_manager": partition_io_for(warehouse),
        "model_catalog": ModelCatalogResource(
            api_key=dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else None,
            hf_token=dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None,
            hf_endpoint=os.environ.get("HF_ENDPOINT") or None,
        ),
    }


# What a step on a Ray node needs from the run's environment (names only: values are read when a step is sent).
# No secret: Ray keeps a job's runtime env in its job records (the dashboard shows them), so Postgres's password and
# the API keys (WARMTH_PG_PASSWORD, OPENAI_API_KEY, HF_TOKEN, VLLM_API_KEY) come from each node's own environment:
# `warmth cluster up` starts its nodes with them, a KubeRay pod from its Secret (deploy/kuberay).
RAY_STEP_ENV = ("WARMTH_HOME", "WARMTH_CONFIG", "WARMTH_SETTINGS_SNAPSHOT", "WARMTH_DATA_DIR", "DAGSTER_HOME",
                "WARMTH_WAREHOUSE", "WARMTH_PG_HOST", "WARMTH_PG_PORT", "WARMTH_PG_USER", "WARMTH_PG_DB",
                "OPENAI_BASE_URL")


def build_executor():
    """One pod per step under Kubernetes (WARMTH_EXECUTOR=k8s, deploy/k8s/); one Ray job per step on a Ray cluster
    (WARMTH_EXECUTOR=ray, its dashboard at WARMTH_RAY_ADDRESS; resources per op from the `dagster-ray/config`
    tags of warmth_assets/scaleout.py, none executor-wide); the default elsewhere."""
    executor = os.environ.get("WARMTH_EXECUTOR", "")
    if executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if executor == "ray":
        from dagster_ray import ray_executor

        address = os.environ.get("WARMTH_RAY_ADDRESS")
        if not address:
            raise ConfigError("WARMTH_EXECUTOR=ray needs WARMTH_RAY_ADDRESS, the Ray dashboard "
                              "(e.g. http://127.0.0.1:8265; `warmth cluster up` prints it)")
        return ray_executor.configured({"ray": {
            "address": address, "env_vars": [name for name in RAY_STEP_ENV if os.environ.get(name)],
            "resources": {RAY_WORKER_RESOURCE: 1}}})
    if executor:
        raise ConfigError(f"WARMTH_EXECUTOR={executor!r}: use 'k8s', 'ray' or leave it unset")
    return None
