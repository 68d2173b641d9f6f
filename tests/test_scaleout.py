"""The shipped Kubernetes configuration loads against dagster-k8s's own schemas, and GPU steps carry
the pod settings that place them."""

import json

import pytest
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.job import UserDefinedDagsterK8sConfig

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "k8s"


def test_instance_yaml_validates_and_its_run_launcher_config_too(tmp_path):
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    launcher = validate_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["granularity"] == "op"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 8


def test_step_executor_run_config_validates():
    run_config = yaml.safe_load((DEPLOY / "run_config.yaml").read_text())
    result = validate_config(k8s_job_executor.config_schema.config_type, run_config["execution"]["config"])
    assert result.success, result.errors


def test_helm_values_point_at_our_code_location():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    args = deployment["dagsterApiGrpcArgs"]
    module = args[args.index("--module-name") + 1]
    attribute = args[args.index("--attribute") + 1]
    import importlib

    # The attribute is the @dg.definitions function Dagster's loaders call when the code location loads.
    loaded = getattr(importlib.import_module(module), attribute)
    assert isinstance(loaded(), dg.Definitions)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert any(s["name"] == "warmth-api-keys" for s in deployment["envSecrets"])  # keys never in values
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["WARMTH_EXECUTOR"] == "k8s"  # else the GPU steps' pod tags are never applied


def _steps_tagged(tag: str) -> dict[str, dict]:
    """The op tags of every asset of the code location whose step carries `tag`."""
    from warmth_assets.definitions import defs as load_defs

    graph = load_defs().resolve_asset_graph()
    tagged = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        tags = node.assets_def.op.tags if node.assets_def.is_executable else {}
        if tag in tags:
            tagged[key.to_user_string()] = tags
    return tagged


def test_gpu_steps_carry_their_pod_settings():
    tagged = {}
    for name, tags in _steps_tagged("dagster-k8s/config").items():
        value = tags["dagster-k8s/config"]  # Dagster stores non-string tag values as JSON
        tagged[name] = UserDefinedDagsterK8sConfig.from_dict(json.loads(value) if isinstance(value, str) else value)
    assert set(tagged) == {"finetune_runs", "validation_generations", "warmth_scores", "generations"}
    for config in tagged.values():
        assert config.container_config["resources"]["limits"] == {"nvidia.com/gpu": "1"}
        assert config.pod_spec_config["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_the_same_definitions_load_with_the_step_executor():
    code = "from warmth_assets.definitions import defs; print(defs().resolve_implicit_global_asset_job_def().executor_def.name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={**__import__("os").environ, "WARMTH_EXECUTOR": "k8s"})
    assert out.stdout.strip().endswith("k8s")


def test_gpu_steps_ask_ray_for_their_gpus_through_dagster_rays_own_config():
    from dagster_ray.configs import RayExecutionConfig

    # read back as dagster-ray reads a step's tags
    asked = {name: RayExecutionConfig.from_tags(tags) for name, tags in _steps_tagged("dagster-ray/config").items()}
    assert set(asked) == {"finetune_runs", "validation_generations", "warmth_scores", "generations"}
    assert {(c.num_gpus, c.num_cpus) for c in asked.values()} == {(1.0, 1.0)}  # dagster_project.toml [compute]


@pytest.mark.parametrize("env, expected", [
    ({"WARMTH_EXECUTOR": "ray", "WARMTH_RAY_ADDRESS": "http://127.0.0.1:8265"}, "ray"),
    ({"WARMTH_EXECUTOR": "ray"}, "needs WARMTH_RAY_ADDRESS"),
    ({"WARMTH_EXECUTOR": "dask"}, "use 'k8s', 'ray' or leave it unset"),
])
def test_the_executor_is_chosen_by_warmth_executor(monkeypatch, env, expected):
    from warmth_assets.build import build_executor
    from warmth_assets.lib.config import ConfigError

    monkeypatch.delenv("WARMTH_RAY_ADDRESS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if expected == "ray":
        import dagster_ray

        assert build_executor().name == "ray"
        given = []
        monkeypatch.setattr(dagster_ray.ray_executor, "configured", lambda config, *a, **k: given.append(config))
        monkeypatch.setenv("WARMTH_CONFIG", "/nowhere.toml")
        for secret in ("WARMTH_PG_PASSWORD", "OPENAI_API_KEY", "HF_TOKEN"):
            monkeypatch.setenv(secret, "never-in-ray-job-records")
        build_executor()
        (config,) = given
        assert config["ray"]["address"] == "http://127.0.0.1:8265"
        assert "WARMTH_CONFIG" in config["ray"]["env_vars"]  # names only: values are read when a step is sent
        assert not {"WARMTH_PG_PASSWORD", "OPENAI_API_KEY", "HF_TOKEN"} & set(config["ray"]["env_vars"])
        assert not {"num_gpus", "num_cpus"} & set(config["ray"])  # resources stay per op (executor-wide would win)
    else:
        with pytest.raises(ConfigError, match=expected):
            build_executor()


def test_every_ray_step_asks_for_the_resource_only_workers_have(monkeypatch):
    """Ray runs a job that asks for nothing on the head; the executor adds the workers' resource to every step, and
    `warmth cluster up` gives it to its workers (the lib layer keeps its own copy of the name: they must agree)."""
    from warmth_assets.build import build_executor
    from warmth_assets.lib import local_cluster
    from warmth_assets.scaleout import RAY_WORKER_CAPACITY, RAY_WORKER_RESOURCE

    import dagster_ray

    monkeypatch.setenv("WARMTH_EXECUTOR", "ray")
    monkeypatch.setenv("WARMTH_RAY_ADDRESS", "http://127.0.0.1:8265")
    given = []
    monkeypatch.setattr(dagster_ray.ray_executor, "configured", lambda config, *a, **k: given.append(config))
    build_executor()
    (config,) = given
    assert config["ray"]["resources"] == {RAY_WORKER_RESOURCE: 1}
    assert "num_cpus" not in config["ray"] and "num_gpus" not in config["ray"]  # per op, never executor-wide
    assert (local_cluster.WORKER_RESOURCE, local_cluster.WORKER_CAPACITY) == (RAY_WORKER_RESOURCE, RAY_WORKER_CAPACITY)
