"""The inference gateway's routing: HTTPRoute rules from the model serving layer's endpoints
(header `x-model-id`, per tenant also `x-tenant-id`), weighted canaries, priority-group fallbacks
(kgateway Backends with health checks) and the ReferenceGrants the cross-namespace refs need.

A model route holds one rule; a tenant's routes hold one rule per model, split over as many
HTTPRoutes as the Gateway API's caps need (any number of models routes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import names
from components.config import GatewayConfig, ModelRouteConfig
from components.gateway_tenants import owner_only
from components.k8s import custom_object, labels
from components.models import ModelEndpoint

GATEWAY_API = "gateway.networking.k8s.io"
KGATEWAY = "gateway.kgateway.dev"
KGATEWAY_API = f"{KGATEWAY}/v1alpha1"
# The OpenAI-compatible paths both vLLM and TGI serve.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
MODEL_HEADER = "x-model-id"
TENANT_HEADER = "x-tenant-id"
# Gateway API v1 HTTPRoute (platform/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml):
# `spec.rules` maxItems 16, and the CEL rule on it "the total number of matches across all rules in
# a route must be less than 128" (its expression sums the rules' match counts and compares <= 128).
MAX_ROUTE_RULES = 16
MAX_ROUTE_MATCHES = 128
RULES_PER_ROUTE = min(MAX_ROUTE_RULES, MAX_ROUTE_MATCHES // len(MODEL_PATHS))
# kgateway TrafficPolicy `spec.targetRefs` maxItems 16 (kgateway-crds v2.4.3,
# gateway.kgateway.dev_trafficpolicies.yaml); agentgateway's AgentgatewayPolicy has the same cap.
MAX_TARGETS = 16


def chunks(items: list[Any], size: int = MAX_TARGETS) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def tenant_route_name(tenant: str, part: int) -> str:
    """The HTTPRoute holding a tenant's `part`-th group of models. The first keeps the name it had
    before routes were split (no replacement on upgrade); the others add `.<part>`: a tenant name is
    a DNS label (it names a namespace) and cannot contain a dot, so no two tenants' names collide
    (`tenant-a.1` is tenant a's second route, never a tenant called `a.1`)."""
    return f"tenant-{tenant}" if part == 0 else f"tenant-{tenant}.{part}"


def route_matches(model: str, tenant: str | None = None) -> list[dict[str, Any]]:
    headers = [{"type": "Exact", "name": MODEL_HEADER, "value": model}]
    if tenant is not None:
        headers.append({"type": "Exact", "name": TENANT_HEADER, "value": tenant})
    return [{"path": {"type": "Exact", "value": p}, "headers": headers} for p in MODEL_PATHS]


def plain_route(model: str) -> ModelRouteConfig:
    """A model's route when config says nothing about it: no canary, no fallback."""
    return ModelRouteConfig.model_validate({"model": model})


def route_settings(cfg: GatewayConfig, model: str) -> ModelRouteConfig:
    """A model's `routes[]` entry, or a plain route."""
    return next((r for r in cfg.routes if r.model == model), None) or plain_route(model)


def service_host(endpoint: ModelEndpoint) -> str:
    return f"{endpoint.service}.{endpoint.namespace}.svc.cluster.local"


def parent_ref(gateway: str = names.GATEWAY_NAME) -> dict[str, Any]:
    return {"group": GATEWAY_API, "kind": "Gateway", "name": gateway, "namespace": names.NS_GATEWAY}


def listener(name: str, port: int) -> dict[str, Any]:
    # Only namespaces labelled for gateway access may attach routes (ai-gateway itself must
    # carry the label: the generated routes live there).
    return {"name": name, "port": port, "protocol": "HTTP",
            "allowedRoutes": {"kinds": [{"group": GATEWAY_API, "kind": "HTTPRoute"}],
                              "namespaces": {"from": "Selector", "selector": {
                                  "matchLabels": {names.GATEWAY_ACCESS_LABEL: "true"}}}}}


def rule(cfg: GatewayConfig, model: str, backend_refs: list[dict[str, Any]],
         tenant: str | None = None) -> dict[str, Any]:
    return {"name": model, "matches": route_matches(model, tenant), "backendRefs": backend_refs,
            "timeouts": {"request": cfg.request_timeout, "backendRequest": cfg.backend_timeout}}


# The client's JWT (the JWT provider's default token source, the Authorization header) is kept on
# the request for the agentgateway hop only (forwardToken, components/gateway.py `_jwt`), which
# verifies it again; a model server kgateway routes to directly (TGI, vLLM without agentgateway)
# has no use for a tenant's bearer token. A Gateway API RequestHeaderModifier becomes the Envoy
# route's request_headers_to_remove (kgateway pkg/krtcollections/builtin.go at the pinned CRDs'
# commit 061bfeaf), applied by the router as it forwards: after the jwt_authn filter has verified
# the token and copied its tenant claim to x-tenant-id.
DROP_CLIENT_TOKEN = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["Authorization"]}}


def model_rule(cfg: GatewayConfig, model: str, backend_refs: list[dict[str, Any]],
               tenant: str | None = None) -> dict[str, Any]:
    """A rule of a route straight to model Services: the client's token dropped."""
    return {**rule(cfg, model, backend_refs, tenant), "filters": [dict(DROP_CLIENT_TOKEN)]}


FORWARD_ROUTE = "via-agentgateway"


def forward_routes(name: str, cfg: GatewayConfig, models: list[str], parent: pulumi.Resource,
                   deps: list[pulumi.Resource]) -> dict[str, k8s.apiextensions.CustomResource]:
    """kgateway's routes of the models the agentgateway data plane serves (`inferenceRouting:
    agentgateway`): x-model-id -> the agentgateway Gateway's Service (same namespace, no grant), which
    checks the tenant claim, applies the tenant's budget, overwrites cache_salt and picks the pool
    endpoint. So the NLB (kgateway) and the in-cluster gatewayUrl stay the one entry. No kgateway rate
    limit or retry on them: agentgateway does both, per tenant (retries at both hops would multiply).
    Split as the tenant routes are (`via-agentgateway`, `via-agentgateway.1`, ...)."""
    backend = [{"group": "", "kind": "Service", "name": names.AGENTGATEWAY_NAME, "port": names.GATEWAY_PORT}]
    out: dict[str, k8s.apiextensions.CustomResource] = {}
    for part, group in enumerate(chunks(models, RULES_PER_ROUTE)):
        route = FORWARD_ROUTE if part == 0 else f"{FORWARD_ROUTE}.{part}"
        out[route] = custom_object(
            f"{name}-route-{route}", f"{GATEWAY_API}/v1", "HTTPRoute", route, namespace=names.NS_GATEWAY,
            labels=labels(route, "gateway-route"), opts=pulumi.ResourceOptions(parent=parent, depends_on=deps),
            spec={"parentRefs": [parent_ref()], "rules": [rule(cfg, m, backend) for m in group]})
    return out


@dataclass
class ModelRoutes:
    """Builds the kgateway routes of one Gateway and the Backends/grants they refer to."""
    name: str                                  # the component's resource-name prefix
    cfg: GatewayConfig
    endpoints: dict[str, ModelEndpoint]
    parent: pulumi.Resource
    crds: list[pulumi.Resource]                # kgateway's CRDs (Backends) and Gateway API's (grants)
    deps: list[pulumi.Resource]                # the Gateway, its namespace
    model_deps: dict[str, pulumi.Resource] = field(default_factory=dict)   # each model's serving component
    model_route: dict[str, pulumi.Resource] = field(default_factory=dict)   # model -> its HTTPRoute
    backends: dict[str, k8s.apiextensions.CustomResource] = field(default_factory=dict)
    grants: dict[str, k8s.apiextensions.CustomResource] = field(default_factory=dict)

    def _opts(self, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.parent, depends_on=list(depends))

    def settings(self, model: str) -> ModelRouteConfig:
        return route_settings(self.cfg, model)

    def _own(self, model: str) -> list[pulumi.Resource]:
        return [self.model_deps[model]] if model in self.model_deps else []

    def _serving(self, *models: str) -> list[pulumi.Resource]:
        """The serving components of `models` and of their fallbacks and canaries: what a route to
        them waits for (not every model: each route's dependencies stay as few as its backends)."""
        out: dict[str, pulumi.Resource] = {}
        for m in models:
            route = self.settings(m)
            for used in (m, route.fallback, route.canary.model if route.canary else None):
                if used in self.model_deps:
                    out[used] = self.model_deps[used]
        return list(out.values())

    def model_routes(self) -> dict[str, k8s.apiextensions.CustomResource]:
        """One HTTPRoute per model (header x-model-id), one rule each; none for a model routed for its
        own tenant only (gateway_tenants.owner_only)."""
        self.model_route = {model: custom_object(
            f"{self.name}-route-{model}", f"{GATEWAY_API}/v1", "HTTPRoute", f"model-{model}",
            namespace=names.NS_GATEWAY, labels=labels(f"model-{model}", "gateway-route"),
            opts=self._opts(*self.deps, *self._serving(model)),
            spec={"parentRefs": [parent_ref()],
                  "rules": [model_rule(self.cfg, model, self.backend_refs(self.settings(model)))]})
            for model, endpoint in self.endpoints.items() if not owner_only(self.cfg, endpoint)}
        return self.model_route

    def tenant_routes(self, tenant: str) -> dict[str, k8s.apiextensions.CustomResource]:
        """A tenant's routes: the same models, matched also on x-tenant-id (a more specific header
        match wins over the model route), so each tenant gets a token bucket of its own; split
        into HTTPRoutes of at most RULES_PER_ROUTE rules. Keyed by route name."""
        out: dict[str, k8s.apiextensions.CustomResource] = {}
        models = [m for m, e in self.endpoints.items() if not owner_only(self.cfg, e) or e.tenant == tenant]
        for part, group in enumerate(chunks(models, RULES_PER_ROUTE)):
            route = tenant_route_name(tenant, part)
            # The first part keeps its pre-split resource name (URN unchanged).
            resource = f"{self.name}-route-{route}"
            out[route] = custom_object(
                resource, f"{GATEWAY_API}/v1", "HTTPRoute", route, namespace=names.NS_GATEWAY,
                labels=labels(route, "gateway-route", extra={names.TENANT_LABEL: tenant}),
                # Not after its models: a rule whose backend does not exist yet answers 500 for that
                # backend alone, and the route's other rules serve (Gateway API HTTPRoute,
                # HTTPBackendRef: "requests that would have otherwise been routed to an invalid
                # backend" get a 500; platform/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml
                # backendRefs description), and no tenant asks for a model before it exists. Waiting
                # for them would be tenants x models dependencies, each walked by the SDK's cycle
                # check (pulumi/runtime/resource_cycle_breaker.py): the program's one quadratic step
                # (tests/test_scaling.py). Each model's own route still waits for its model.
                opts=self._opts(*self.deps),
                spec={"parentRefs": [parent_ref()],
                      "rules": [model_rule(self.cfg, m, self.backend_refs(self.settings(m)), tenant) for m in group]})
        return out

    def _service_ref(self, endpoint: ModelEndpoint, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": endpoint.service, "namespace": endpoint.namespace,
                "port": endpoint.port, "weight": weight}

    def backend_refs(self, route: ModelRouteConfig) -> list[dict[str, Any]]:
        primary = self.endpoints[route.model]
        canary_weight = route.canary.weight if route.canary else 0
        if route.fallback is not None:
            backend = self._failover(primary, self.endpoints[route.fallback])
            refs = [{"group": KGATEWAY, "kind": "Backend", "name": backend, "weight": 100 - canary_weight}]
        else:
            refs = [self._service_ref(primary, 100 - canary_weight)]
        if route.canary is not None:
            refs.append(self._service_ref(self.endpoints[route.canary.model], canary_weight))
        return refs

    def _static_backend(self, endpoint: ModelEndpoint) -> str:
        backend = f"svc-{endpoint.name}"
        if backend not in self.backends:
            self.backends[backend] = custom_object(
                f"{self.name}-backend-{backend}", KGATEWAY_API, "Backend", backend, namespace=names.NS_GATEWAY,
                labels=labels(backend, "gateway-backend"), opts=self._opts(*self.crds, *self.deps, *self._own(endpoint.name)),
                spec={"type": "Static", "static": {"hosts": [{"host": service_host(endpoint),
                                                              "port": endpoint.port}]}})
        return backend

    def _failover(self, primary: ModelEndpoint, fallback: ModelEndpoint) -> str:
        """A priority-groups Backend: the fallback model's servers get traffic only while the
        primary's group is unhealthy (active health check on /health plus outlier detection)."""
        backend = f"{primary.name}-failover"
        if backend in self.backends:
            return backend
        groups = [self._static_backend(primary), self._static_backend(fallback)]
        self.backends[backend] = custom_object(
            f"{self.name}-backend-{backend}", KGATEWAY_API, "Backend", backend, namespace=names.NS_GATEWAY,
            labels=labels(backend, "gateway-backend"), opts=self._opts(*[self.backends[g] for g in groups]),
            spec={"type": "PriorityGroups", "priorityGroups": [{"backendRefs": [{"name": g}]} for g in groups]})
        custom_object(
            f"{self.name}-health-{backend}", KGATEWAY_API, "BackendConfigPolicy", backend,
            namespace=names.NS_GATEWAY, labels=labels(backend, "gateway-backend"),
            opts=self._opts(self.backends[backend]),
            spec={"targetRefs": [{"group": KGATEWAY, "kind": "Backend", "name": backend}],
                  # vLLM and TGI both answer /health once the model is loaded.
                  "healthCheck": {"interval": "10s", "timeout": "5s", "unhealthyThreshold": 3,
                                  "healthyThreshold": 2, "http": {"path": "/health"}},
                  # Each group is one Service address, so ejecting it must be allowed (100%).
                  "outlierDetection": {"consecutive5xx": 5, "interval": "10s", "baseEjectionTime": "30s",
                                       "maxEjectionPercent": 100}})
        return backend

    def reference_grants(self) -> dict[str, k8s.apiextensions.CustomResource]:
        """HTTPRoutes live in ai-gateway; each model namespace grants them its Services."""
        for namespace in sorted({e.namespace for e in self.endpoints.values()}):
            self.grants[namespace] = custom_object(
                f"{self.name}-grant-{namespace}", f"{GATEWAY_API}/v1beta1", "ReferenceGrant", "ai-gateway-routes",
                namespace=namespace, labels=labels("ai-gateway-routes", "gateway-grant"),
                opts=self._opts(*self.crds, *self.deps, *self._serving(*(m for m, e in self.endpoints.items()
                                                                          if e.namespace == namespace))),
                spec={"from": [{"group": GATEWAY_API, "kind": "HTTPRoute", "namespace": names.NS_GATEWAY}],
                      "to": [{"group": "", "kind": "Service"}]})
        return self.grants
