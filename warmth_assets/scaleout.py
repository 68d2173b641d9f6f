"""Tags that place GPU steps when the same definitions run under dagster-k8s (deploy/k8s/) or on Ray.

Inert on one machine. Under the K8sRunLauncher or k8s_job_executor, `dagster-k8s/config` gives the
step's pod the GPU limits and node selector of [compute]; every other step gets a plain pod. Under
dagster-ray's executor, `dagster-ray/config` asks Ray for the step's GPUs and CPUs (declared per op:
values set on the executor would override every op's).
"""

from warmth_assets.lib.config import ComputeSettings

K8S_CONFIG_TAG = "dagster-k8s/config"
RAY_CONFIG_TAG = "dagster-ray/config"
# A custom resource only worker nodes advertise (`warmth cluster up`, deploy/kuberay), asked for by every step through
# the executor: Ray runs a job that asks for nothing on the head, so without it untagged steps would land there.
# Custom resources of the executor and of an op add up; CPUs and GPUs stay per op (the executor sets none).
RAY_WORKER_RESOURCE = "warmth_worker"
RAY_WORKER_CAPACITY = 1000  # steps a node may hold at once by this count: its CPUs and GPUs are the real limit


def gpu_op_tags(compute: ComputeSettings) -> dict:
    pod_spec = {"node_selector": dict(compute.gpu_node_selector)} if compute.gpu_node_selector else {}
    if compute.gpu_resources:
        # GPU nodes are usually tainted so that only GPU work lands on them.
        pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        K8S_CONFIG_TAG: {
            "container_config": {"resources": {"limits": dict(compute.gpu_resources),
                                               "requests": dict(compute.gpu_resources)}},
            "pod_spec_config": pod_spec,
        },
        RAY_CONFIG_TAG: {"num_gpus": compute.ray_gpus_per_step, "num_cpus": compute.ray_cpus_per_step},
    }
