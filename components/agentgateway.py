"""agentgateway as the inference gateway's second data plane (`inferenceRouting: agentgateway`): an
InferencePool and its endpoint picker (EPP) per vLLM model, a Gateway of class `agentgateway`, one
HTTPRoute per pool (x-model-id), JWT and local rate limits as AgentgatewayPolicies."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pulumi
import pulumi_kubernetes as k8s

from components import names
from components.config import GatewayConfig, TokenBucketConfig
from components.endpoint_picker import EPP_PORT, INFERENCE_GROUP, endpoint_picker, epp_name
from components.gateway_routes import GATEWAY_API, chunks, listener, parent_ref, route_settings, rule
from components.gateway_tenants import (
    LLM_FORMATS,
    LLM_ROUTES,
    claim,
    conditional_limits,
    salted_body_output,
    tenant_identity,
)
from components.k8s import (
    container_security_context,
    custom_object,
    helm_release,
    labels,
    pod_security_context,
    resources,
)
from components.models import ModelEndpoint

INFERENCE_API = "inference.networking.k8s.io/v1"
AGW_GROUP = "agentgateway.dev"
AGW_API = f"{AGW_GROUP}/v1alpha1"
AGW_CLASS = "agentgateway"                       # created by the agentgateway controller (its default)
AGW_GATEWAY = names.AGENTGATEWAY_NAME
RETRY_CODES = [500, 502, 503, 504]


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


@dataclass
class AgentgatewayPlane:
    """What the plane built: the pools, their pickers and routes, the policies."""
    inference_pools: dict[str, k8s.apiextensions.CustomResource]
    endpoint_pickers: dict[str, k8s.apps.v1.Deployment]
    pool_routes: dict[str, k8s.apiextensions.CustomResource]
    policies: list[k8s.apiextensions.CustomResource]
    gateway: k8s.apiextensions.CustomResource


@dataclass
class TenantContext:
    """Who the plane serves: the tenants' names and the secret key their cache salts derive from
    (None: no salting)."""
    tenants: Sequence[str]
    salt_key: pulumi.Output[str] | None


def agentgateway_plane(name: str, cfg: GatewayConfig, endpoints: dict[str, ModelEndpoint], parent: pulumi.Resource,
                       crds: list[pulumi.Resource], ns_deps: list[pulumi.Resource],
                       model_deps: list[pulumi.Resource], nodes: Any, tenancy: TenantContext) -> AgentgatewayPlane:
    """`crds`: the Gateway API and inference extension CRDs; `nodes`: where the controller runs."""
    ns = names.NS_GATEWAY

    def opts(*depends: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, depends_on=list(depends))

    agw_crds = helm_release(f"{name}-agentgateway-crds", "agentgateway-crds", namespace=ns, values={},
                            opts=opts(*crds, *ns_deps))
    controller = helm_release(f"{name}-agentgateway", "agentgateway", namespace=ns, skip_crds=True, values={
        # Off by default in the chart: without it the controller ignores InferencePool backends.
        "inferenceExtension": {"enabled": True},
        "controller": {"replicaCount": cfg.controller_replicas,
                       "podDisruptionBudget": {"minAvailable": 1} if cfg.controller_replicas > 1 else {}},
        "resources": resources("100m", "256Mi", cpu_limit="1", memory_limit="512Mi"),
        "securityContext": container_security_context(),
        "podSecurityContext": pod_security_context(10101),
    }, opts=opts(agw_crds, *ns_deps, *(nodes or ())))

    vllm = {n: e for n, e in endpoints.items() if e.engine == "vllm"}  # the EPP reads vLLM's metrics
    pickers, pools, llm_backends = {}, {}, {}
    for model, endpoint in vllm.items():
        pickers[model] = endpoint_picker(name, endpoint, parent, [*crds, *model_deps])
        pools[model] = custom_object(
            f"{name}-pool-{model}", INFERENCE_API, "InferencePool", model, namespace=endpoint.namespace,
            labels=labels(model, "inference-pool"), opts=opts(*crds, controller, *model_deps),
            spec={"selector": {"matchLabels": {names.MODEL_LABEL: model}},
                  "targetPorts": [{"number": endpoint.port}],
                  "endpointPickerRef": {"name": epp_name(model), "port": {"number": EPP_PORT},
                                        "failureMode": "FailOpen"}})
    for model, endpoint in vllm.items():
        # after its own pool and its fallback's (a priority group of the same backend)
        fallback = route_settings(cfg, model).fallback
        llm_backends[model] = _llm_backend(name, endpoint, vllm.get(fallback) if fallback else None,
                                           opts(agw_crds, pools[model], *([pools[fallback]] if fallback else []),
                                                *ns_deps))

    # --- the agentgateway Gateway: in-cluster only (ClusterIP), same listener rules as kgateway's
    agw_labels = labels(AGW_GATEWAY, "gateway-proxy")
    params = custom_object(
        f"{name}-agw-parameters", AGW_API, "AgentgatewayParameters", AGW_GATEWAY, namespace=ns,
        labels=agw_labels, opts=opts(agw_crds, *ns_deps),
        spec={"resources": resources(cfg.proxy.cpu, cfg.proxy.memory, cpu_limit=cfg.proxy.cpu_limit,
                                     memory_limit=cfg.proxy.memory_limit),
              "service": {"spec": {"type": "ClusterIP"}},
              # On the external path (kgateway forwards vLLM models here): as many proxies as kgateway's,
              # spread over zones, with a PDB. The chart's Deployment sets no replicas
              # (controller/pkg/helm/agentgateway/templates/deployment.yaml at v1.4.1: 1 by default).
              # Its pod template (_helpers.tpl podTemplate) sets no seccompProfile, which restricted Pod
              # Security (ai-gateway) rejects; the Deployment overlay (a strategic merge patch) adds it.
              "deployment": {"spec": {"replicas": cfg.proxy.replicas, "template": {"spec": {
                  "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                  "topologySpreadConstraints": [{
                      "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                      "whenUnsatisfiable": "ScheduleAnyway",
                      "labelSelector": {"matchLabels": {"app.kubernetes.io/name": AGW_GATEWAY}}}]}}}},
              **({"podDisruptionBudget": {"spec": {"minAvailable": 1}}} if cfg.proxy.replicas > 1 else {})})
    gateway = custom_object(
        f"{name}-agw-gateway", f"{GATEWAY_API}/v1", "Gateway", AGW_GATEWAY, namespace=ns,
        labels=labels(AGW_GATEWAY, "gateway"), opts=opts(controller, params, *ns_deps),
        spec={"gatewayClassName": AGW_CLASS,
              "infrastructure": {"parametersRef": {"group": AGW_GROUP, "kind": "AgentgatewayParameters",
                                                   "name": AGW_GATEWAY}},
              "listeners": [listener("http", names.GATEWAY_PORT)]})

    # --- routes: x-model-id -> the model's LLM backend (cross-namespace, hence a grant), which sends
    # to the InferencePool
    route_deps = [gateway, *ns_deps, *model_deps]
    for namespace in sorted({e.namespace for e in vllm.values()}):
        custom_object(
            f"{name}-pool-grant-{namespace}", f"{GATEWAY_API}/v1beta1", "ReferenceGrant", "ai-gateway-pools",
            namespace=namespace, labels=labels("ai-gateway-pools", "gateway-grant"), opts=opts(*crds, *route_deps),
            spec={"from": [{"group": GATEWAY_API, "kind": "HTTPRoute", "namespace": ns}],
                  "to": [{"group": AGW_GROUP, "kind": "AgentgatewayBackend"}]})
    routes = {model: custom_object(
        f"{name}-pool-route-{model}", f"{GATEWAY_API}/v1", "HTTPRoute", f"pool-{model}", namespace=ns,
        labels=labels(f"pool-{model}", "gateway-route"),
        opts=opts(*route_deps, *(llm_backends[m] for m in _route_models(cfg, model))),
        spec={"parentRefs": [parent_ref(AGW_GATEWAY)], "rules": [rule(cfg, model, pool_backend_refs(cfg, vllm, model))]})
        for model in vllm}
    policies = _policies(name, cfg, routes, opts(agw_crds, *ns_deps), gateway, tenancy)
    return AgentgatewayPlane(pools, pickers, routes, policies, gateway)


def llm_backend_name(model: str) -> str:
    return f"{model}-llm"


def pool_backend_refs(cfg: GatewayConfig, vllm: dict[str, ModelEndpoint], model: str) -> list[dict[str, Any]]:
    """A pool route's backends: the model's LLM backend, and with `routes[].canary` the canary's LLM
    backend at `weight` % (Gateway API weighted backendRefs; agentgateway v1.4.1 keeps each ref's
    weight, controller/pkg/agentgateway/translator/conversion.go buildAgwDestination, and the proxy
    picks one per request by weight, crates/agentgateway/src/proxy/httpproxy.rs select_backend)."""
    canary = route_settings(cfg, model).canary
    if canary is None:
        return [_backend_ref(vllm[model])]
    return [_backend_ref(vllm[model], 100 - canary.weight), _backend_ref(vllm[canary.model], canary.weight)]


def _backend_ref(endpoint: ModelEndpoint, weight: int | None = None) -> dict[str, Any]:
    return {"group": AGW_GROUP, "kind": "AgentgatewayBackend", "name": llm_backend_name(endpoint.name),
            "namespace": endpoint.namespace, **({"weight": weight} if weight is not None else {})}


def _route_models(cfg: GatewayConfig, model: str) -> list[str]:
    """The models whose LLM backends a pool route refers to: its own and its canary's."""
    canary = route_settings(cfg, model).canary
    return [model, *([canary.model] if canary else [])]


def llm_provider(endpoint: ModelEndpoint) -> dict[str, Any]:
    """One model's pool as a custom LLM provider. `model` is the name its vLLM serves
    (`--served-model-name`, components/model_engine.py): vLLM answers 404 to a request naming another
    model, so a canary's or fallback's share must be renamed on the way."""
    return {"custom": {"backendRef": {"group": INFERENCE_GROUP, "kind": "InferencePool", "name": endpoint.name},
                       "formats": LLM_FORMATS, "model": endpoint.name}}


# `routes[].fallback`: evict the primary's provider after 5 consecutive 5xx for 30 s (kgateway's outlier
# detection on its priority-groups Backend, the same figures); while evicted the next priority group serves.
# AgentgatewayBackend ai.groups "Groups in priority order" (agentgateway-crds v1.4.1); a retried request
# picks again after the eviction (crates/agentgateway/src/proxy/httpproxy.rs test
# llm_retry_evicts_failed_priority_group_before_next_attempt).
FAILOVER_HEALTH = {"unhealthyCondition": "response.code >= 500",
                   "eviction": {"consecutiveFailures": 5, "duration": "30s"}}


def llm_backend_spec(endpoint: ModelEndpoint, fallback: ModelEndpoint | None) -> dict[str, Any]:
    """`ai.provider` the model's pool; with a fallback, two priority groups: the model's pool (evicted
    while failing), then the fallback's (a custom provider's backendRef is namespace-local: config checks
    that both pools share a namespace)."""
    if fallback is None:
        return {"ai": {"provider": llm_provider(endpoint)}}
    return {"ai": {"groups": [
        {"providers": [{"name": endpoint.name, **llm_provider(endpoint), "policies": {"health": FAILOVER_HEALTH}}]},
        {"providers": [{"name": fallback.name, **llm_provider(fallback)}]}]}}


def _llm_backend(name: str, endpoint: ModelEndpoint, fallback: ModelEndpoint | None,
                 opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """The pool as an LLM provider (so agentgateway parses requests and counts their tokens), and which
    paths are which API."""
    model, ns = endpoint.name, endpoint.namespace
    backend = custom_object(
        f"{name}-llm-{model}", AGW_API, "AgentgatewayBackend", llm_backend_name(model), namespace=ns,
        labels=labels(llm_backend_name(model), "gateway-backend"), opts=opts,
        spec=llm_backend_spec(endpoint, fallback))
    custom_object(
        f"{name}-llm-routes-{model}", AGW_API, "AgentgatewayPolicy", llm_backend_name(model), namespace=ns,
        labels=labels(llm_backend_name(model), "gateway-policy"),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[backend])),
        spec={"targetRefs": [{"group": AGW_GROUP, "kind": "AgentgatewayBackend", "name": llm_backend_name(model)}],
              "backend": {"ai": {"routes": dict(LLM_ROUTES)}}})
    return backend


# Over a local limit agentgateway v1.4.1 answers 429 with x-ratelimit-reset (seconds) and no Retry-After
# (crates/agentgateway/src/proxy/mod.rs into_response: "Apply per-error headers"). Response
# transformations run on the proxy's own error responses too: proxy/httpproxy.rs `proxy` applies
# ResponsePolicies "unconditionally ... even on errors or direct responses" (only ext_proc is upstream-only).
# But a route's transformation is registered after its rate limit (apply_request_policies: local rate
# limit, then transformation), so a request-count 429 would skip it; the Gateway phase (`PreRouting`,
# translated to phase GATEWAY: controller/pkg/agentgateway/plugins/traffic_plugin.go `phase`) registers
# gateway_transformation in apply_gateway_policies, before any route. `coalesce` keeps an upstream
# Retry-After; a failed expression removes the header (crates/agentgateway/src/http/mod.rs apply_header),
# so a response with neither header gets none.
RETRY_AFTER = 'coalesce(response.headers["retry-after"], response.headers["x-ratelimit-reset"])'


def proxy_monitor(name: str, parent: pulumi.Resource, deps: list[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    """Prometheus scrapes the agentgateway proxies (`metrics`, 15020): their LLM token usage by tenant is
    the Cost Tracking dashboard's (agentgateway_gen_ai_client_token_usage, the `tenant` label of the
    metrics policy below)."""
    return custom_object(
        f"{name}-agw-podmonitor", "monitoring.coreos.com/v1", "PodMonitor", AGW_GATEWAY, namespace=names.NS_GATEWAY,
        labels={**labels(AGW_GATEWAY, "gateway-metrics"), "release": names.PROMETHEUS_RELEASE},
        spec={"selector": {"matchLabels": {"app.kubernetes.io/name": AGW_GATEWAY}},
              "namespaceSelector": {"matchNames": [names.NS_GATEWAY]},
              "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}]},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=deps))


def metrics_policy_spec(cfg: GatewayConfig) -> dict[str, Any]:
    """A `tenant` label on every proxy metric from the verified tenant claim (AgentgatewayPolicy
    `frontend.metrics.attributes.add`, agentgateway-crds v1.4.1: a failed expression gives "unknown").
    Low cardinality: one value per tenant."""
    return {"targetRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": AGW_GATEWAY}],
            "frontend": {"metrics": {"attributes": {"add": [{"name": "tenant", "expression": claim(cfg)}]}}}}


def retry_after_policy_spec() -> dict[str, Any]:
    return {"targetRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": AGW_GATEWAY}],
            "traffic": {"phase": "PreRouting", "transformation": {"response": {
                "set": [{"name": "retry-after", "value": RETRY_AFTER}]}}}}


def _policies(name: str, cfg: GatewayConfig, routes: dict[str, k8s.apiextensions.CustomResource],
              policy_opts: pulumi.ResourceOptions, gateway: pulumi.Resource,
              tenancy: TenantContext) -> list[k8s.apiextensions.CustomResource]:
    """JWT on the whole Gateway (and, with tenants, a known tenant claim required before any route);
    on every pool route the tenants' budgets and the platform limit, and the cache salt."""
    ns = names.NS_GATEWAY
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
    gateway_traffic: dict[str, Any] = {"jwtAuthentication": {"mode": "Strict", "providers": [provider]}}
    if tenancy.tenants:
        gateway_traffic["authorization"] = {"action": "Require", "policy": {
            "matchExpressions": [tenant_identity(cfg, tenancy.tenants)]}}
    policies = [custom_object(
        f"{name}-agw-jwt", AGW_API, "AgentgatewayPolicy", "jwt-auth", namespace=ns,
        labels=labels("jwt", "gateway-auth"),
        opts=pulumi.ResourceOptions.merge(policy_opts, pulumi.ResourceOptions(depends_on=[jwks_backend, gateway])),
        spec={"targetRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": AGW_GATEWAY}],
              "traffic": gateway_traffic})]
    policies.append(custom_object(
        f"{name}-agw-metrics", AGW_API, "AgentgatewayPolicy", "metrics", namespace=ns,
        labels=labels("metrics", "gateway-policy"),
        opts=pulumi.ResourceOptions.merge(policy_opts, pulumi.ResourceOptions(depends_on=[gateway])),
        spec=metrics_policy_spec(cfg)))
    policies.append(custom_object(
        f"{name}-agw-retry-after", AGW_API, "AgentgatewayPolicy", "retry-after", namespace=ns,
        labels=labels("retry-after", "gateway-policy"),
        opts=pulumi.ResourceOptions.merge(policy_opts, pulumi.ResourceOptions(depends_on=[gateway])),
        spec=retry_after_policy_spec()))
    for i, group in enumerate(chunks(list(routes))):
        traffic: dict[str, Any] = {
            "rateLimit": conditional_limits(cfg, tenancy.tenants, local_rate_limit(cfg.rate_limit))}
        if tenancy.salt_key is not None:
            traffic["transformation"] = {"request": {"body": salted_body_output(cfg, tenancy.salt_key)}}
        if cfg.retry_attempts > 0:
            traffic["retry"] = {"attempts": cfg.retry_attempts, "codes": RETRY_CODES}
        policies.append(custom_object(
            f"{name}-agw-limits-{i}", AGW_API, "AgentgatewayPolicy", f"limits-pool-routes-{i}", namespace=ns,
            labels=labels(f"limits-pool-routes-{i}", "gateway-policy"),
            opts=pulumi.ResourceOptions.merge(policy_opts, pulumi.ResourceOptions(
                depends_on=[routes[m] for m in group])),
            spec={"targetRefs": [{"group": GATEWAY_API, "kind": "HTTPRoute", "name": f"pool-{m}"} for m in group],
                  "traffic": traffic}))
    return policies
