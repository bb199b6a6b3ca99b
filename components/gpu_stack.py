"""GPU stack: how GPUs become schedulable (`nvidia.com/gpu`) and observable.

Mode `devicePlugin` (default): the standalone NVIDIA device plugin. Mode `gpuOperator`: the NVIDIA
GPU operator with driver and container toolkit off (the EKS AL2023/Bottlerocket NVIDIA AMIs ship
both) and its own DCGM exporter off. Either way the DCGM exporter chart runs with its
ServiceMonitor (`honorLabels`, so the namespace/pod labels of the GPU's pod survive the scrape).

Everything runs in kube-system and only on GPU nodes: Karpenter labels every node it launches with
`karpenter.k8s.aws/instance-gpu-count`, so "Gt 0" selects exactly the GPU nodes, with no NFD needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import names
from components.config import GpuStackConfig
from components.k8s import helm_release
from components.karpenter import AMI_FAMILY_LABEL

NAMESPACE = names.NS_SYSTEM
GPU_COUNT_LABEL = "karpenter.k8s.aws/instance-gpu-count"
DCGM_PORT = 9400

# GPU nodes carry the GPU taint; node-isolated tenants' nodes also the tenant taint (any tenant).
GPU_TOLERATIONS = [
    dict(names.GPU_TOLERATION),
    {"key": names.TENANT_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
    # The seed's spot pool is also tainted by capacity type.
    {"key": "karpenter.sh/capacity-type", "operator": "Exists", "effect": "NoSchedule"},
]


def gpu_node_affinity(*, skip_bottlerocket: bool = False) -> dict[str, Any]:
    exprs: list[dict[str, Any]] = [{"key": GPU_COUNT_LABEL, "operator": "Gt", "values": ["0"]}]
    if skip_bottlerocket:
        exprs.append({"key": AMI_FAMILY_LABEL, "operator": "NotIn", "values": ["bottlerocket"]})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}


def device_plugin_values() -> dict[str, Any]:
    return {
        "affinity": gpu_node_affinity(skip_bottlerocket=True),
        "tolerations": GPU_TOLERATIONS,
        "priorityClassName": "system-node-critical",  # a GPU node without it has no allocatable GPUs
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "gfd": {"enabled": False},
        "nfd": {"enabled": False},
    }


def gpu_operator_values() -> dict[str, Any]:
    return {
        "driver": {"enabled": False},
        "toolkit": {"enabled": False},
        "dcgmExporter": {"enabled": False},  # the standalone chart below, one exporter per node
        "operator": {"tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}]},
        "daemonsets": {"tolerations": GPU_TOLERATIONS, "priorityClassName": "system-node-critical"},
        "node-feature-discovery": {"worker": {"tolerations": GPU_TOLERATIONS}},
    }


def dcgm_values(cfg: GpuStackConfig) -> dict[str, Any]:
    return {
        "affinity": gpu_node_affinity(),
        "tolerations": GPU_TOLERATIONS,
        "priorityClassName": "system-node-critical",
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "serviceMonitor": {"enabled": True, "interval": cfg.dcgm_scrape_interval, "honorLabels": True},
    }


@dataclass
class GpuStackArgs:
    config: GpuStackConfig
    karpenter_release: pulumi.Resource       # GPU nodes exist only once Karpenter runs
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # e.g. the ServiceMonitor CRDs' release


class GpuStack(pulumi.ComponentResource):
    """Device plugin or GPU operator, plus the DCGM exporter."""

    def __init__(self, name: str, args: GpuStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:compute:GpuStack", name, None, opts)
        deps = pulumi.ResourceOptions(parent=self, depends_on=[args.karpenter_release, *args.depends_on])
        self.mode = args.config.mode
        if args.config.mode == "devicePlugin":
            self.plugin = helm_release(f"{name}-device-plugin", "nvidia-device-plugin", namespace=NAMESPACE,
                                       values=device_plugin_values(), opts=deps)
        else:
            self.plugin = helm_release(f"{name}-gpu-operator", "gpu-operator", namespace=NAMESPACE,
                                       values=gpu_operator_values(), opts=deps)
        self.dcgm_exporter = helm_release(f"{name}-dcgm-exporter", "dcgm-exporter", namespace=NAMESPACE,
                                          values=dcgm_values(args.config), opts=deps)
        self.register_outputs({"mode": self.mode})
