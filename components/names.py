"""Names, ports and labels that several layers must agree on. One place, so they cannot drift."""

# Platform namespaces (the seed's namespace strategy).
NS_GATEWAY = "ai-gateway"
NS_AGENTS = "ai-agents"
NS_INFERENCE = "ai-inference"
NS_DATA = "ai-data"
NS_OBSERVABILITY = "observability"
PLATFORM_NAMESPACES = (NS_GATEWAY, NS_AGENTS, NS_INFERENCE, NS_DATA, NS_OBSERVABILITY)

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
GPU_MODEL_LABEL = "agentic.platform/gpu-model"     # set by our NodePools from platform/instances.yaml

# Tenancy
TENANT_LABEL = "agentic.platform/tenant"           # namespace label and node label of dedicated pools
TENANT_TAINT_KEY = "agentic.platform/tenant"       # taint of a tenant's dedicated NodePool
GATEWAY_ACCESS_LABEL = "agentic.platform/gateway-access"  # namespaces whose routes the gateway admits
MODEL_LABEL = "agentic.platform/model"             # pods of a model server

# Gateway
GATEWAY_NAME = "ai-inference-gateway"
GATEWAY_PORT = 80                                  # in-cluster HTTP listener agents use
