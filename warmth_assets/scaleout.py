"""Tags that place GPU steps when the same definitions run under dagster-k8s (deploy/k8s/).

Inert on one machine. Under the K8sRunLauncher or k8s_job_executor, `dagster-k8s/config` gives the
step's pod the GPU limits and node selector of [compute]; every other step gets a plain pod.
"""

from warmth_assets.lib.config import ComputeSettings

K8S_CONFIG_TAG = "dagster-k8s/config"


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
        }
    }
