"""AgenticPlatform: composes the layers in order. The only place that wires one layer's outputs
into another; nothing below it knows which environment it is in."""

from __future__ import annotations

from typing import Any

import pulumi

from components import names, tenancy
from components.agents import AgentRuntime, AgentRuntimeArgs
from components.aws import access_log_bucket, access_logs_into
from components.cluster import Cluster, ClusterArgs
from components.config import PlatformConfig
from components.cost import CostAllocation, CostAllocationArgs
from components.data import DataArgs, DataServices
from components.gateway import (
    InferenceGateway,
    InferenceGatewayArgs,
    agentgateway_namespaces,
    endpoint_picker_namespaces,
)
from components.gateway import in_cluster_url as gateway_in_cluster_url
from components.gpu_stack import GpuStack, GpuStackArgs
from components.k8s import NodeSource
from components.karpenter import Karpenter, KarpenterArgs
from components.langfuse import LangFuse, LangFuseArgs
from components.models import ModelServing, ModelServingArgs, model_namespaces, pvc_namespaces, s3_cache_namespaces
from components.network import Network, NetworkArgs
from components.node_pools import TenantPlacement, max_node_count
from components.observability import Observability, ObservabilityArgs, node_exporter_quota
from components.tenancy import Tenancy, TenancyArgs


def network_features(config: PlatformConfig) -> dict[str, set[str]]:
    """Which namespaces really run what the conditional flows of the tenancy layer are for (each
    from the rule of the layer that builds it)."""
    valkey = config.data.redis.mode == "inCluster"
    data = {names.NS_DATA}
    return {
        tenancy.MODEL_SERVERS: model_namespaces(config.models),
        tenancy.S3_MODEL_CACHE: s3_cache_namespaces(config.models),
        tenancy.ENDPOINT_PICKERS: endpoint_picker_namespaces(config.gateway, config.models),
        tenancy.AGENTGATEWAY: agentgateway_namespaces(config.gateway),
        tenancy.VALKEY: data if valkey else set(),
        tenancy.MILVUS_MONITOR: data if config.data.service_monitors else set(),
        tenancy.VALKEY_MONITOR: data if valkey and config.data.service_monitors else set(),
        tenancy.MANAGED_POSTGRES: ({names.NS_AGENTS} if config.agent_runtime.database.mode == "external" else set())
        | ({names.NS_OBSERVABILITY} if config.observability.langfuse.database == "rds" else set()),
        tenancy.MANAGED_REDIS: {names.NS_AGENTS, names.NS_OBSERVABILITY} if not valkey else set(),
    }


def namespaces_with_pvcs(config: PlatformConfig) -> set[str]:
    """Namespaces where PVCs live: Milvus/Valkey (ai-data), Prometheus/Alertmanager/Grafana and
    LangFuse's stores (observability), kagent's bundled PostgreSQL, models' `pvc` caches."""
    out = {names.NS_DATA, names.NS_OBSERVABILITY, *pvc_namespaces(config.models)}
    if config.agent_runtime.database.mode == "bundled":
        out.add(names.NS_AGENTS)
    return out


def tenant_placements(config: PlatformConfig) -> list[TenantPlacement]:
    """The node-isolated tenants' dedicated NodePools: a copy of the tenant's first allowed GPU
    pool (else the first GPU pool), limited to the tenant's GPU quota."""
    return [TenantPlacement(t.name, names.tenant_pool_name(t.name), (t.gpu_pools or [config.gpu_pools[0].name])[0],
                            t.quota.gpu)
            for t in config.tenants if t.isolation == "node"]


class AgenticPlatform(pulumi.ComponentResource):
    """The whole platform of one stack."""

    def __init__(self, name: str, config: PlatformConfig, secrets: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:index:AgenticPlatform", name, None, opts)
        cluster_name = config.cluster_name
        tags = {"agentic.platform/cluster": cluster_name, "agentic.platform/environment": config.environment,
                "managed-by": "pulumi"}
        child = pulumi.ResourceOptions(parent=self)
        # S3 server access logs of every bucket the layers create go here (secure_bucket reads it
        # from `access_logs_into`); it needs nothing else and builds first.
        self.access_logs = access_log_bucket("access-logs", protect=config.protect_data, tags=tags, opts=child)
        with access_logs_into(self.access_logs):
            self._layers(config, secrets, cluster_name, tags, child)
        self.register_outputs(self.outputs)

    def _layers(self, config: PlatformConfig, secrets: dict[str, Any], cluster_name: str, tags: dict[str, str],
                child: pulumi.ResourceOptions) -> None:
        """Every layer, in the order each one's inputs exist."""
        k8s = self._network_and_cluster(config, cluster_name, tags, child)
        self._tenancy_and_nodes(config, cluster_name, tags, k8s)
        self._observability_and_data(config, cluster_name, tags, k8s)
        self._models_and_gateway(config, secrets, tags, k8s)
        self._agents(config, secrets, cluster_name, tags, k8s)
        self.outputs: dict[str, Any] = self._stack_outputs()

    def _network_and_cluster(self, config: PlatformConfig, cluster_name: str, tags: dict[str, str],
                             child: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
        """The VPC and the EKS cluster; returns the options of every Kubernetes object below."""
        self.network = Network("network", NetworkArgs(config.network, cluster_name, tags), child)
        self.cluster = Cluster("cluster", ClusterArgs(
            config=config.cluster, cluster_name=cluster_name, vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids,
            control_plane_subnet_ids=self.network.control_plane_subnet_ids, protect_data=config.protect_data,
            tags=tags), child)
        # Every Kubernetes object below uses the cluster's provider, inherited from its layer.
        return pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.cluster.provider})

    def _tenancy_and_nodes(self, config: PlatformConfig, cluster_name: str, tags: dict[str, str],
                           k8s: pulumi.ResourceOptions) -> None:
        """Namespaces, quotas and NetworkPolicies; Karpenter and its NodePools; where pods run."""
        # Namespaces, quotas, NetworkPolicies and RBAC first: every other layer deploys into them.
        # observability-node runs one node-exporter per node: its quota follows the most nodes the
        # system node group and the Karpenter pools can have.
        tenant_pools = tenant_placements(config)
        max_nodes = max_node_count(config.cluster.system_nodes.max_size, config.gpu_pools, config.cpu_pool,
                                   tenant_pools)
        self.tenancy = Tenancy("tenancy", TenancyArgs(
            tenants=config.tenants, platform_quotas=config.platform_quotas, cluster_name=self.cluster.cluster_name,
            vpc_cidr=str(config.network.cidr), api_cidrs=self.network.control_plane_cidrs,
            kubernetes_version=config.cluster.version, tags=tags,
            features=network_features(config),
            quota_overrides={names.NS_HOST_MONITORING: node_exporter_quota(
                max_nodes, config.platform_quotas.for_namespace(names.NS_HOST_MONITORING))},
            pvc_namespaces=namespaces_with_pvcs(config), storage_driver=[self.cluster.ebs_csi]), k8s)

        self.karpenter = Karpenter("karpenter", KarpenterArgs(
            cluster_name=cluster_name, cluster=self.cluster.cluster_name, endpoint=self.cluster.endpoint,
            system_nodes=self.cluster.system_nodes, gpu_pools=config.gpu_pools, cpu_pool=config.cpu_pool,
            tenant_pools=tenant_pools, tags=tags,
            # What its pods need at start: the Pod Identity agent (its credentials; IMDS is closed by
            # hop limit 1). Not CoreDNS: it resolves through the node (dnsPolicy Default, in
            # components/karpenter.py). It mounts no volumes: no EBS CSI.
            depends_on=[self.cluster.pod_identity_agent]), k8s)
        # Where pods run: controllers on the system node group; the platform's services (gateway,
        # agents, data, observability) on Karpenter's CPU NodePool, which needs the controller and
        # the NodePool itself; model servers and the GPU stack on the GPU NodePools.
        self.system_nodes = NodeSource("system", (self.cluster.system_nodes,))
        self.platform_nodes = self.karpenter.platform_nodes

    def _observability_and_data(self, config: PlatformConfig, cluster_name: str, tags: dict[str, str],
                                k8s: pulumi.ResourceOptions) -> None:
        """Prometheus and Grafana, OpenCost, the GPU stack, the data services and LangFuse."""
        # Observability runs in its two namespaces (kube-system's exporters' Services aside, which
        # always exists); not after every tenant's namespace: nothing waits on what it does not use,
        # and the edges would grow with tenants x observability objects.
        obs_deps: list[pulumi.Resource] = [self.tenancy.namespaces[names.NS_OBSERVABILITY],
                                           self.tenancy.namespaces[names.NS_HOST_MONITORING]]
        self.observability = Observability("observability", ObservabilityArgs(
            config=config.observability, storage_class=self.cluster.storage_class_name,
            cache_storage_class=self.cluster.cache_storage_class_name, nodes=self.platform_nodes,
            depends_on=[*obs_deps, self.cluster.storage_class, self.cluster.cache_storage_class]), k8s)
        # OpenCost in its namespace, on Prometheus; its ServiceMonitor and the tenant cost alerts
        # need the monitoring CRDs.
        self.cost = CostAllocation("cost", CostAllocationArgs(
            config=config.cost, cluster_name=self.cluster.cluster_name, cluster_id=cluster_name,
            tenants=self.tenancy.tenant_namespaces, tags=tags, depends_on=[self.tenancy.namespaces[names.NS_COST],
                                                                self.tenancy.namespaces[names.NS_OBSERVABILITY]],
            monitoring_crds=self.observability.monitoring_crds, nodes=self.platform_nodes), k8s)
        # The DCGM exporter's ServiceMonitor needs the monitoring CRDs (not the whole stack).
        self.gpu_stack = GpuStack("gpu-stack", GpuStackArgs(config.gpu_stack, self.karpenter.release,
                                                            depends_on=[self.observability.monitoring_crds,
                                                                        *self.karpenter.gpu_nodes]), k8s)
        # Data: buckets and ElastiCache depend on the network only (its SG rule on the cluster SG) and
        # build while EKS does; the charts wait for nodes, the StorageClass and the ServiceMonitor CRDs.
        self.data = DataServices("data", DataArgs(
            config=config.data, cluster_name=self.cluster.cluster_name, name_prefix=cluster_name,
            vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids,
            cluster_security_group_id=self.cluster.cluster_security_group_id,
            storage_class=self.cluster.storage_class_name, protect_data=config.protect_data, tags=tags,
            namespaces=self.tenancy.namespaces, nodes=self.platform_nodes,
            depends_on=[self.cluster.storage_class, self.observability.monitoring_crds]), k8s)
        # LangFuse after the data layer: its pods read the Redis connection Secret at start.
        self.langfuse = LangFuse("langfuse", LangFuseArgs(
            config=config.observability.langfuse, cluster_name=self.cluster.cluster_name, name_prefix=cluster_name,
            protect_data=config.protect_data, storage_class=self.cluster.storage_class_name,
            vpc_id=self.network.vpc_id, private_subnet_ids=self.network.private_subnet_ids,
            cluster_security_group_id=self.cluster.cluster_security_group_id, tags=tags,
            credentials=self.observability.langfuse_credentials,
            db_password=self.observability.langfuse_db_password, nodes=self.platform_nodes,
            depends_on=[*obs_deps, self.cluster.storage_class, *self.data.connection_secrets]), k8s)

    def _models_and_gateway(self, config: PlatformConfig, secrets: dict[str, Any], tags: dict[str, str],
                            k8s: pulumi.ResourceOptions) -> None:
        """Model serving and, when configured, the inference gateway in front of it."""
        # Models: pods need their namespace, the GPU NodePools and device plugin (destroy order: the
        # servers go before the NodePools), and the ServiceMonitor/PodMonitor CRDs.
        self.model_serving = ModelServing("models", ModelServingArgs(
            models=config.models, pools=self.karpenter.gpu_pools, serving=config.model_serving,
            cluster_name=self.cluster.cluster_name, protect_data=config.protect_data,
            hf_token=secrets.get("hfToken"), tags=tags, namespaces=self.tenancy.namespaces,
            node_isolated_tenants={t.name for t in config.tenants if t.isolation == "node"},
            scheduling_for=self.tenancy.scheduling_for,
            compute=[self.karpenter.release, *self.karpenter.node_pools.values(), self.gpu_stack.plugin,
                     self.observability.monitoring_crds, self.cluster.cache_storage_class],
            system_nodes=self.system_nodes, platform_nodes=self.platform_nodes,
            cache_storage_class=self.cluster.cache_storage_class,
            served_aliases=config.gateway.served_aliases() if config.gateway else {}), k8s)
        self.models = self.model_serving.models
        # Gateway: routes to the model Services (after the model layer), JWT and rate limits on each.
        self.gateway = None
        if config.gateway is not None:
            self.gateway = InferenceGateway("gateway", InferenceGatewayArgs(
                config=config.gateway, endpoints=self.model_serving.endpoints,
                tenants=self.tenancy.tenant_namespaces,
                cluster_name=self.cluster.cluster_name, vpc_id=self.network.vpc_id, tags=tags,
                namespaces=self.tenancy.namespaces, model_dependencies=dict(self.models),
                platform_nodes=self.platform_nodes, system_nodes=self.system_nodes,
                monitoring=self.observability.monitoring_crds), k8s)

    def _agents(self, config: PlatformConfig, secrets: dict[str, Any], cluster_name: str, tags: dict[str, str],
                k8s: pulumi.ResourceOptions) -> None:
        """The agent runtime (kagent) and its agents."""
        # Agents last: kagent talks to the gateway, reads the data layer's connection Secrets, and its
        # ScaledObjects need the model layer's KEDA.
        self.agent_runtime = AgentRuntime("agents", AgentRuntimeArgs(
            runtime=config.agent_runtime, agents=config.agents, endpoints=self.model_serving.endpoints,
            gateway_url=self.gateway.in_cluster_url if self.gateway is not None else gateway_in_cluster_url(),
            gateway_token=secrets.get("agentGatewayToken"), protect_data=config.protect_data, tags=tags,
            name_prefix=cluster_name, vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids,
            cluster_security_group_id=self.cluster.cluster_security_group_id, redis_tls=self.data.redis_tls,
            prometheus_url=self.observability.prometheus_url,
            otlp_grpc_endpoint=self.observability.otlp_grpc_endpoint, namespaces=self.tenancy.namespaces,
            keda_release=self.model_serving.keda, connection_secrets=self.data.connection_secrets,
            nodes=self.platform_nodes), k8s)

    def _stack_outputs(self) -> dict[str, Any]:
        """The stack's outputs, from the layers' typed outputs."""
        out: dict[str, Any] = {
            "clusterName": self.cluster.cluster_name,
            "clusterEndpoint": self.cluster.endpoint,
            # The principal pulumi-eks makes cluster admin without an access entry (cluster.deployer).
            "clusterCreatorAdmin": self.cluster.cluster_creator,
            "kubeconfig": self.cluster.kubeconfig,
            "vpcId": self.network.vpc_id,
            "privateSubnetIds": self.network.private_subnet_ids,
            "publicSubnetIds": self.network.public_subnet_ids,
            "controlPlaneSubnetIds": self.network.control_plane_subnet_ids,   # the EKS cluster's subnets
        }
        out["karpenterInterruptionQueue"] = self.karpenter.queue_name
        out["nodePools"] = list(self.karpenter.node_pools)
        out["grafanaUrl"] = self.observability.grafana_url
        out["langfuseUrl"] = self.langfuse.url
        out["otlpGrpcEndpoint"] = self.observability.otlp_grpc_endpoint
        out["documentsBucket"] = self.data.documents_bucket
        out["redisEndpoint"] = self.data.redis_address
        out["tenantNamespaces"] = self.tenancy.tenant_namespaces
        out["models"] = {n: e.url for n, e in self.model_serving.endpoints.items()}
        if self.model_serving.bucket_name is not None:
            out["modelsBucket"] = self.model_serving.bucket_name
        if self.gateway is not None:
            out["gatewayUrl"] = self.gateway.in_cluster_url
        out["agents"] = list(self.agent_runtime.agents)
        out["accessLogsBucket"] = self.access_logs.bucket.bucket
        return out
