"""Names, ports and labels that several layers must agree on. One place, so they cannot drift."""

import ipaddress
from collections.abc import Callable
from typing import Any

# Platform namespaces (the seed's namespace strategy).
NS_GATEWAY = "ai-gateway"
NS_AGENTS = "ai-agents"
NS_INFERENCE = "ai-inference"
NS_DATA = "ai-data"
NS_OBSERVABILITY = "observability"
# Host-level monitoring (node-exporter needs hostNetwork/hostPID/hostPath): its own namespace so
# `observability` itself can enforce a strict Pod Security level.
NS_HOST_MONITORING = "observability-node"
# OpenCost (cost allocation): its own namespace, so its NetworkPolicies admit exactly its flows
# (Prometheus, the API server, DNS, AWS pricing) and nothing observability's other pods need.
NS_COST = "opencost"
PLATFORM_NAMESPACES = (NS_GATEWAY, NS_AGENTS, NS_INFERENCE, NS_DATA, NS_OBSERVABILITY, NS_HOST_MONITORING, NS_COST)
# Cluster controllers (Karpenter, KEDA, AWS Load Balancer Controller, NVIDIA device plugin, DCGM
# exporter) run in kube-system, beside the EKS add-ons; kgateway's controller runs in ai-gateway,
# kagent's in ai-agents.
NS_SYSTEM = "kube-system"
# Namespaces Kubernetes itself creates and owns; with the platform's, no tenant may take them.
KUBERNETES_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")
RESERVED_NAMESPACES = (*PLATFORM_NAMESPACES, *KUBERNETES_NAMESPACES)

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
# The AWS tag every EC2 instance of a node-isolated tenant's pool carries (EC2NodeClass spec.tags):
# the key to activate as a user-defined cost allocation tag in the payer account's Billing console
# (docs/cost.md), so Cost Explorer and the CUR split those instances by tenant.
COST_ALLOCATION_TAG = TENANT_LABEL
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

# System nodes: the managed node group of add-ons and controllers, tainted CriticalAddonsOnly.
NODE_ROLE_LABEL = "agentic.platform/node-role"     # system (the node group), gpu and platform (Karpenter)
SYSTEM_NODE_LABEL = {NODE_ROLE_LABEL: "system"}
SYSTEM_TAINT_KEY = "CriticalAddonsOnly"
SYSTEM_TOLERATION = {"key": SYSTEM_TAINT_KEY, "operator": "Exists"}


def system_placement() -> dict[str, Any]:
    """`nodeSelector` and `tolerations` of a controller that runs on the system nodes (fresh copies)."""
    return {"nodeSelector": dict(SYSTEM_NODE_LABEL), "tolerations": [dict(SYSTEM_TOLERATION)]}


# pulumi-kubernetes: an object with this annotation "true" is not awaited (its ready condition is an
# immediate no-op: provider/pkg/metadata/overrides.go); the plan's rehearsal reads the same key.
PULUMI_SKIP_AWAIT = "pulumi.com/skipAwait"

# Helm leaves an object annotated so in place on uninstall (helm pkg/action/uninstall.go,
# filterManifestsToKeep); the plan's rehearsal reads the same key.
HELM_RESOURCE_POLICY, HELM_KEEP = "helm.sh/resource-policy", "keep"

# agentgateway v1.4.1's proxy serves Prometheus metrics on its container port `metrics`
# (controller/pkg/helm/agentgateway/templates/_helpers.tpl, the prometheus.io/port annotation).
AGENTGATEWAY_METRICS_PORT = 15020


# Prometheus: kube-prometheus-stack, release `kube-prometheus-stack` in observability, serves it here
# (KEDA's prometheus triggers and Grafana's datasource use this URL).
PROMETHEUS_RELEASE = "kube-prometheus-stack"
PROMETHEUS_URL = f"http://{PROMETHEUS_RELEASE}-prometheus.{NS_OBSERVABILITY}.svc:9090"
PROMETHEUS_PORT = 9090
# OpenCost (chart opencost 2.5.17, release `opencost` in NS_COST): its API and /metrics port
# (values.yaml opencost.exporter.apiPort 9003), which Prometheus scrapes.
OPENCOST_RELEASE = "opencost"
PORT_OPENCOST = 9003

# Gateway
GATEWAY_NAME = "ai-inference-gateway"
GATEWAY_PORT = 80                                  # in-cluster HTTP listener agents use
# The agentgateway data plane's Gateway (gateway.inferenceRouting: agentgateway); its proxy Service has
# the same name (agentgateway's deployer names the proxy's objects after the Gateway) and the port 80.
AGENTGATEWAY_NAME = "ai-inference-agentgateway"


def model_namespace(model) -> str:
    """Where a model's server runs: its tenant's namespace, else ai-inference."""
    return model.tenant or NS_INFERENCE


def weights_prefix(model_id: str) -> str:
    """Where an `s3`-cached model's weights live in the models bucket: its Hugging Face id."""
    return model_id.strip("/")


def compile_cache_root(model_name: str) -> str:
    """Where every compile cache of a model lives in the models bucket (all vLLM tags, GPUs and
    configurations). It must not overlap a weights prefix (the config's cross-check): the weights
    Job empties its prefix on a revision change and the servers load every object under it."""
    return f"{model_name}/compile-cache/"


def model_port(engine: str) -> int:
    """The engine's HTTP port (the seed's): vLLM 8000, TGI 8080."""
    return PORT_VLLM if engine == "vllm" else PORT_TGI


def tenant_pool_name(tenant: str) -> str:
    return f"{TENANT_POOL_PREFIX}{tenant}"


WARM_POOL_SUFFIX = "-warm"                          # a GPU pool's static NodePool of warm nodes
GPU_POOL_LABEL = "agentic.platform/gpu-pool"       # node label of a pool with warm nodes and of its warm pool


def warm_pool_name(pool: str) -> str:
    """The static NodePool that keeps GPU pool `pool`'s warm nodes (gpuPools[].warmNodes)."""
    return f"{pool}{WARM_POOL_SUFFIX}"


# ------------------------------------------------------------------ AWS names derived from cluster.name
# Every AWS name the program builds from `cluster.name`, with the limit of the service that holds it.
# `components.config` rejects a cluster name for which any of them would be too long (the exact
# limit in the message); the layers build the names with the same functions. Names Pulumi or a
# controller generates (buckets, security groups, launch templates, IAM roles of Pod Identity,
# Karpenter's instance profiles) do not derive from the cluster name.

# Suffix Terraform-based providers append to a `*_prefix` name: helper/id.PrefixedUniqueId, a
# timestamp plus a counter, `UniqueIDSuffixLength = 26` (hashicorp/terraform-plugin-sdk v2
# helper/id/id.go), used by pulumi-aws for aws.eks.NodeGroup's node_group_name_prefix.
PREFIX_UNIQUE_SUFFIX = 26
# Karpenter's interruption rules, one EventBridge rule each (components/karpenter.py).
KARPENTER_RULE_KEYS = ("health", "spot", "rebalance", "state-change", "cr-interrupt")


def system_node_group_prefix(cluster: str) -> str:
    return f"{cluster}-system-"


def karpenter_queue_name(cluster: str) -> str:
    return f"{cluster}-karpenter"


def karpenter_rule_name(cluster: str, key: str) -> str:
    return f"{cluster}-karpenter-{key}"


def karpenter_node_role_name(cluster: str) -> str:
    return f"{cluster}-karpenter-node"


def redis_group_id(cluster: str) -> str:
    return f"{cluster}-redis"


def redis_subnet_group_name(cluster: str) -> str:
    return f"{cluster}-redis"


def redis_parameter_group_name(cluster: str) -> str:
    return f"{cluster}-redis-noeviction"


# Random part of the final snapshot names (RDS, ElastiCache): 4 bytes, 8 hex characters, new with
# every incarnation of the stack, so a recreated stack never meets the snapshot of its predecessor.
SNAPSHOT_SUFFIX_BYTES = 4
SNAPSHOT_SUFFIX_LEN = 2 * SNAPSHOT_SUFFIX_BYTES
RDS_SNAPSHOT_PURPOSES = ("langfuse", "kagent")   # components/aws.postgres callers' PostgresSpec.purpose


def final_snapshot_name(base: str, suffix: str) -> str:
    """`<base>-final-<suffix>`: RDS wants a letter first, letters, digits and single hyphens."""
    return f"{base}-final-{suffix}"


# (what, name for a cluster name, the service's limit in characters, where the limit is stated)
CLUSTER_DERIVED_NAMES: tuple[tuple[str, Callable[[str], str], int, str], ...] = (
    ("the system node group name (prefix + the provider's 26-character unique suffix)",
     lambda c: system_node_group_prefix(c) + "x" * PREFIX_UNIQUE_SUFFIX, 63,
     "EKS CreateNodegroup: nodegroupName is at most 63 characters"),
    ("the ElastiCache replication group id", redis_group_id, 40,
     "ElastiCache CreateReplicationGroup: ReplicationGroupId is 1-40 characters"),
    ("the longest Karpenter EventBridge rule name",
     lambda c: max((karpenter_rule_name(c, k) for k in KARPENTER_RULE_KEYS), key=len), 64,
     "EventBridge PutRule: Name is at most 64 characters"),
    ("the Karpenter node IAM role name", karpenter_node_role_name, 64,
     "IAM CreateRole: RoleName is at most 64 characters"),
    ("the Karpenter interruption queue name", karpenter_queue_name, 80,
     "SQS CreateQueue: QueueName is at most 80 characters"),
    ("the ElastiCache subnet group name", redis_subnet_group_name, 255,
     "ElastiCache CreateCacheSubnetGroup: CacheSubnetGroupName is at most 255 characters"),
    ("the ElastiCache parameter group name", redis_parameter_group_name, 255,
     "ElastiCache CreateCacheParameterGroup: CacheParameterGroupName is at most 255 characters"),
    ("the ElastiCache final snapshot name",
     lambda c: final_snapshot_name(redis_group_id(c), "x" * SNAPSHOT_SUFFIX_LEN), 255,
     "ElastiCache DeleteReplicationGroup: FinalSnapshotIdentifier (a snapshot name, at most 255 characters)"),
    ("the longest RDS final snapshot identifier",
     lambda c: max((final_snapshot_name(f"{c}-{p}", "x" * SNAPSHOT_SUFFIX_LEN) for p in RDS_SNAPSHOT_PURPOSES),
                   key=len), 255,
     "RDS DeleteDBInstance: FinalDBSnapshotIdentifier is 1-255 letters, digits or hyphens"),
)


def cluster_name_problems(cluster: str) -> list[str]:
    """One message per AWS name that `cluster` would make too long."""
    out = []
    for what, build, limit, source in CLUSTER_DERIVED_NAMES:
        name = build(cluster)
        if len(name) > limit:
            out.append(f"'{cluster}' ({len(cluster)} characters) makes {what} {len(name)} characters long, "
                       f"over the limit of {limit} ({source}); use at most {max_cluster_name(limit, build)} characters")
    return out


def max_cluster_name(limit: int, build: Callable[[str], str]) -> int:
    """The longest cluster name whose derived name fits `limit` (each is the name plus a fixed part)."""
    return limit - len(build(""))


def max_cluster_name_length() -> int:
    """The longest cluster name every derived AWS name fits (29: the system node group)."""
    return min(max_cluster_name(limit, build) for _, build, limit, _ in CLUSTER_DERIVED_NAMES)


def service_cidr(vpc_cidr: str) -> str:
    """The cluster's Service CIDR when EKS picks it (the platform sets none): 172.20.0.0/16 for a VPC
    in 10.0.0.0/8, else 10.100.0.0/16 (EKS API CreateCluster, kubernetesNetworkConfig.serviceIpv4Cidr)."""
    in_ten = ipaddress.ip_network(vpc_cidr).subnet_of(ipaddress.ip_network("10.0.0.0/8"))
    return "172.20.0.0/16" if in_ten else "10.100.0.0/16"


def vpc_resolver_ip(vpc_cidr: str) -> str:
    """The VPC's Route 53 Resolver ("Amazon DNS server"): the base of the VPC's primary CIDR plus two
    (VPC User Guide, docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html). The default
    DHCP option set (AmazonProvidedDNS) puts it in every node's resolv.conf, so it is what a pod with
    `dnsPolicy: Default` asks (Kubernetes "DNS for Services and Pods", Pod's DNS Policy: Default
    inherits the node's resolution). 169.254.169.253 reaches the same resolver; nodes are not
    configured with it."""
    network = ipaddress.ip_network(vpc_cidr, strict=False)
    return str(network.network_address + 2)


def kubernetes_service_ip(vpc_cidr: str) -> str:
    """`kubernetes.default`'s ClusterIP: the first address of the Service CIDR."""
    return service_cidr(vpc_cidr).replace(".0.0/16", ".0.1")
