"""Inference gateway layer: Gateway API CRDs, kgateway, the AWS Load Balancer Controller, the
`ai-inference-gateway` Gateway behind an NLB, the routes of components/gateway_routes.py (header
`x-model-id`, weighted canary, priority-group fallback, per-tenant routes), and kgateway
TrafficPolicies (JWT, token-bucket rate limits, retries). Optional (`inferenceRouting:
agentgateway`): the agentgateway data plane of components/agentgateway.py.

The layer takes its own config section plus the model serving layer's typed outputs (each model's
`ModelEndpoint`: namespace, Service, port, engine) and the tenancy layer's tenant names; it never
reads another layer's config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import names
from components.agentgateway import TenantContext, agentgateway_plane, proxy_monitor
from components.aws import pod_identity_role
from components.config import GatewayConfig, ModelConfig, TokenBucketConfig
from components.gateway_routes import (
    GATEWAY_API,
    KGATEWAY,
    KGATEWAY_API,
    MAX_TARGETS,
    TENANT_HEADER,
    ModelRoutes,
    chunks,
    forward_routes,
    listener,
)
from components.gateway_tenants import kgateway_serves, kgateway_tenant_bucket
from components.k8s import (
    PLATFORM_DIR,
    NodeSource,
    container_security_context,
    custom_object,
    helm_release,
    labels,
    meta,
    pod_security_context,
    resources,
    selector,
)
from components.models import ModelEndpoint
from domain.yamlfile import load_yaml_all

GATEWAY_CLASS = "kgateway"                       # created by the kgateway chart
RETRY_ON = ["5xx", "reset", "connect-failure"]
LBC_SERVICE_ACCOUNT = "aws-load-balancer-controller"
LBC_POLICY_FILE = PLATFORM_DIR / "iam" / "aws-load-balancer-controller.json"
CRD_DIRS = {"gateway-api": PLATFORM_DIR / "crds" / "gateway-api",
            "inference": PLATFORM_DIR / "crds" / "gateway-api-inference-extension"}
HTTPS_PORT = 443
# Where kgateway's Envoy binds the Gateway's 443 listener: listener ports below 1024 are moved up by
# 8000 so the proxy runs unprivileged (kgateway internal/kgateway/ports TranslatePort; the
# deployer's helm values give the proxy Service targetPort = TranslatePort(listener port)).
PROXY_HTTPS_PORT = HTTPS_PORT + 8000
LB = "service.beta.kubernetes.io/aws-load-balancer"
# The NLB's Service: TLS on 443 only (the kgateway proxy Service, with the in-cluster port 80, stays ClusterIP).
LB_SERVICE = f"{names.GATEWAY_NAME}-nlb"


@dataclass
class InferenceGatewayArgs:
    config: GatewayConfig
    endpoints: dict[str, ModelEndpoint]          # model serving's output: x-model-id -> endpoint
    tenants: Sequence[str]                       # tenancy's output: the tenants' names
    cluster_name: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    tags: dict[str, str]
    # Namespaces (tenancy layer) and each model's serving component by model name (model layer),
    # when those layers exist: the gateway's objects depend on them (a route on the models it routes to).
    namespaces: dict[str, pulumi.Resource] = field(default_factory=dict)
    model_dependencies: dict[str, pulumi.Resource] = field(default_factory=dict)
    # Where the controllers' pods run: kgateway and agentgateway (and the proxies, the endpoint
    # pickers) on Karpenter's platform NodePool, the Load Balancer Controller on the system nodes.
    platform_nodes: NodeSource | None = None
    system_nodes: NodeSource | None = None
    # The observability layer's Prometheus Operator CRDs (Observability.monitoring_crds, not
    # kube-prometheus-stack): the agentgateway proxies' PodMonitor waits for them.
    monitoring: pulumi.Resource | None = None


def endpoint_picker_namespaces(cfg: GatewayConfig | None, models: list[ModelConfig]) -> set[str]:
    """Namespaces that get an endpoint picker (inference routing: one per vLLM model); read by the
    composition for the tenancy layer's flows before any model is built."""
    if cfg is None or cfg.inference_routing != "agentgateway":
        return set()
    return {names.model_namespace(m) for m in models if m.engine == "vllm"}


def agentgateway_namespaces(cfg: GatewayConfig | None) -> set[str]:
    """Where the agentgateway proxies run (inference routing): the tenancy layer's scrape flow to them."""
    return {names.NS_GATEWAY} if cfg is not None and cfg.inference_routing == "agentgateway" else set()


def in_cluster_url() -> str:
    """What in-cluster callers (agents) use: kgateway names the proxy Service after the Gateway."""
    return f"http://{names.GATEWAY_NAME}.{names.NS_GATEWAY}.svc.cluster.local:{names.GATEWAY_PORT}"


@cache
def _crd_file(path: Path) -> tuple[dict[str, Any], ...]:
    # (libyaml: the pure-Python loader takes seconds on the Gateway API CRDs.)
    return tuple(d for d in load_yaml_all(path.read_text()) if d)


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """The CRDs of a vendored directory, read once per process (callers must not mutate them)."""
    return [d for path in sorted(directory.glob("*.yaml")) for d in _crd_file(path)]


def token_bucket(tb: TokenBucketConfig) -> dict[str, Any]:
    return {"tokenBucket": {"maxTokens": tb.max_tokens, "tokensPerFill": tb.tokens_per_fill,
                            "fillInterval": tb.fill_interval}}


class InferenceGateway(pulumi.ComponentResource):
    """kgateway behind an NLB, routes generated from the model endpoints, JWT and rate limits on
    every route."""

    in_cluster_url: str
    routes: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: InferenceGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:gateway:InferenceGateway", name, None, opts)
        self._config = args.config
        ns_deps = [args.namespaces[names.NS_GATEWAY]] if names.NS_GATEWAY in args.namespaces else []
        self._controllers(name, args, ns_deps)
        self._gateway(name, ns_deps)
        self.in_cluster_url = in_cluster_url()

        # --- routes
        # With tenant salting, vLLM models are served by agentgateway only (kgateway cannot set cache_salt).
        kgw_endpoints = {n: e for n, e in args.endpoints.items() if kgateway_serves(self._config, e)}
        forwarded = [n for n in args.endpoints if n not in kgw_endpoints]   # to agentgateway
        self._routes = ModelRoutes(name, self._config, kgw_endpoints, self,
                                   crds=[self.kgateway_crds, *self.gateway_api_crds],
                                   deps=[self.gateway, *ns_deps], model_deps=args.model_dependencies)
        self.reference_grants = self._routes.reference_grants()
        self.routes = self._routes.model_routes()
        self.tenant_routes = {t: self._routes.tenant_routes(t) for t in args.tenants} if kgw_endpoints else {}
        self.backends = self._routes.backends

        # --- policies: JWT on the whole Gateway (every route, present or future), token buckets
        # and retries per route
        self.jwt_policy = self._jwt(name, self._config, self._opts(self.kgateway_crds, *ns_deps),
                                    forward_token=bool(forwarded))
        self.rate_limit_policies = self._rate_limits(name)

        # --- optional inference-aware routing (agentgateway; kgateway dropped InferencePool in 2.2)
        self.inference_pools: dict[str, k8s.apiextensions.CustomResource] = {}
        self.endpoint_pickers: dict[str, k8s.apps.v1.Deployment] = {}
        self.pool_routes: dict[str, k8s.apiextensions.CustomResource] = {}
        self.forward_routes: dict[str, k8s.apiextensions.CustomResource] = {}
        if self._config.inference_routing == "agentgateway":
            self.inference_crds = self._crds(name, "inference")
            # The salts' secret key: RandomBytes, whose hex is a secret output (pulumi_random marks
            # `hex`/`base64` additional secret outputs), wrapped as a secret here as well.
            salt_key = None
            if self._config.prompt_cache.tenant_salt:
                key = random.RandomBytes(f"{name}-cache-salt-key", length=32, opts=pulumi.ResourceOptions(parent=self))
                salt_key = pulumi.Output.secret(key.hex)
            plane = agentgateway_plane(name, self._config, args.endpoints, self,
                                       [*self.gateway_api_crds, *self.inference_crds], ns_deps,
                                       list(args.model_dependencies.values()), args.platform_nodes,
                                       TenantContext(list(args.tenants), salt_key))
            self.inference_pools, self.endpoint_pickers = plane.inference_pools, plane.endpoint_pickers
            self.pool_routes, self.agentgateway_policies = plane.pool_routes, plane.policies
            self.agentgateway_gateway = plane.gateway
            self.proxy_monitor = proxy_monitor(name, self, [plane.gateway, *([args.monitoring] if args.monitoring else [])])
            self.forward_routes = forward_routes(name, self._config, forwarded, self,
                                                 [self.gateway, plane.gateway, *plane.pool_routes.values(), *ns_deps])

        self.register_outputs({"inClusterUrl": self.in_cluster_url})

    def _opts(self, *depends: pulumi.Resource | None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[d for d in depends if d is not None])

    def _controllers(self, name: str, args: InferenceGatewayArgs, gw_ns_deps: list[pulumi.Resource]) -> None:
        """kgateway (its CRDs in a release of their own) and the AWS Load Balancer Controller."""
        cfg, ns, opts_ = self._config, names.NS_GATEWAY, self._opts
        # Gateway API CRDs (vendored upstream YAML; CRDs owned once, here)
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

    def _gateway(self, name: str, gw_ns_deps: list[pulumi.Resource]) -> None:
        cfg, ns, opts_ = self._config, names.NS_GATEWAY, self._opts
        # --- the Gateway: proxy settings through GatewayParameters. Its Service stays in-cluster
        # (ClusterIP): the AWS Load Balancer Controller gives an NLB one listener per Service port,
        # so a LoadBalancer Service with the plain-HTTP port 80 would put bearer tokens on the wire in
        # clear. The NLB gets a Service of its own below, with 443 (TLS) only.
        lb = cfg.load_balancer
        listeners = [listener("http", names.GATEWAY_PORT)]
        if lb.certificate_arn is not None:
            # The NLB ends TLS and forwards plain HTTP to this listener, so it is an HTTP listener.
            listeners.append(listener("https", HTTPS_PORT))
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
        # Not after the Gateway (no output used): its await lasts until the proxy pods are Ready
        # (service.go) while the NLB is provisioned meanwhile; after the LBC (docstring below).
        self.load_balancer = self._load_balancer(name, cfg, proxy_labels, opts_(self.lbc, *gw_ns_deps))

    def _rate_limits(self, name: str) -> list[k8s.apiextensions.CustomResource]:
        """The platform bucket on the model routes (16 per policy), each tenant's bucket on its
        routes (policy `limits-tenant-<t>`, then `limits-tenant-<t>.<n>` past 16 routes)."""
        cfg, out = self._config, []
        for i, group in enumerate(chunks(list(self.routes))):
            deps = self._opts(self.kgateway_crds, *[self.routes[m] for m in group])
            out.append(self._limits(f"{name}-limits-{i}", f"model-routes-{i}", [f"model-{m}" for m in group],
                                    cfg.rate_limit, cfg, deps))
        for tenant, routes in self.tenant_routes.items():
            for i, group in enumerate(chunks(list(routes), MAX_TARGETS)):
                policy = f"tenant-{tenant}" if i == 0 else f"tenant-{tenant}.{i}"
                bucket = kgateway_tenant_bucket(cfg, tenant)
                out.append(self._limits(f"{name}-limits-{policy}", policy, group, bucket, cfg,
                                        self._opts(self.kgateway_crds, *[routes[r] for r in group])))
        return out

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

    def _jwt(self, name: str, cfg: GatewayConfig, opts: pulumi.ResourceOptions,
             forward_token: bool) -> k8s.apiextensions.CustomResource:
        """`forward_token`: keep the JWT on the request (kgateway-crds v2.4.3 GatewayExtension
        `jwt.providers[].forwardToken`: "If false or not set, the header containing the token will be
        removed"), for agentgateway, which verifies it again and reads the tenant claim from it."""
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
        if forward_token:
            provider["forwardToken"] = True
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

