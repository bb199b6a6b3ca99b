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
import yaml

from components import names
from components.config import GatewayConfig, TokenBucketConfig
from components.gateway_routes import GATEWAY_API, chunks, listener, parent_ref, rule
from components.gateway_tenants import LLM_FORMATS, LLM_ROUTES, conditional_limits, salted_body_output, tenant_identity
from components.k8s import (
    container_security_context,
    custom_object,
    helm_release,
    labels,
    platform_data,
    pod_security_context,
    resources,
)
from components.models import ModelEndpoint

INFERENCE_API = "inference.networking.k8s.io/v1"
INFERENCE_GROUP = "inference.networking.k8s.io"
AGW_GROUP = "agentgateway.dev"
AGW_API = f"{AGW_GROUP}/v1alpha1"
AGW_CLASS = "agentgateway"                       # created by the agentgateway controller (its default)
AGW_GATEWAY = "ai-inference-agentgateway"
RETRY_CODES = [500, 502, 503, 504]
EPP_PORT = 9002                                  # the GAIE endpoint picker's gRPC (ext-proc) port
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
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


def epp_name(model: str) -> str:
    return f"{model}-epp"


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
        llm_backends[model] = _llm_backend(name, endpoint, opts(agw_crds, pools[model], *ns_deps))

    # --- the agentgateway Gateway: in-cluster only (ClusterIP), same listener rules as kgateway's
    agw_labels = labels(AGW_GATEWAY, "gateway-proxy")
    params = custom_object(
        f"{name}-agw-parameters", AGW_API, "AgentgatewayParameters", AGW_GATEWAY, namespace=ns,
        labels=agw_labels, opts=opts(agw_crds, *ns_deps),
        spec={"resources": resources(cfg.proxy.cpu, cfg.proxy.memory, cpu_limit=cfg.proxy.cpu_limit,
                                     memory_limit=cfg.proxy.memory_limit),
              "service": {"spec": {"type": "ClusterIP"}},
              # The proxy's pod template (controller/pkg/helm/agentgateway/templates/_helpers.tpl
              # podTemplate at v1.4.1) sets no seccompProfile, which restricted Pod Security (ai-gateway)
              # rejects; the Deployment overlay (a strategic merge patch) adds it.
              "deployment": {"spec": {"template": {"spec": {"securityContext": {
                  "seccompProfile": {"type": "RuntimeDefault"}}}}}}})
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
        labels=labels(f"pool-{model}", "gateway-route"), opts=opts(*route_deps, llm_backends[model]),
        spec={"parentRefs": [parent_ref(AGW_GATEWAY)],
              "rules": [rule(cfg, model, [{"group": AGW_GROUP, "kind": "AgentgatewayBackend",
                                           "name": llm_backend_name(model), "namespace": endpoint.namespace}])]})
        for model, endpoint in vllm.items()}
    policies = _policies(name, cfg, routes, opts(agw_crds, *ns_deps), gateway, tenancy)
    return AgentgatewayPlane(pools, pickers, routes, policies, gateway)


def llm_backend_name(model: str) -> str:
    return f"{model}-llm"


def _llm_backend(name: str, endpoint: ModelEndpoint, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """The pool as an LLM provider (so agentgateway parses requests and counts their tokens), and which
    paths are which API."""
    model, ns = endpoint.name, endpoint.namespace
    backend = custom_object(
        f"{name}-llm-{model}", AGW_API, "AgentgatewayBackend", llm_backend_name(model), namespace=ns,
        labels=labels(llm_backend_name(model), "gateway-backend"), opts=opts,
        spec={"ai": {"provider": {"custom": {
            "backendRef": {"group": INFERENCE_GROUP, "kind": "InferencePool", "name": model},
            "formats": LLM_FORMATS}}}})
    custom_object(
        f"{name}-llm-routes-{model}", AGW_API, "AgentgatewayPolicy", llm_backend_name(model), namespace=ns,
        labels=labels(llm_backend_name(model), "gateway-policy"),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[backend])),
        spec={"targetRefs": [{"group": AGW_GROUP, "kind": "AgentgatewayBackend", "name": llm_backend_name(model)}],
              "backend": {"ai": {"routes": dict(LLM_ROUTES)}}})
    return backend


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


def endpoint_picker(name: str, endpoint: ModelEndpoint, parent: pulumi.Resource,
                    deps: list[pulumi.Resource]) -> k8s.apps.v1.Deployment:
    """The GAIE endpoint picker of one pool, as the upstream `inferencepool` chart (v1.5.0)
    declares it, but with the restricted security context the namespace enforces (the chart
    has no values for it)."""
    model, ns, epp = endpoint.name, endpoint.namespace, epp_name(endpoint.name)
    lbl = labels(epp, "endpoint-picker", version=EPP_IMAGE["tag"])
    select = {"app.kubernetes.io/name": epp}
    child = pulumi.ResourceOptions(parent=parent, depends_on=deps)
    md = k8s.meta.v1.ObjectMetaArgs
    k8s.core.v1.ServiceAccount(f"{name}-epp-sa-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                               automount_service_account_token=True, opts=child)
    role = k8s.rbac.v1.Role(f"{name}-epp-role-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                            rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
                                   {"apiGroups": [INFERENCE_GROUP], "resources": ["inferencepools"],
                                    "verbs": ["get", "watch", "list"]},
                                   {"apiGroups": ["inference.networking.x-k8s.io"],
                                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                                    "verbs": ["get", "watch", "list"]}], opts=child)
    k8s.rbac.v1.RoleBinding(f"{name}-epp-binding-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": epp},
                            subjects=[{"kind": "ServiceAccount", "name": epp, "namespace": ns}],
                            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]))
    config = k8s.core.v1.ConfigMap(f"{name}-epp-config-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                                   data={EPP_CONFIG_FILE: yaml.safe_dump(EPP_PLUGINS, sort_keys=False)}, opts=child)
    k8s.core.v1.Service(f"{name}-epp-svc-{model}", metadata=md(name=epp, namespace=ns, labels=lbl), spec={
        "selector": select,
        "ports": [{"name": "grpc-ext-proc", "port": EPP_PORT, "targetPort": EPP_PORT, "appProtocol": "http2"},
                  {"name": "http-metrics", "port": EPP_METRICS_PORT, "targetPort": EPP_METRICS_PORT}]}, opts=child)
    grpc_probe = {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}}
    return k8s.apps.v1.Deployment(
        f"{name}-epp-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
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
                      "args": ["--pool-name", model, "--pool-namespace", ns, "--pool-group", INFERENCE_GROUP,
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
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[config, *deps]))
