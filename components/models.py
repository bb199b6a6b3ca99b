"""Model serving layer: KEDA, the shared models bucket, the Hugging Face token Secrets, and one
ModelDeployment (vLLM or TGI, `components/model_deployment.py`) per configured model, placed on
its GPU pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import compile_cache, names
from components.aws import secure_bucket
from components.config import ModelConfig, ModelServingConfig
from components.gpu_pool import GpuPool
from components.k8s import NodeSource, helm_release, secret
from components.model_deployment import ModelDeployment, ModelDeploymentArgs, ModelEndpoint
from components.model_engine import HF_TOKEN_KEY

HF_TOKEN_SECRET = "hf-token"


# ------------------------------------------------------------------------------ namespaces

def model_namespaces(models: list[ModelConfig]) -> set[str]:
    """Namespaces that run model servers (the tenancy layer's MODEL_SERVERS flows)."""
    return {names.model_namespace(m) for m in models}


def s3_cache_namespaces(models: list[ModelConfig]) -> set[str]:
    """Namespaces with a model streaming from S3 through Pod Identity (S3_MODEL_CACHE flows)."""
    return {names.model_namespace(m) for m in models if m.cache == "s3"}


def pvc_namespaces(models: list[ModelConfig]) -> set[str]:
    """Namespaces holding a model's cache PVC."""
    return {names.model_namespace(m) for m in models if m.cache == "pvc"}


# ------------------------------------------------------------------------------ components

SchedulingFor = Callable[[str], tuple[list[dict[str, Any]], dict[str, str]]]


@dataclass
class ModelServingArgs:
    models: list[ModelConfig]
    pools: Mapping[str, GpuPool]                       # compute's typed outputs (Karpenter.gpu_pools), by name
    serving: ModelServingConfig
    cluster_name: pulumi.Input[str]
    protect_data: bool
    hf_token: pulumi.Input[str] | None
    tags: dict[str, str]
    namespaces: dict[str, pulumi.Resource] = field(default_factory=dict)
    node_isolated_tenants: set[str] = field(default_factory=set)
    scheduling_for: SchedulingFor | None = None        # tenancy's (tolerations, nodeSelector) of a tenant
    compute: list[pulumi.Resource] = field(default_factory=list)  # NodePools / GPU stack the pods need
    # Where KEDA's pods run (the system node group): its atomic release waits for them.
    system_nodes: NodeSource | None = None
    # Where the weights Jobs run (the platform's CPU NodePool) and their scratch volumes' StorageClass.
    platform_nodes: NodeSource | None = None
    cache_storage_class: pulumi.Resource | None = None
    # The gateway's routes: each canary/fallback model -> the route models it also answers to.
    served_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def placement(m: ModelConfig, pool: GpuPool, isolated: bool,
              scheduling_for: SchedulingFor | None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Tolerations and nodeSelector of a model's pods: its pool's (compute's typed output), or its
    tenant's dedicated pool (a copy of it, the tenancy layer's placement on top)."""
    tolerations = [dict(t) for t in pool.tolerations]
    node_selector = dict(pool.node_selector)
    if isolated and m.tenant:
        if scheduling_for is not None:
            tenant_tol, tenant_sel = scheduling_for(m.tenant)
        else:
            tenant_tol = [{"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": m.tenant,
                           "effect": "NoSchedule"}]
            tenant_sel = {names.TENANT_LABEL: m.tenant}
        tolerations += [t for t in tenant_tol if t not in tolerations]
        node_selector = {names.NODEPOOL_LABEL: names.tenant_pool_name(m.tenant), **tenant_sel}
    if m.gpu_model:
        node_selector[names.GPU_NAME_LABEL] = m.gpu_model.lower()
    return tolerations, node_selector


class ModelServing(pulumi.ComponentResource):
    """KEDA (kube-system) and a ModelDeployment per model; the shared models bucket when any model
    streams from S3; the Hugging Face token Secret in every namespace that serves models."""

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:models:ModelServing", name, None, opts)
        self._args = args
        self.keda = self._keda(name)
        self.models_bucket = None
        if any(m.cache == "s3" for m in args.models):
            self.models_bucket = secure_bucket(
                f"{name}-models", purpose="model-weights", protect=args.protect_data, tags=args.tags,
                lifecycle_rules=compile_cache.lifecycle_rules(args.models, args.serving.compile_cache_expiry_days),
                opts=pulumi.ResourceOptions(parent=self))
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region \
            if self.models_bucket else None
        self.token_secrets = self._token_secrets(name)
        self.models: dict[str, ModelDeployment] = {m.name: self._model(m, region) for m in args.models}
        self.endpoints: dict[str, ModelEndpoint] = {n: d.endpoint for n, d in self.models.items()}
        self.bucket_name = self.models_bucket.bucket.bucket if self.models_bucket else None
        self.register_outputs({"models": {n: d.service_name for n, d in self.models.items()},
                               **({"modelsBucket": self.bucket_name} if self.bucket_name else {})})

    def _keda(self, name: str) -> pulumi.Resource:
        """KEDA's release. Its pods run on the system nodes (tainted CriticalAddonsOnly), beside the
        other controllers; its atomic release waits for them."""
        args, s = self._args, self._args.serving
        system = names.system_placement()
        return helm_release(
            f"{name}-keda", "keda", namespace=names.NS_SYSTEM, release_name="keda",
            values={
                "operator": {"replicaCount": s.keda_replicas, **system},
                "metricsServer": {"replicaCount": s.keda_replicas, **system},
                "webhooks": {"replicaCount": s.keda_replicas, **system},
                "podDisruptionBudget": {k: {"maxUnavailable": 1} for k in ("operator", "metricServer", "webhooks")},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.system_nodes or ())))

    def _token_secrets(self, name: str) -> dict[str, k8s.core.v1.Secret]:
        """The Hugging Face token Secret of every namespace that serves a model (none without a token)."""
        args = self._args
        out: dict[str, k8s.core.v1.Secret] = {}
        if args.hf_token is None:
            return out
        for ns in sorted({names.model_namespace(m) for m in args.models}):
            ns_dep = [args.namespaces[ns]] if ns in args.namespaces else []
            out[ns] = secret(
                f"{name}-hf-token-{ns}", HF_TOKEN_SECRET, ns, {HF_TOKEN_KEY: args.hf_token}, app="hf-token",
                component="model-server", opts=pulumi.ResourceOptions(parent=self, depends_on=ns_dep))
        return out

    def _model(self, m: ModelConfig, region: pulumi.Input[str] | None) -> ModelDeployment:
        """One model's server, placed on its pool (compute's GpuPool), after its namespace, token and
        the compute it needs; its weights Job only after what the copy needs."""
        args = self._args
        ns = names.model_namespace(m)
        pool = args.pools[m.pool]
        tolerations, node_selector = placement(m, pool, m.tenant in args.node_isolated_tenants, args.scheduling_for)
        namespace = [args.namespaces[ns]] if ns in args.namespaces else []
        token = [self.token_secrets[ns]] if ns in self.token_secrets else []
        deps: list[pulumi.Resource] = [*namespace, *args.compute, *token]
        weights_deps = [*namespace, *list(args.platform_nodes or ()),
                        *([args.cache_storage_class] if args.cache_storage_class else []), *token]
        return ModelDeployment(m.name, ModelDeploymentArgs(
            model=m, pool=pool, serving=args.serving, cluster_name=args.cluster_name, keda=self.keda,
            hf_token_secret=HF_TOKEN_SECRET if token else None,
            models_bucket=self.models_bucket, tolerations=tolerations, node_selector=node_selector,
            region=region, served_aliases=args.served_aliases.get(m.name, ()), tags=args.tags,
            depends_on=deps, weights_depends_on=weights_deps),
            pulumi.ResourceOptions(parent=self))
