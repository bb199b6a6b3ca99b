"""Names, ports and labels that several layers must agree on. One place, so they cannot drift."""

# Platform namespaces (the seed's namespace strategy).
NS_GATEWAY = "ai-gateway"
NS_AGENTS = "ai-agents"
NS_INFERENCE = "ai-inference"
NS_DATA = "ai-data"
NS_OBSERVABILITY = "observability"
# Host-level monitoring (node-exporter needs hostNetwork/hostPID/hostPath): its own namespace so
# `observability` itself can enforce a strict Pod Security level.
NS_HOST_MONITORING = "observability-node"
PLATFORM_NAMESPACES = (NS_GATEWAY, NS_AGENTS, NS_INFERENCE, NS_DATA, NS_OBSERVABILITY, NS_HOST_MONITORING)
# Cluster controllers (Karpenter, KEDA, AWS Load Balancer Controller, NVIDIA device plugin, DCGM
# exporter) run in kube-system, beside the EKS add-ons; kgateway's controller runs in ai-gateway,
# kagent's in ai-agents.
NS_SYSTEM = "kube-system"

# Ports (the seed's).
PORT_VLLM = 8000
PORT_TGI = 8080
PORT_MILVUS = 19530
PORT_REDIS = 6379
PORT_OTLP_GRPC = 4317
PORT_OTLP_HTTP = 4318
PORT_LANGFUSE = 3000

# GPUs
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
NODEPOOL_LABEL = "karpenter.sh/nodepool"          # set by Karpenter on every node it launches
GPU_NAME_LABEL = "karpenter.k8s.aws/instance-gpu-name"  # set by Karpenter: a10g, l4, l40s, a100, h100, h200

# Tenancy
TENANT_POOL_PREFIX = "tenant-"                     # a node-isolated tenant's NodePool: tenant-<name>
TENANT_LABEL = "agentic.platform/tenant"           # namespace label and node label of dedicated pools
TENANT_TAINT_KEY = "agentic.platform/tenant"       # taint of a tenant's dedicated NodePool
GATEWAY_ACCESS_LABEL = "agentic.platform/gateway-access"  # namespaces whose routes the gateway admits
MODEL_LABEL = "agentic.platform/model"             # pods of a model server
MODEL_CACHE_LABEL = "agentic.platform/model-cache"  # a model server's cache (pvc, s3, nodeLocal)

# StorageClasses (the cluster layer creates both; encrypted gp3 through the EBS CSI driver).
# Data stores (Milvus, Valkey, LangFuse's databases, kagent's bundled PostgreSQL): reclaim policy
# Retain with protectData, the cluster's default class. The name stays: PVC templates refer to it.
STORAGE_CLASS_DATA = "gp3-encrypted"
# What can be rebuilt (model caches, Prometheus/Alertmanager/Grafana volumes): always Delete.
STORAGE_CLASS_CACHE = "gp3-encrypted-cache"

# Gateway
GATEWAY_NAME = "ai-inference-gateway"
GATEWAY_PORT = 80                                  # in-cluster HTTP listener agents use


def model_namespace(model) -> str:
    """Where a model's server runs: its tenant's namespace, else ai-inference."""
    return model.tenant or NS_INFERENCE


def model_port(engine: str) -> int:
    """The engine's HTTP port (the seed's): vLLM 8000, TGI 8080."""
    return PORT_VLLM if engine == "vllm" else PORT_TGI


def tenant_pool_name(tenant: str) -> str:
    return f"{TENANT_POOL_PREFIX}{tenant}"
