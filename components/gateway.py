"""Inference gateway layer: Gateway API CRDs, kgateway, the AWS Load Balancer Controller, the
`ai-inference-gateway` Gateway behind an NLB, one HTTPRoute per model (header `x-model-id`, weighted
canary, priority-group fallback), and kgateway TrafficPolicies (JWT, token-bucket rate limits,
retries). Optional (`inferenceRouting: agentgateway`): agentgateway with an InferencePool and its
endpoint picker per vLLM model, a Gateway of class `agentgateway`, routes to the pools, JWT and rate
limits as AgentgatewayPolicies."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import yaml

from components import names
from components.aws import pod_identity_role
from components.config import GatewayConfig, ModelConfig, ModelRouteConfig, TenantConfig, TokenBucketConfig
from components.k8s import (
    PLATFORM_DIR,
    NodeSource,
    container_security_context,
    custom_object,
    helm_release,
    labels,
    meta,
    platform_data,
    pod_security_context,
    resources,
    selector,
)

GATEWAY_API = "gateway.networking.k8s.io"
KGATEWAY = "gateway.kgateway.dev"
KGATEWAY_API = f"{KGATEWAY}/v1alpha1"
INFERENCE_API = "inference.networking.k8s.io/v1"
GATEWAY_CLASS = "kgateway"                       # created by the kgateway chart
# The OpenAI-compatible paths both vLLM and TGI serve.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
MODEL_HEADER = "x-model-id"
TENANT_HEADER = "x-tenant-id"
RETRY_ON = ["5xx", "reset", "connect-failure"]
LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
LBC_POLICY_FILE = PLATFORM_DIR / "iam" / "aws-load-balancer-controller.json"
CRD_DIRS = {"gateway-api": PLATFORM_DIR / "crds" / "gateway-api",
            "inference": PLATFORM_DIR / "crds" / "gateway-api-inference-extension"}
EPP_PORT = 9002                                  # the GAIE endpoint picker's gRPC (ext-proc) port
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
INFERENCE_GROUP = "inference.networking.k8s.io"
AGW_GROUP = "agentgateway.dev"
AGW_API = f"{AGW_GROUP}/v1alpha1"
AGW_CLASS = "agentgateway"                       # created by the agentgateway controller (its default)
AGW_GATEWAY = "ai-inference-agentgateway"
RETRY_CODES = [500, 502, 503, 504]
EPP_CONFIG_FILE = "default-plugins.yaml"
# The upstream chart's default scheduling profile (GAIE v1.5.0 epplib `_config.yaml`, vLLM over HTTP).
EPP_PLUGINS = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig",
    "plugins": [{"type": "queue-scorer"}, {"type": "kv-cache-utilization-scorer"}, {"type": "prefix-cache-scorer"},
                {"type": "metrics-data-source",
                 "parameters": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True}},
                {"type": "core-metrics-extractor"}],
    "schedulingProfiles": [{"name": "default", "plugins": [
        {"pluginRef": "queue-scorer", "weight": 2}, {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
        {"pluginRef": "prefix-cache-scorer", "weight": 3}]}],
}
EPP_IMAGE: dict[str, str] = platform_data("images.yaml")["epp"]
HTTPS_PORT = 443
# Where kgateway's Envoy binds the Gateway's 443 listener: listener ports below 1024 are moved up by
# 8000 so the proxy runs unprivileged (kgateway internal/kgateway/ports TranslatePort; the
# deployer's helm values give the proxy Service targetPort = TranslatePort(listener port)).
PROXY_HTTPS_PORT = HTTPS_PORT + 8000
LB = "service.beta.kubernetes.io/aws-load-balancer"
# The NLB's Service: TLS on 443 only (the kgateway proxy Service, with the in-cluster port 80, stays ClusterIP).
LB_SERVICE = f"{names.GATEWAY_NAME}-nlb"
# kgateway's local rate limit is one bucket per route per proxy replica; an HTTPRoute takes 16 rules
# and a policy 16 targetRefs.
MAX_TARGETS = 16


@dataclass
class InferenceGatewayArgs:
    config: GatewayConfig
    models: list[ModelConfig]
    tenants: list[TenantConfig]
    cluster_name: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    tags: dict[str, str]
    # Namespaces (tenancy layer) and model Services (model layer), when those layers exist: the
    # gateway's objects depend on them.
    namespaces: dict[str, pulumi.Resource] = field(default_factory=dict)
    model_dependencies: list[pulumi.Resource] = field(default_factory=list)
    # Where the controllers' pods run: kgateway and agentgateway (and the proxies, the endpoint
    # pickers) on Karpenter's platform NodePool, the Load Balancer Controller on the system nodes.
    platform_nodes: NodeSource | None = None
    system_nodes: NodeSource | None = None


def endpoint_picker_namespaces(cfg: GatewayConfig | None, models: list[ModelConfig]) -> set[str]:
    """Namespaces that get an endpoint picker (inference routing: one per vLLM model)."""
    if cfg is None or cfg.inference_routing != "agentgateway":
        return set()
    return {names.model_namespace(m) for m in models if m.engine == "vllm"}


def in_cluster_url() -> str:
    """What in-cluster callers (agents) use: kgateway names the proxy Service after the Gateway."""
    return f"http://{names.GATEWAY_NAME}.{names.NS_GATEWAY}.svc.cluster.local:{names.GATEWAY_PORT}"


def model_service_host(model: ModelConfig) -> str:
    return f"{model.name}.{names.model_namespace(model)}.svc.cluster.local"


@cache
def _crd_file(path: Path) -> tuple[dict[str, Any], ...]:
    # libyaml when present: the pure-Python loader takes seconds on the Gateway API CRDs.
    return tuple(d for d in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d)


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """The CRDs of a vendored directory, read once per process (callers must not mutate them)."""
    return [d for path in sorted(directory.glob("*.yaml")) for d in _crd_file(path)]


def route_matches(model: str, tenant: str | None = None) -> list[dict[str, Any]]:
    headers = [{"type": "Exact", "name": MODEL_HEADER, "value": model}]
    if tenant is not None:
        headers.append({"type": "Exact", "name": TENANT_HEADER, "value": tenant})
    return [{"path": {"type": "Exact", "value": p}, "headers": headers} for p in MODEL_PATHS]


def token_bucket(tb: TokenBucketConfig) -> dict[str, Any]:
    return {"tokenBucket": {"maxTokens": tb.max_tokens, "tokensPerFill": tb.tokens_per_fill,
                            "fillInterval": tb.fill_interval}}


def epp_name(model: ModelConfig) -> str:
    return f"{model.name}-epp"


def local_rate_limit(tb: TokenBucketConfig) -> dict[str, Any]:
    """kgateway's token bucket as an agentgateway local limit: `requests` per `unit` plus `burst`.
    The refill rate is kept exactly when it is a whole number per second, minute or hour (the
    first that is); otherwise it is rounded up per hour. `burst` is the bucket above one refill."""
    value, unit = re.fullmatch(r"([0-9]+)(ms|s|m|h)", tb.fill_interval).groups()
    interval_ms = int(value) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]
    units = (("Seconds", 1000), ("Minutes", 60_000), ("Hours", 3_600_000))
    unit_name, unit_ms = next((u for u in units if (tb.tokens_per_fill * u[1]) % interval_ms == 0), units[-1])
    requests = max(1, -(-tb.tokens_per_fill * unit_ms // interval_ms))
    return {"requests": requests, "unit": unit_name, "burst": max(0, tb.max_tokens - tb.tokens_per_fill)}


def plain_route(model: str) -> ModelRouteConfig:
    """A model's route when config says nothing about it: no canary, no fallback."""
    return ModelRouteConfig.model_validate({"model": model})


def chunks(items: list[Any], size: int = MAX_TARGETS) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class InferenceGateway(pulumi.ComponentResource):
    """kgateway behind an NLB, routes generated from the model catalog, JWT and rate limits on
    every route."""

    in_cluster_url: str
    routes: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: InferenceGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:gateway:InferenceGateway", name, None, opts)
        cfg = self._config = args.config
        ns = names.NS_GATEWAY
        self.models = {m.name: m for m in args.models}
        gw_ns_deps = [args.namespaces[ns]] if ns in args.namespaces else []

        def opts_(*depends: pulumi.Resource | None, **kw: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[d for d in depends if d is not None], **kw)

        # --- Gateway API CRDs (vendored upstream YAML; CRDs owned once, here)
        self.gateway_api_crds = self._crds(name, "gateway-api")
        # --- kgateway: its CRDs in a release of their own, the controller with skip_crds
        self.kgateway_crds = helm_release(f"{name}-kgateway-crds", "kgateway-crds", namespace=ns, values={},
                                          opts=opts_(*self.gateway_api_crds, *gw_ns_deps))
        self.kgateway = helm_release(f"{name}-kgateway", "kgateway", namespace=ns, skip_crds=True, values={
            # v2.4 keys: the top-level resources/securityContext/podSecurityContext are deprecated
            # aliases of these (removed in v3).
            "controller": {"replicaCount": cfg.controller_replicas,
                           "podDisruptionBudget": {"minAvailable": 1} if cfg.controller_replicas > 1 else {},
                           "resources": resources("100m", "256Mi", cpu_limit="1", memory_limit="512Mi"),
                           "securityContext": container_security_context(),
                           "podSecurityContext": pod_security_context(10101)},
        }, opts=opts_(self.kgateway_crds, *gw_ns_deps, *(args.platform_nodes or ())))

        # --- AWS Load Balancer Controller: turns the proxy's LoadBalancer Service into an NLB
        lbc_identity = pod_identity_role(
            f"{name}-lbc", cluster_name=args.cluster_name, namespace=names.NS_SYSTEM,
            service_account=LBC_SERVICE_ACCOUNT, policy=json.dumps(json.loads(LBC_POLICY_FILE.read_text())),
            tags=args.tags, opts=pulumi.ResourceOptions(parent=self))
        self.lbc = helm_release(f"{name}-lbc", "aws-load-balancer-controller", namespace=names.NS_SYSTEM, values={
            "clusterName": args.cluster_name,
            "region": aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region,
            "vpcId": args.vpc_id,
            "replicaCount": cfg.lbc_replicas,
            "serviceAccount": {"create": True, "name": LBC_SERVICE_ACCOUNT},
            "defaultTargetType": "ip",  # VPC CNI: pods have VPC addresses
            "nodeSelector": dict(names.SYSTEM_NODE_LABEL),
            "tolerations": [{**names.SYSTEM_TOLERATION, "effect": "NoSchedule"}],
            "resources": resources("100m", "256Mi", cpu_limit="500m"),
            "podDisruptionBudget": {"maxUnavailable": 1} if cfg.lbc_replicas > 1 else {},
            # The chart's Service mutator webhook (templates/webhook.yaml at chart 3.5.0, enabled by
            # enableServiceMutatorWebhook: true, serviceMutatorWebhookConfig.failurePolicy: Fail, no
            # namespaceSelector) intercepts every Service CREATE in the cluster to default
            # type-LoadBalancer Services to its loadBalancerClass. This release installs right after
            # the control plane, before its pods can run, so every Service created meanwhile (KEDA,
            # kgateway, kagent, CoreDNS's kube-dns) is rejected and atomic releases roll back
            # (kubernetes-sigs/aws-load-balancer-controller#4140). Off: the platform's only
            # LoadBalancer Service (the NLB) carries `aws-load-balancer-type: external`, which the
            # controller reconciles without the webhook and the in-tree cloud provider ignores
            # (aws-load-balancer-controller docs/guide/service/nlb.md). The pod mutator webhooks stay:
            # they are label-gated per namespace (and failurePolicy Ignore for readiness gates).
            "enableServiceMutatorWebhook": False,
        }, opts=opts_(lbc_identity.association,  # credentials exist before the controller starts
                      *(args.system_nodes or ())))

        # --- the Gateway: proxy settings through GatewayParameters. Its Service stays in-cluster
        # (ClusterIP): the AWS Load Balancer Controller gives an NLB one listener per Service port,
        # so a LoadBalancer Service with the plain-HTTP port 80 would put bearer tokens on the wire in
        # clear. The NLB gets a Service of its own below, with 443 (TLS) only.
        lb = cfg.load_balancer
        listeners = [self._listener("http", names.GATEWAY_PORT)]
        if lb.certificate_arn is not None:
            # The NLB ends TLS and forwards plain HTTP to this listener, so it is an HTTP listener.
            listeners.append(self._listener("https", HTTPS_PORT))
        proxy_labels = labels(names.GATEWAY_NAME, "gateway-proxy")
        service: dict[str, Any] = {"type": "ClusterIP"}
        p = cfg.proxy
        self.parameters = custom_object(
            f"{name}-parameters", KGATEWAY_API, "GatewayParameters", names.GATEWAY_NAME, namespace=ns,
            labels=proxy_labels, opts=opts_(self.kgateway_crds, *gw_ns_deps),
            spec={"kube": {
                "deployment": {"replicas": p.replicas},
                "envoyContainer": {"resources": resources(p.cpu, p.memory, cpu_limit=p.cpu_limit,
                                                          memory_limit=p.memory_limit),
                                   "securityContext": container_security_context()},
                "podTemplate": {
                    "extraLabels": proxy_labels,
                    "securityContext": pod_security_context(10101),
                    # Spread the proxies over zones: one AZ lost keeps the gateway up.
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": names.GATEWAY_NAME}}}],
                },
                "service": service,
                **({"podDisruptionBudget": {"spec": {"minAvailable": 1}}} if p.replicas > 1 else {}),
            }})
        # Depends on the LBC: on destroy the Gateway (hence its Service and NLB) goes first, while the
        # controller still runs to delete the NLB; nothing orphaned blocks the VPC's deletion.
        self.gateway = custom_object(
            f"{name}-gateway", f"{GATEWAY_API}/v1", "Gateway", names.GATEWAY_NAME, namespace=ns,
            labels=labels(names.GATEWAY_NAME, "gateway"),
            opts=opts_(self.kgateway, self.lbc, self.parameters, *gw_ns_deps),
            spec={"gatewayClassName": GATEWAY_CLASS,
                  "infrastructure": {"parametersRef": {"group": KGATEWAY, "kind": "GatewayParameters",
                                                       "name": names.GATEWAY_NAME}},
                  "listeners": listeners})
        self.in_cluster_url = in_cluster_url()
        self.load_balancer = self._load_balancer(name, cfg, proxy_labels, opts_(self.lbc, self.gateway, *gw_ns_deps))

        # --- routes
        route_deps = [self.gateway, *gw_ns_deps, *args.model_dependencies]
        self.backends: dict[str, k8s.apiextensions.CustomResource] = {}
        self._reference_grants(name, route_deps)
        settings = {r.model: r for r in cfg.routes}
        self.routes = {}
        for model in args.models:
            route = settings.get(model.name) or plain_route(model.name)
            self.routes[model.name] = custom_object(
                f"{name}-route-{model.name}", f"{GATEWAY_API}/v1", "HTTPRoute", f"model-{model.name}",
                namespace=ns, labels=labels(f"model-{model.name}", "gateway-route"), opts=opts_(*route_deps),
                spec={"parentRefs": [self._parent()],
                      "rules": [self._rule(model.name, self._backend_refs(name, route, route_deps))]})
        # Per-tenant routes: the same models, matched also on x-tenant-id, so each tenant gets a
        # token bucket of its own (a more specific header match wins over the model route).
        self.tenant_routes = {}
        if args.models:
            for tenant in args.tenants:
                rules = [self._rule(m.name, self._backend_refs(name, settings.get(m.name) or plain_route(m.name),
                                                               route_deps), tenant.name)
                         for m in args.models]
                self.tenant_routes[tenant.name] = custom_object(
                    f"{name}-route-tenant-{tenant.name}", f"{GATEWAY_API}/v1", "HTTPRoute", f"tenant-{tenant.name}",
                    namespace=ns, labels=labels(f"tenant-{tenant.name}", "gateway-route",
                                                extra={names.TENANT_LABEL: tenant.name}),
                    opts=opts_(*route_deps), spec={"parentRefs": [self._parent()], "rules": rules})

        # --- policies: JWT on the whole Gateway (every route, present or future), token buckets
        # and retries per route
        self.jwt_policy = self._jwt(name, cfg, opts_(self.kgateway_crds, *gw_ns_deps))
        self.rate_limit_policies: list[k8s.apiextensions.CustomResource] = []
        model_routes = [f"model-{m.name}" for m in args.models]
        for i, group in enumerate(chunks(model_routes)):
            self.rate_limit_policies.append(self._limits(
                f"{name}-limits-{i}", f"model-routes-{i}", group, cfg.rate_limit, cfg,
                opts_(self.kgateway_crds, *[self.routes[r.removeprefix('model-')] for r in group])))
        for tenant_name, route_obj in self.tenant_routes.items():
            self.rate_limit_policies.append(self._limits(
                f"{name}-limits-tenant-{tenant_name}", f"tenant-{tenant_name}", [f"tenant-{tenant_name}"],
                cfg.tenant_rate_limit, cfg, opts_(self.kgateway_crds, route_obj)))

        # --- optional inference-aware routing (agentgateway; kgateway dropped InferencePool in 2.2)
        self.inference_pools: dict[str, k8s.apiextensions.CustomResource] = {}
        self.endpoint_pickers: dict[str, k8s.apps.v1.Deployment] = {}
        self.pool_routes: dict[str, k8s.apiextensions.CustomResource] = {}
        if cfg.inference_routing == "agentgateway":
            self._agentgateway(name, args, gw_ns_deps)

        self.register_outputs({"inClusterUrl": self.in_cluster_url})

    # ------------------------------------------------------------------ pieces
    def _crds(self, name: str, key: str) -> list[k8s.apiextensions.v1.CustomResourceDefinition]:
        out = []
        for doc in load_crds(CRD_DIRS[key]):
            short = doc["metadata"]["name"].split(".")[0]
            out.append(k8s.apiextensions.v1.CustomResourceDefinition(
                f"{name}-crd-{short}", metadata=doc["metadata"], spec=doc["spec"],
                opts=pulumi.ResourceOptions(parent=self)))
        return out

    @staticmethod
    def _load_balancer(name: str, cfg: GatewayConfig, proxy_labels: dict[str, str],
                       opts: pulumi.ResourceOptions) -> k8s.core.v1.Service | None:
        """The NLB: a LoadBalancer Service selecting the proxy pods (the GatewayParameters'
        extraLabels), one port, 443, with TLS ended by the NLB with the ACM certificate
        (aws-load-balancer-controller service annotations: `ssl-cert`, `ssl-ports`,
        `ssl-negotiation-policy`, `backend-protocol: tcp`). No certificate, no NLB: the gateway
        is then reachable in-cluster only. Depends on the LBC: on destroy it goes first, while the
        controller still runs to delete the NLB (nothing orphaned blocks the VPC's deletion)."""
        lb = cfg.load_balancer
        if lb.certificate_arn is None:
            return None
        annotations = {
            f"{LB}-type": "external",
            f"{LB}-nlb-target-type": "ip",
            f"{LB}-scheme": lb.scheme,
            f"{LB}-ssl-cert": lb.certificate_arn,
            f"{LB}-ssl-ports": str(HTTPS_PORT),
            f"{LB}-backend-protocol": "tcp",
            f"{LB}-ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        }
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "selector": selector(names.GATEWAY_NAME),
            "ports": [{"name": "https", "port": HTTPS_PORT, "targetPort": PROXY_HTTPS_PORT, "protocol": "TCP"}],
        }
        if lb.source_ranges:
            spec["loadBalancerSourceRanges"] = [str(c) for c in lb.source_ranges]
        return k8s.core.v1.Service(
            f"{name}-nlb", metadata=meta(LB_SERVICE, names.NS_GATEWAY,
                                         labels={**proxy_labels, "app.kubernetes.io/component": "gateway-nlb"},
                                         annotations=annotations),
            spec=spec, opts=opts)

    @staticmethod
    def _listener(listener: str, port: int) -> dict[str, Any]:
        # Only namespaces labelled for gateway access may attach routes (ai-gateway itself must
        # carry the label: the generated routes live there).
        return {"name": listener, "port": port, "protocol": "HTTP",
                "allowedRoutes": {"kinds": [{"group": GATEWAY_API, "kind": "HTTPRoute"}],
                                  "namespaces": {"from": "Selector", "selector": {
                                      "matchLabels": {names.GATEWAY_ACCESS_LABEL: "true"}}}}}

    @staticmethod
    def _parent() -> dict[str, Any]:
        return {"group": GATEWAY_API, "kind": "Gateway", "name": names.GATEWAY_NAME, "namespace": names.NS_GATEWAY}

    def _rule(self, model: str, backend_refs: list[dict[str, Any]], tenant: str | None = None) -> dict[str, Any]:
        cfg_timeouts = {"request": self._config.request_timeout, "backendRequest": self._config.backend_timeout}
        return {"name": model, "matches": route_matches(model, tenant), "backendRefs": backend_refs,
                "timeouts": cfg_timeouts}

    def _service_ref(self, model: ModelConfig, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": model.name, "namespace": names.model_namespace(model),
                "port": names.model_port(model.engine), "weight": weight}

    def _backend_refs(self, name: str, route: ModelRouteConfig, deps: list[pulumi.Resource]) -> list[dict[str, Any]]:
        primary = self.models[route.model]
        canary_weight = route.canary.weight if route.canary else 0
        if route.fallback is not None:
            backend = self._failover(name, primary, self.models[route.fallback], deps)
            refs = [{"group": KGATEWAY, "kind": "Backend", "name": backend, "weight": 100 - canary_weight}]
        else:
            refs = [self._service_ref(primary, 100 - canary_weight)]
        if route.canary is not None:
            refs.append(self._service_ref(self.models[route.canary.model], canary_weight))
        return refs

    def _static_backend(self, name: str, model: ModelConfig, deps: list[pulumi.Resource]) -> str:
        backend = f"svc-{model.name}"
        if backend not in self.backends:
            self.backends[backend] = custom_object(
                f"{name}-backend-{backend}", KGATEWAY_API, "Backend", backend, namespace=names.NS_GATEWAY,
                labels=labels(backend, "gateway-backend"), opts=pulumi.ResourceOptions(parent=self, depends_on=[
                    self.kgateway_crds, *deps]),
                spec={"type": "Static", "static": {"hosts": [{"host": model_service_host(model),
                                                              "port": names.model_port(model.engine)}]}})
        return backend

    def _failover(self, name: str, primary: ModelConfig, fallback: ModelConfig, deps: list[pulumi.Resource]) -> str:
        """A priority-groups Backend: the fallback model's servers get traffic only while the
        primary's group is unhealthy (active health check on /health plus outlier detection)."""
        backend = f"{primary.name}-failover"
        if backend in self.backends:
            return backend
        groups = [self._static_backend(name, primary, deps), self._static_backend(name, fallback, deps)]
        self.backends[backend] = custom_object(
            f"{name}-backend-{backend}", KGATEWAY_API, "Backend", backend, namespace=names.NS_GATEWAY,
            labels=labels(backend, "gateway-backend"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.backends[g] for g in groups]),
            spec={"type": "PriorityGroups", "priorityGroups": [{"backendRefs": [{"name": g}]} for g in groups]})
        custom_object(
            f"{name}-health-{backend}", KGATEWAY_API, "BackendConfigPolicy", backend, namespace=names.NS_GATEWAY,
            labels=labels(backend, "gateway-backend"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.backends[backend]]),
            spec={"targetRefs": [{"group": KGATEWAY, "kind": "Backend", "name": backend}],
                  # vLLM and TGI both answer /health once the model is loaded.
                  "healthCheck": {"interval": "10s", "timeout": "5s", "unhealthyThreshold": 3,
                                  "healthyThreshold": 2, "http": {"path": "/health"}},
                  # Each group is one Service address, so ejecting it must be allowed (100%).
                  "outlierDetection": {"consecutive5xx": 5, "interval": "10s", "baseEjectionTime": "30s",
                                       "maxEjectionPercent": 100}})
        return backend

    def _reference_grants(self, name: str, deps: list[pulumi.Resource]) -> None:
        """HTTPRoutes live in ai-gateway; each model namespace grants them its Services."""
        self.reference_grants = {}
        for namespace in sorted({names.model_namespace(m) for m in self.models.values()}):
            self.reference_grants[namespace] = custom_object(
                f"{name}-grant-{namespace}", f"{GATEWAY_API}/v1beta1", "ReferenceGrant", "ai-gateway-routes",
                namespace=namespace, labels=labels("ai-gateway-routes", "gateway-grant"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.gateway_api_crds, *deps]),
                spec={"from": [{"group": GATEWAY_API, "kind": "HTTPRoute", "namespace": names.NS_GATEWAY}],
                      "to": [{"group": "", "kind": "Service"}]})

    def _jwt(self, name: str, cfg: GatewayConfig, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
        jwks = urlparse(cfg.jwt.jwks_uri)
        host, port = jwks.hostname or "", jwks.port or 443
        jwks_backend = custom_object(
            f"{name}-jwks-backend", KGATEWAY_API, "Backend", "jwks", namespace=names.NS_GATEWAY,
            labels=labels("jwks", "gateway-auth"), opts=opts,
            spec={"type": "Static", "static": {"hosts": [{"host": host, "port": port}]}})
        custom_object(
            f"{name}-jwks-tls", KGATEWAY_API, "BackendConfigPolicy", "jwks-tls", namespace=names.NS_GATEWAY,
            labels=labels("jwks", "gateway-auth"), opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[jwks_backend])),
            spec={"targetRefs": [{"group": KGATEWAY, "kind": "Backend", "name": "jwks"}],
                  "tls": {"sni": host, "wellKnownCACertificates": "System"}})
        provider: dict[str, Any] = {
            "name": "idp", "issuer": cfg.jwt.issuer,
            "jwks": {"remote": {"url": cfg.jwt.jwks_uri, "cacheDuration": "5m",
                                "backendRef": {"group": KGATEWAY, "kind": "Backend", "name": "jwks", "port": port}}},
            # The verified tenant claim overwrites whatever x-tenant-id the client sent.
            "claimsToHeaders": [{"name": cfg.jwt.tenant_claim, "header": TENANT_HEADER}],
        }
        if cfg.jwt.audiences:
            provider["audiences"] = list(cfg.jwt.audiences)
        extension = custom_object(
            f"{name}-jwt-extension", KGATEWAY_API, "GatewayExtension", "jwt", namespace=names.NS_GATEWAY,
            labels=labels("jwt", "gateway-auth"), opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[jwks_backend])),
            spec={"type": "JWT", "jwt": {"providers": [provider], "validationMode": "Strict"}})
        return custom_object(
            f"{name}-jwt-policy", KGATEWAY_API, "TrafficPolicy", "jwt-auth", namespace=names.NS_GATEWAY,
            labels=labels("jwt", "gateway-auth"), opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[extension, self.gateway])),
            spec={"targetRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": names.GATEWAY_NAME}],
                  "jwtAuth": {"extensionRef": {"name": "jwt"}}})

    @staticmethod
    def _limits(resource_name: str, policy_name: str, routes: list[str], bucket: TokenBucketConfig,
                cfg: GatewayConfig, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
        spec: dict[str, Any] = {
            "targetRefs": [{"group": GATEWAY_API, "kind": "HTTPRoute", "name": r} for r in routes],
            "rateLimit": {"local": token_bucket(bucket)},
        }
        if cfg.retry_attempts > 0:
            spec["retry"] = {"attempts": cfg.retry_attempts, "retryOn": RETRY_ON, "perTryTimeout": cfg.per_try_timeout}
        return custom_object(resource_name, KGATEWAY_API, "TrafficPolicy", f"limits-{policy_name}",
                             namespace=names.NS_GATEWAY, labels=labels(f"limits-{policy_name}", "gateway-policy"),
                             opts=opts, spec=spec)

    def _agentgateway(self, name: str, args: InferenceGatewayArgs, gw_ns_deps: list[pulumi.Resource]) -> None:
        """agentgateway as a second data plane: an InferencePool and its endpoint picker (EPP) per
        vLLM model, a Gateway of class `agentgateway`, one HTTPRoute per pool (x-model-id), and
        AgentgatewayPolicies for JWT and local rate limits."""
        cfg = self._config
        ns = names.NS_GATEWAY
        self.inference_crds = self._crds(name, "inference")
        self.agentgateway_crds = helm_release(
            f"{name}-agentgateway-crds", "agentgateway-crds", namespace=ns, values={},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.gateway_api_crds, *self.inference_crds,
                                                                 *gw_ns_deps]))
        self.agentgateway = helm_release(f"{name}-agentgateway", "agentgateway", namespace=ns, skip_crds=True, values={
            # Off by default in the chart: without it the controller ignores InferencePool backends.
            "inferenceExtension": {"enabled": True},
            "controller": {"replicaCount": cfg.controller_replicas,
                           "podDisruptionBudget": {"minAvailable": 1} if cfg.controller_replicas > 1 else {}},
            "resources": resources("100m", "256Mi", cpu_limit="1", memory_limit="512Mi"),
            "securityContext": container_security_context(),
            "podSecurityContext": pod_security_context(10101),
        }, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.agentgateway_crds, *gw_ns_deps,
                                                                *(args.platform_nodes or ())]))

        vllm = [m for m in args.models if m.engine == "vllm"]  # the EPP reads vLLM's metrics
        for model in vllm:
            epp = self._endpoint_picker(name, model, args.model_dependencies)
            self.endpoint_pickers[model.name] = epp
            self.inference_pools[model.name] = custom_object(
                f"{name}-pool-{model.name}", INFERENCE_API, "InferencePool", model.name,
                namespace=names.model_namespace(model), labels=labels(model.name, "inference-pool"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.inference_crds, self.agentgateway,
                                                                     *args.model_dependencies]),
                spec={"selector": {"matchLabels": {names.MODEL_LABEL: model.name}},
                      "targetPorts": [{"number": names.PORT_VLLM}],
                      "endpointPickerRef": {"name": epp_name(model), "port": {"number": EPP_PORT},
                                            "failureMode": "FailOpen"}})

        # --- the agentgateway Gateway: in-cluster only (ClusterIP), same listener rules as kgateway's
        agw_labels = labels(AGW_GATEWAY, "gateway-proxy")
        agw_params = custom_object(
            f"{name}-agw-parameters", AGW_API, "AgentgatewayParameters", AGW_GATEWAY, namespace=ns,
            labels=agw_labels, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.agentgateway_crds,
                                                                                   *gw_ns_deps]),
            spec={"resources": resources(cfg.proxy.cpu, cfg.proxy.memory, cpu_limit=cfg.proxy.cpu_limit,
                                         memory_limit=cfg.proxy.memory_limit),
                  "service": {"spec": {"type": "ClusterIP"}}})
        self.agentgateway_gateway = custom_object(
            f"{name}-agw-gateway", f"{GATEWAY_API}/v1", "Gateway", AGW_GATEWAY, namespace=ns,
            labels=labels(AGW_GATEWAY, "gateway"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.agentgateway, agw_params, *gw_ns_deps]),
            spec={"gatewayClassName": AGW_CLASS,
                  "infrastructure": {"parametersRef": {"group": AGW_GROUP, "kind": "AgentgatewayParameters",
                                                       "name": AGW_GATEWAY}},
                  "listeners": [self._listener("http", names.GATEWAY_PORT)]})

        # --- routes: x-model-id -> the model's InferencePool (cross-namespace, hence a grant)
        route_deps = [self.agentgateway_gateway, *gw_ns_deps, *args.model_dependencies]
        for namespace in sorted({names.model_namespace(m) for m in vllm}):
            custom_object(
                f"{name}-pool-grant-{namespace}", f"{GATEWAY_API}/v1beta1", "ReferenceGrant", "ai-gateway-pools",
                namespace=namespace, labels=labels("ai-gateway-pools", "gateway-grant"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.gateway_api_crds, *route_deps]),
                spec={"from": [{"group": GATEWAY_API, "kind": "HTTPRoute", "namespace": ns}],
                      "to": [{"group": INFERENCE_GROUP, "kind": "InferencePool"}]})
        for model in vllm:
            self.pool_routes[model.name] = custom_object(
                f"{name}-pool-route-{model.name}", f"{GATEWAY_API}/v1", "HTTPRoute", f"pool-{model.name}",
                namespace=ns, labels=labels(f"pool-{model.name}", "gateway-route"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*route_deps, self.inference_pools[model.name]]),
                spec={"parentRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": AGW_GATEWAY, "namespace": ns}],
                      "rules": [self._rule(model.name, [{
                          "group": INFERENCE_GROUP, "kind": "InferencePool", "name": model.name,
                          "namespace": names.model_namespace(model)}])]})

        # --- policies: JWT on the whole Gateway, a local rate limit on every pool route
        policy_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.agentgateway_crds, *gw_ns_deps])
        jwks = urlparse(cfg.jwt.jwks_uri)
        host, port = jwks.hostname or "", jwks.port or 443
        jwks_backend = custom_object(
            f"{name}-agw-jwks", AGW_API, "AgentgatewayBackend", "jwks", namespace=ns,
            labels=labels("jwks", "gateway-auth"), opts=policy_opts,
            # TLS with the system CAs, SNI from the host.
            spec={"static": {"host": host, "port": port}, "policies": {"tls": {}}})
        provider: dict[str, Any] = {
            "issuer": cfg.jwt.issuer,
            "jwks": {"remote": {"backendRef": {"group": AGW_GROUP, "kind": "AgentgatewayBackend", "name": "jwks"},
                                "jwksPath": jwks.path.lstrip("/") or "/", "cacheDuration": "5m"}}}
        if cfg.jwt.audiences:
            provider["audiences"] = list(cfg.jwt.audiences)
        self.agentgateway_policies = [custom_object(
            f"{name}-agw-jwt", AGW_API, "AgentgatewayPolicy", "jwt-auth", namespace=ns,
            labels=labels("jwt", "gateway-auth"),
            opts=pulumi.ResourceOptions.merge(policy_opts, pulumi.ResourceOptions(
                depends_on=[jwks_backend, self.agentgateway_gateway])),
            spec={"targetRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": AGW_GATEWAY}],
                  "traffic": {"jwtAuthentication": {"mode": "Strict", "providers": [provider]}}})]
        for i, group in enumerate(chunks(list(self.pool_routes))):
            traffic: dict[str, Any] = {"rateLimit": {"local": [local_rate_limit(cfg.rate_limit)]}}
            if cfg.retry_attempts > 0:
                traffic["retry"] = {"attempts": cfg.retry_attempts, "codes": RETRY_CODES}
            self.agentgateway_policies.append(custom_object(
                f"{name}-agw-limits-{i}", AGW_API, "AgentgatewayPolicy", f"limits-pool-routes-{i}", namespace=ns,
                labels=labels(f"limits-pool-routes-{i}", "gateway-policy"),
                opts=pulumi.ResourceOptions.merge(policy_opts, pulumi.ResourceOptions(
                    depends_on=[self.pool_routes[m] for m in group])),
                spec={"targetRefs": [{"group": GATEWAY_API, "kind": "HTTPRoute", "name": f"pool-{m}"} for m in group],
                      "traffic": traffic}))

    def _endpoint_picker(self, name: str, model: ModelConfig, deps: list[pulumi.Resource]) -> k8s.apps.v1.Deployment:
        """The GAIE endpoint picker of one pool, as the upstream `inferencepool` chart (v1.5.0)
        declares it, but with the restricted security context the namespace enforces (the chart
        has no values for it)."""
        ns, epp = names.model_namespace(model), epp_name(model)
        lbl = labels(epp, "endpoint-picker", version=EPP_IMAGE["tag"])
        select = {"app.kubernetes.io/name": epp}
        child = pulumi.ResourceOptions(parent=self, depends_on=[*self.inference_crds, *deps])
        md = k8s.meta.v1.ObjectMetaArgs
        k8s.core.v1.ServiceAccount(f"{name}-epp-sa-{model.name}", metadata=md(name=epp, namespace=ns, labels=lbl),
                                   automount_service_account_token=True, opts=child)
        role = k8s.rbac.v1.Role(f"{name}-epp-role-{model.name}", metadata=md(name=epp, namespace=ns, labels=lbl),
                                rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
                                       {"apiGroups": [INFERENCE_GROUP], "resources": ["inferencepools"],
                                        "verbs": ["get", "watch", "list"]},
                                       {"apiGroups": ["inference.networking.x-k8s.io"],
                                        "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                                        "verbs": ["get", "watch", "list"]}], opts=child)
        k8s.rbac.v1.RoleBinding(f"{name}-epp-binding-{model.name}", metadata=md(name=epp, namespace=ns, labels=lbl),
                                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": epp},
                                subjects=[{"kind": "ServiceAccount", "name": epp, "namespace": ns}],
                                opts=pulumi.ResourceOptions(parent=self, depends_on=[role]))
        config = k8s.core.v1.ConfigMap(f"{name}-epp-config-{model.name}",
                                       metadata=md(name=epp, namespace=ns, labels=lbl),
                                       data={EPP_CONFIG_FILE: yaml.safe_dump(EPP_PLUGINS, sort_keys=False)}, opts=child)
        k8s.core.v1.Service(f"{name}-epp-svc-{model.name}", metadata=md(name=epp, namespace=ns, labels=lbl), spec={
            "selector": select,
            "ports": [{"name": "grpc-ext-proc", "port": EPP_PORT, "targetPort": EPP_PORT, "appProtocol": "http2"},
                      {"name": "http-metrics", "port": EPP_METRICS_PORT, "targetPort": EPP_METRICS_PORT}]}, opts=child)
        grpc_probe = {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}}
        return k8s.apps.v1.Deployment(
            f"{name}-epp-{model.name}", metadata=md(name=epp, namespace=ns, labels=lbl),
            spec={"replicas": 1,  # one active picker (prefix-cache state); Recreate as upstream
                  "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": select},
                  "template": {"metadata": {"labels": lbl}, "spec": {
                      "serviceAccountName": epp,
                      "terminationGracePeriodSeconds": 130,
                      "securityContext": pod_security_context(65532),
                      "containers": [{
                          "name": "epp",
                          "image": f"{EPP_IMAGE['registry']}/{EPP_IMAGE['repository']}:{EPP_IMAGE['tag']}",
                          "args": ["--pool-name", model.name, "--pool-namespace", ns, "--pool-group", INFERENCE_GROUP,
                                   "--zap-encoder", "json", "--config-file", f"/config/{EPP_CONFIG_FILE}",
                                   "--tracing=false"],
                          "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                  {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                          "ports": [{"name": "grpc", "containerPort": EPP_PORT},
                                    {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT},
                                    {"name": "metrics", "containerPort": EPP_METRICS_PORT}],
                          "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5, "periodSeconds": 10},
                          "readinessProbe": {**grpc_probe, "periodSeconds": 2},
                          "resources": resources("500m", "1Gi", cpu_limit="2", memory_limit="4Gi"),
                          "securityContext": container_security_context(),
                          "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}]}],
                      "volumes": [{"name": "config", "configMap": {"name": epp}}]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[config, *deps]))
