"""deploy/kuberay/ as KubeRay, Ray, Kubernetes and our own code read it (no cluster here: see deploy/README.md).

KubeRay's CRD schema ships with its Helm chart, in no PyPI package: the RayCluster is read by dagster-ray's model of
its spec, by Ray's own KubeRay autoscaler parser, and its pod templates by the `kubernetes` client's models, and the
rest is checked by hand."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[1]
KUBERAY = REPO / "deploy" / "kuberay"
FILL_IN = re.compile(r"<FILL-IN[^>]*>")


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d]


def _one(kind: str, docs: list[dict]) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def cluster() -> dict:
    return _one("RayCluster", _docs("raycluster.yaml"))


@pytest.fixture(scope="module")
def dagster_side() -> list[dict]:
    return _docs("dagster.yaml")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _round_trips(data: dict, model: str) -> bool:
    """`data` read as the kubernetes client's `model` and written back is `data` itself: every field is one the
    model knows, spelt as Kubernetes spells it."""
    api = ApiClient()
    return api.sanitize_for_serialization(api._ApiClient__deserialize(data, model)) == data


def _pod_templates(cluster: dict, dagster_side: list[dict]) -> dict[str, dict]:
    spec = cluster["spec"]
    templates = {"ray-head": spec["headGroupSpec"]["template"]}
    templates |= {f"ray-{g['groupName']}": g["template"] for g in spec["workerGroupSpecs"]}
    templates |= {d["metadata"]["name"]: d["spec"]["template"] for d in dagster_side if d["kind"] == "Deployment"}
    return templates


def _containers(template: dict) -> list[dict]:
    return [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]


def test_the_raycluster_is_a_ray_io_v1_raycluster_as_dagster_ray_models_it(cluster):
    from dagster_ray.kuberay.configs import RayClusterSpec

    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    spec = cluster["spec"]
    modelled = RayClusterSpec(**{_snake(k): v for k, v in spec.items()})  # refuses token auth without rayVersion
    assert modelled.auth_options.to_k8s() == {"mode": "token", "secretName": "warmth-ray-auth"} == {
        k: v for k, v in spec["authOptions"].items()}
    assert set(modelled.model_extra or {}) == set()  # every top-level field is one dagster-ray knows

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (ray_pin,) = [r for r in pyproject["project"]["optional-dependencies"]["scaleout"] if r.startswith("ray")]
    assert spec["rayVersion"] == ray_pin.split("==")[1]  # the image's Ray (the scaleout extra)
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        params = group["rayStartParams"]
        assert all(isinstance(v, str) for v in params.values()), params  # the CRD's map[string]string


def test_ray_reads_a_head_without_cpus_and_gpu_workers_as_their_pods_allow(cluster):
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    from warmth_assets.lib.config import load_settings

    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert head["rayStartParams"]["include-dashboard"] == "true"
    nodes = _derive_autoscaling_config_from_ray_cr(cluster)["available_node_types"]
    assert (nodes["headgroup"]["resources"]["CPU"], nodes["headgroup"]["resources"]["GPU"]) == (0, 0)

    compute = load_settings(REPO / "dagster_project.toml").compute
    (gpu,) = cluster["spec"]["workerGroupSpecs"]
    (container,) = gpu["template"]["spec"]["containers"]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits == requests  # a GPU cannot be shared: what is asked is what is held
    assert int(limits["nvidia.com/gpu"]) == int(gpu["rayStartParams"]["num-gpus"]) >= 1
    assert int(limits["cpu"]) == int(gpu["rayStartParams"]["num-cpus"])
    ray_sees = nodes[gpu["groupName"]]
    assert (ray_sees["resources"]["GPU"], ray_sees["resources"]["CPU"]) == (int(limits["nvidia.com/gpu"]),
                                                                           int(limits["cpu"]))
    assert ray_sees["max_workers"] == gpu["maxReplicas"] >= gpu["replicas"] >= gpu["minReplicas"]
    # one GPU step (its dagster-ray/config tag, from [compute]) fits one worker
    assert compute.ray_gpus_per_step <= ray_sees["resources"]["GPU"]
    assert compute.ray_cpus_per_step <= ray_sees["resources"]["CPU"]
    # every step asks for the workers' own resource (the executor adds it): only workers have it, Ray's parser agrees
    from warmth_assets.scaleout import RAY_WORKER_CAPACITY, RAY_WORKER_RESOURCE

    assert ray_sees["resources"].get(RAY_WORKER_RESOURCE) == RAY_WORKER_CAPACITY
    assert RAY_WORKER_RESOURCE not in nodes["headgroup"]["resources"]
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["template"]["spec"]["tolerations"])


def test_every_object_reads_back_unchanged_through_the_kubernetes_models(cluster, dagster_side):
    for name, template in _pod_templates(cluster, dagster_side).items():
        assert _round_trips(template, "V1PodTemplateSpec"), name
    kinds = {d["kind"] for d in dagster_side}
    assert kinds == {"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"}
    for doc in dagster_side:
        assert _round_trips(doc, f"V1{doc['kind']}"), doc["kind"]
    # and the check can fail: a misspelt field is dropped by the model
    bad = {"spec": {"containers": [{"name": "x", "image": "i", "envFromm": []}]}}
    assert not _round_trips(bad, "V1PodTemplateSpec")


def test_every_pod_runs_the_image_of_deploy_dockerfile_with_dagster_and_ray(cluster, dagster_side):
    images = {c["image"] for t in _pod_templates(cluster, dagster_side).values() for c in _containers(t)}
    assert len(images) == 1, images
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    (extras,) = re.findall(r'pip install [^\n]*"\.\[([\w,]+)\]"', dockerfile)
    assert "scaleout" in extras.split(",")  # dagster-ray and ray[default]: `dagster` and `ray` on the PATH
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    scaleout = " ".join(pyproject["project"]["optional-dependencies"]["scaleout"])
    assert "dagster-ray" in scaleout and "ray[default]" in scaleout
    assert "wget" in dockerfile  # KubeRay's exec probes before HTTP health checks


def _env_from(container: dict) -> tuple[set[str], set[str]]:
    config_maps = {e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e}
    secrets = {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    return config_maps, secrets


def test_the_dagster_side_runs_steps_on_this_clusters_dashboard(cluster, dagster_side, monkeypatch):
    import dagster_ray

    from warmth_assets.build import build_executor

    env = _one("ConfigMap", dagster_side)["data"]
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    (dashboard_port,) = [p["containerPort"] for p in head["ports"] if p["name"] == "dashboard"]
    service = f"{cluster['metadata']['name']}-head-svc.{cluster['metadata']['namespace']}.svc.cluster.local"
    assert env["WARMTH_EXECUTOR"] == "ray"
    assert env["WARMTH_RAY_ADDRESS"] == f"http://{service}:{dashboard_port}"  # KubeRay's head Service
    for template in _pod_templates(cluster, dagster_side).values():  # steps load the code location on Ray nodes too
        for container in _containers(template):
            assert _env_from(container) == ({"warmth-env"}, {"warmth-postgres", "warmth-api-keys",
                                                             "warmth-object-store"}), container["name"]
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            # compute logs and artefacts where every node writes and the webserver reads
            assert env["WARMTH_HOME"] == mounts["warmth-data"] and env["DAGSTER_HOME"].startswith(env["WARMTH_HOME"])

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    given = []
    monkeypatch.setattr(dagster_ray.ray_executor, "configured", lambda config, *a, **k: given.append(config))
    build_executor()
    assert given[0]["ray"]["address"] == env["WARMTH_RAY_ADDRESS"]

    # the dashboard's token: KubeRay's secret for the Ray pods, the same one for the Dagster containers' job client
    secret = cluster["spec"]["authOptions"]["secretName"]
    deployment = _one("Deployment", dagster_side)
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        token = {e["name"]: e.get("valueFrom", e.get("value")) for e in container["env"]}
        assert token["RAY_AUTH_MODE"] == "token"
        assert token["RAY_AUTH_TOKEN"] == {"secretKeyRef": {"name": secret, "key": "auth_token"}}


def _readme_env_block(secret: str) -> dict[str, str]:
    """NAME=value lines of deploy/README.md's `# <secret>.env` block."""
    text = (REPO / "deploy" / "README.md").read_text()
    (block,) = re.findall(rf"```\n\s*# {secret}\.env:[^\n]*\n(.*?)```", text, flags=re.DOTALL)
    return dict(line.strip().split("=", 1) for line in block.splitlines() if line.strip())


def test_postgres_comes_from_the_secret_under_the_names_the_instance_reads(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    from warmth_assets.instance import write_instance_yaml
    from warmth_assets.lib.config import load_settings

    block = yaml.safe_load((REPO / "deploy" / "postgres" / "dagster.yaml").read_text())["storage"]["postgres"]
    read = {v["env"] for v in block["postgres_db"].values() if isinstance(v, dict) and "env" in v}
    secret = _readme_env_block("warmth-postgres")
    assert set(secret) == read == {"WARMTH_PG_HOST", "WARMTH_PG_PORT", "WARMTH_PG_USER", "WARMTH_PG_PASSWORD",
                                   "WARMTH_PG_DB"}
    for name, value in secret.items():  # what the init container does with the Secret in its environment
        monkeypatch.setenv(name, "5432" if name == "WARMTH_PG_PORT" else "x")
    written = write_instance_yaml(load_settings(REPO / "dagster_project.toml"), tmp_path)
    config, _ = dagster_instance_config(str(written.parent))
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "WARMTH_PG_PASSWORD"}
    # the keys the code reads through EnvVar, VLLM_API_KEY included
    assert set(_readme_env_block("warmth-api-keys")) == {"OPENAI_API_KEY", "HF_TOKEN", "VLLM_API_KEY"}
    assert set(_readme_env_block("warmth-ray-auth")) == {"auth_token"}


def test_the_lake_settings_are_valid_with_the_bucket_left_to_fill_in():
    """`[warehouse]` with the DuckLake backend and an s3:// data path, valid as the study file's section."""
    from warmth_assets.lib.config import StudySettings

    section = tomllib.loads((KUBERAY / "warehouse.toml").read_text())["warehouse"]
    assert section["backend"] == "ducklake" and section["lake_data_path"].startswith("s3://")
    assert FILL_IN.search(section["lake_data_path"])
    StudySettings.model_fields["warehouse"].annotation.model_validate(section)


def test_only_the_values_a_user_must_fill_in_are_left_open_and_each_is_in_the_readme():
    found = {m for path in KUBERAY.iterdir() for m in FILL_IN.findall(path.read_text())}
    assert found == {"<FILL-IN registry>", "<FILL-IN tag>", "<FILL-IN a ReadWriteMany storage class>",
                     "<FILL-IN bucket>"}
    readme = (REPO / "deploy" / "README.md").read_text()
    assert not [value for value in found if value not in readme]
