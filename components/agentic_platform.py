"""AgenticPlatform: composes the layers in order. The only place that wires one layer's outputs
into another; nothing below it knows which environment it is in."""

from __future__ import annotations

from typing import Any

import pulumi

from components.agents import AgentRuntime, AgentRuntimeArgs
from components.cluster import Cluster, ClusterArgs
from components.config import PlatformConfig
from components.data import DataArgs, DataServices
from components.gateway import InferenceGateway, InferenceGatewayArgs
from components.gateway import in_cluster_url as gateway_in_cluster_url
from components.gpu_stack import GpuStack, GpuStackArgs
from components.karpenter import Karpenter, KarpenterArgs
from components.models import ModelServing, ModelServingArgs
from components.network import Network, NetworkArgs
from components.observability import LangFuse, LangFuseArgs, Observability, ObservabilityArgs
from components.tenancy import Tenancy, TenancyArgs


class AgenticPlatform(pulumi.ComponentResource):
    """The whole platform of one stack."""

    def __init__(self, name: str, config: PlatformConfig, secrets: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:index:AgenticPlatform", name, None, opts)
        cluster_name = config.cluster_name
        tags = {"agentic.platform/cluster": cluster_name, "agentic.platform/environment": config.environment,
                "managed-by": "pulumi"}
        child = pulumi.ResourceOptions(parent=self)

        self.network = Network("network", NetworkArgs(config.network, cluster_name, tags), child)
        self.cluster = Cluster("cluster", ClusterArgs(
            config=config.cluster, cluster_name=cluster_name, vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids, protect_data=config.protect_data,
            tags=tags), child)
        # Every Kubernetes object below uses the cluster's provider, inherited from its layer.
        k8s = pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.cluster.provider})
        # Namespaces, quotas, NetworkPolicies and RBAC first: every other layer deploys into them.
        self.tenancy = Tenancy("tenancy", TenancyArgs(
            tenants=config.tenants, platform_quotas=config.platform_quotas, cluster_name=self.cluster.cluster_name,
            vpc_cidr=str(config.network.cidr), kubernetes_version=config.cluster.version, tags=tags), k8s)

        self.karpenter = Karpenter("karpenter", KarpenterArgs(
            cluster_name=cluster_name, cluster=self.cluster.cluster_name, endpoint=self.cluster.endpoint,
            system_nodes=self.cluster.system_nodes, gpu_pools=config.gpu_pools, cpu_pool=config.cpu_pool,
            tenants=config.tenants, tags=tags,
            # CoreDNS and the EBS CSI add-on (which waits for the Pod Identity agent) run first.
            depends_on=[self.cluster.coredns, self.cluster.ebs_csi],
            preflight_az_count=config.network.availability_zones if config.cluster.preflight else None), k8s)
        # Observability pods run on the CPU NodePool (Karpenter) in the tenancy layer's namespaces.
        obs_deps: list[pulumi.Resource] = [self.karpenter.release, *self.tenancy.namespaces.values()]
        self.observability = Observability("observability", ObservabilityArgs(
            config=config.observability, storage_class=self.cluster.storage_class_name,
            depends_on=[*obs_deps, self.cluster.storage_class]), k8s)
        # The DCGM exporter's ServiceMonitor needs kube-prometheus-stack's CRDs.
        self.gpu_stack = GpuStack("gpu-stack", GpuStackArgs(config.gpu_stack, self.karpenter.release,
                                                            depends_on=[self.observability.kube_prometheus_stack]), k8s)
        # Data: buckets and ElastiCache depend on the network only (its SG rule on the cluster SG) and
        # build while EKS does; the charts wait for nodes, the StorageClass and the ServiceMonitor CRDs.
        self.data = DataServices("data", DataArgs(
            config=config.data, cluster_name=self.cluster.cluster_name, name_prefix=cluster_name,
            vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids,
            cluster_security_group_id=self.cluster.cluster_security_group_id,
            storage_class=self.cluster.storage_class_name, protect_data=config.protect_data, tags=tags,
            namespaces=self.tenancy.namespaces,
            depends_on=[self.karpenter.release, self.cluster.storage_class,
                        self.observability.kube_prometheus_stack]), k8s)
        # LangFuse after the data layer: its pods read the Redis connection Secret at start.
        self.langfuse = LangFuse("langfuse", LangFuseArgs(
            config=config.observability.langfuse, cluster_name=self.cluster.cluster_name,
            protect_data=config.protect_data, storage_class=self.cluster.storage_class_name,
            vpc_id=self.network.vpc_id, private_subnet_ids=self.network.private_subnet_ids,
            cluster_security_group_id=self.cluster.cluster_security_group_id, tags=tags,
            credentials=self.observability.langfuse_credentials,
            db_password=self.observability.langfuse_db_password,
            depends_on=[*obs_deps, self.cluster.storage_class, *self.data.connection_secrets]), k8s)
        # Models: pods need their namespace, the GPU NodePools and device plugin (destroy order: the
        # servers go before the NodePools), and the ServiceMonitor CRD of kube-prometheus-stack.
        self.model_serving = ModelServing("models", ModelServingArgs(
            models=config.models, pools=config.gpu_pools, serving=config.model_serving,
            cluster_name=self.cluster.cluster_name, protect_data=config.protect_data,
            hf_token=secrets.get("hfToken"), tags=tags, namespaces=self.tenancy.namespaces,
            node_isolated_tenants={t.name for t in config.tenants if t.isolation == "node"},
            scheduling_for=self.tenancy.scheduling_for,
            compute=[*self.karpenter.node_pools.values(), self.gpu_stack.plugin,
                     self.observability.kube_prometheus_stack]), k8s)
        self.models = self.model_serving.models
        # Gateway: routes to the model Services (after the model layer), JWT and rate limits on each.
        self.gateway = None
        if config.gateway is not None:
            self.gateway = InferenceGateway("gateway", InferenceGatewayArgs(
                config=config.gateway, models=config.models, tenants=config.tenants,
                cluster_name=self.cluster.cluster_name, vpc_id=self.network.vpc_id, tags=tags,
                namespaces=self.tenancy.namespaces, model_dependencies=list(self.models.values())), k8s)
        # Agents last: kagent talks to the gateway, reads the data layer's connection Secrets, and its
        # ScaledObjects need the model layer's KEDA.
        self.agent_runtime = AgentRuntime("agents", AgentRuntimeArgs(
            runtime=config.agent_runtime, agents=config.agents, models=config.models,
            gateway_url=self.gateway.in_cluster_url if self.gateway is not None else gateway_in_cluster_url(),
            gateway_token=secrets.get("agentGatewayToken"), protect_data=config.protect_data, tags=tags,
            cluster_name=self.cluster.cluster_name, vpc_id=self.network.vpc_id,
            private_subnet_ids=self.network.private_subnet_ids,
            cluster_security_group_id=self.cluster.cluster_security_group_id, redis_tls=self.data.redis_tls,
            prometheus_url=self.observability.prometheus_url,
            otlp_grpc_endpoint=self.observability.otlp_grpc_endpoint, namespaces=self.tenancy.namespaces,
            keda=[self.model_serving.keda], data=list(self.data.connection_secrets)), k8s)

        self.outputs: dict[str, Any] = {
            "clusterName": self.cluster.cluster_name,
            "clusterEndpoint": self.cluster.endpoint,
            "kubeconfig": self.cluster.kubeconfig,
            "vpcId": self.network.vpc_id,
            "privateSubnetIds": self.network.private_subnet_ids,
            "publicSubnetIds": self.network.public_subnet_ids,
        }
        self.outputs["karpenterInterruptionQueue"] = self.karpenter.queue_name
        self.outputs["nodePools"] = list(self.karpenter.node_pools)
        self.outputs["grafanaUrl"] = self.observability.grafana_url
        self.outputs["langfuseUrl"] = self.langfuse.url
        self.outputs["otlpGrpcEndpoint"] = self.observability.otlp_grpc_endpoint
        self.outputs["documentsBucket"] = self.data.documents_bucket
        self.outputs["redisEndpoint"] = self.data.redis_address
        self.outputs["tenantNamespaces"] = self.tenancy.tenant_namespaces
        self.outputs["models"] = {n: f"http://{d.service_name}.{d.namespace}.svc:{d.port}" for n, d in self.models.items()}
        if self.model_serving.bucket_name is not None:
            self.outputs["modelsBucket"] = self.model_serving.bucket_name
        if self.gateway is not None:
            self.outputs["gatewayUrl"] = self.gateway.in_cluster_url
        self.outputs["agents"] = list(self.agent_runtime.agents)
        self.register_outputs(self.outputs)
