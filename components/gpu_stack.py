"""GPU stack: how GPUs become schedulable (`nvidia.com/gpu`) and observable.

Mode `devicePlugin` (default): the standalone NVIDIA device plugin. Mode `gpuOperator`: the NVIDIA
GPU operator with driver and container toolkit off (the EKS AL2023/Bottlerocket NVIDIA AMIs ship
both) and its own DCGM exporter off. Either way the DCGM exporter chart runs with its
ServiceMonitor (`honorLabels`, so the namespace/pod labels of the GPU's pod survive the scrape).

Everything runs in kube-system and only on GPU nodes: Karpenter labels every node it launches with
`karpenter.k8s.aws/instance-gpu-count`, so "Gt 0" selects exactly the GPU nodes, with no NFD needed.

Also here, because it needs the ServiceMonitor CRD as the DCGM exporter does: the ServiceMonitor of
the Karpenter controller (its metrics price the GPU nodes), which the Karpenter chart cannot create
(see `components/karpenter.py`).

Every Helm value key below was checked against the chart's own values.yaml and templates at the
pinned version:
- NVIDIA/k8s-device-plugin tag v0.20.0, deployments/helm/nvidia-device-plugin/values.yaml
  (+ templates/daemonset-device-plugin.yml): affinity, tolerations, priorityClassName, resources,
  gfd.enabled, nfd.enabled (the nfd dependency's condition "nfd.enabled,gfd.enabled").
- NVIDIA/gpu-operator tag v26.7.0, deployments/gpu-operator/values.yaml: driver.enabled,
  toolkit.enabled, dcgmExporter.enabled, operator.tolerations, daemonsets.tolerations,
  daemonsets.priorityClassName, node-feature-discovery.worker.tolerations.
- NVIDIA/dcgm-exporter tag 4.5.3-4.8.2 (chart 4.8.2), deployment/values.yaml
  (+ templates/service-monitor.yaml): affinity, tolerations, priorityClassName, resources,
  serviceMonitor.{enabled, interval, scrapeTimeout, honorLabels} (honorLabels goes straight into
  the endpoint).
- aws/karpenter-provider-aws tag v1.14.1, charts/karpenter/templates/{service,_helpers}.tpl: the
  Service port `http-metrics` and the selector labels the Karpenter ServiceMonitor matches."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import names
from components.config import GpuStackConfig
from components.k8s import custom_object, helm_release, labels
from components.node_pools import AMI_FAMILY_LABEL

NAMESPACE = names.NS_SYSTEM
GPU_COUNT_LABEL = "karpenter.k8s.aws/instance-gpu-count"
DCGM_PORT = 9400
DCGM_SCRAPE_TIMEOUT_S = 10  # the chart's default; Prometheus refuses a timeout above the interval
# The Karpenter release (name "karpenter", chart "karpenter"): the chart's selector labels and port.
KARPENTER_SELECTOR = {"app.kubernetes.io/name": "karpenter", "app.kubernetes.io/instance": "karpenter"}
KARPENTER_METRICS_PORT = "http-metrics"

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
        "operator": {"tolerations": [dict(names.SYSTEM_TOLERATION)]},
        "daemonsets": {"tolerations": GPU_TOLERATIONS, "priorityClassName": "system-node-critical"},
        "node-feature-discovery": {"worker": {"tolerations": GPU_TOLERATIONS}},
    }


def duration_seconds(d: str) -> int:
    """A config Duration ("15s", "1m30s") in seconds."""
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", d))


def dcgm_values(cfg: GpuStackConfig) -> dict[str, Any]:
    timeout = min(DCGM_SCRAPE_TIMEOUT_S, duration_seconds(cfg.dcgm_scrape_interval))
    return {
        "affinity": gpu_node_affinity(),
        "tolerations": GPU_TOLERATIONS,
        "priorityClassName": "system-node-critical",
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        # honorLabels: the exporter's own namespace/pod/container labels (the GPU's pod) win over
        # the scrape target's (the exporter pod in kube-system).
        "serviceMonitor": {"enabled": True, "interval": cfg.dcgm_scrape_interval, "scrapeTimeout": f"{timeout}s",
                           "honorLabels": True},
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
        self.karpenter_monitor = custom_object(
            f"{name}-karpenter-metrics", "monitoring.coreos.com/v1", "ServiceMonitor", "karpenter",
            namespace=NAMESPACE, labels=labels("karpenter", "monitoring"),
            spec={"namespaceSelector": {"matchNames": [NAMESPACE]},
                  "selector": {"matchLabels": dict(KARPENTER_SELECTOR)},
                  "endpoints": [{"port": KARPENTER_METRICS_PORT, "path": "/metrics", "interval": "30s"}]},
            opts=deps)
        self.register_outputs({"mode": self.mode})
