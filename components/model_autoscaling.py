"""A model's KEDA ScaledObject: the seed's triggers (queue length and DCGM GPU utilisation) and
scaling behaviour (fast up, slow down, fallback)."""

from __future__ import annotations

from typing import Any

from components import names
from components.config import ModelConfig, ModelServingConfig


def queue_query(m: ModelConfig) -> str:
    ns = names.model_namespace(m)
    if m.engine == "vllm":
        return f'sum(vllm:num_requests_waiting{{namespace="{ns}",model_name="{m.name}"}})'
    return f'sum(tgi_queue_size{{namespace="{ns}",service="{m.name}"}})'


def gpu_query(m: ModelConfig) -> str:
    # DCGM exporter labels GPU metrics with the pod using the GPU (its Kubernetes mapping).
    return f'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{names.model_namespace(m)}",pod=~"{m.name}-.*"}})'


def scaled_object_spec(m: ModelConfig, s: ModelServingConfig) -> dict[str, Any]:
    """The seed's ScaledObject: fast up, slow down, fallback, queue and GPU-utilisation triggers.
    Trigger metadata values are strings (the CRD says map[string]string)."""
    fallback = min(m.max_replicas, max(m.min_replicas, 1) + 1)
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": m.name},
        "pollingInterval": s.polling_interval,
        "cooldownPeriod": s.cooldown_period,
        "minReplicaCount": m.min_replicas,
        "maxReplicaCount": m.max_replicas,
        "fallback": {"failureThreshold": 3, "replicas": fallback},
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                                     {"type": "Pods", "value": 4, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 300,
                          "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}]},
        }}},
        "triggers": [
            {"type": "prometheus", "name": "queue", "metadata": {
                "serverAddress": names.PROMETHEUS_URL, "query": queue_query(m),
                "threshold": str(m.queue_target), "activationThreshold": "0", "ignoreNullValues": "true"}},
            {"type": "prometheus", "name": "gpu-utilization", "metadata": {
                "serverAddress": names.PROMETHEUS_URL, "query": gpu_query(m),
                "threshold": str(s.gpu_util_threshold), "activationThreshold": str(s.gpu_util_activation),
                "ignoreNullValues": "true"}},
        ],
    }
