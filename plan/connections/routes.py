"""The gateway proxies -> the backends of the routes attached to their Gateway (Services, kgateway
Backends, InferencePools) and -> the addresses in gateway extensions and policies."""

from __future__ import annotations

from typing import Any

from plan.connections.derivation import Derivation, backend_objects
from plan.reachability import (
    Pod,
    as_int,
)


def _gateway_pods(d: Derivation, gw: Any) -> list[Pod]:
    return d.pods_of_object(gw) or d.pods_where(gw.namespace, {"gateway.networking.k8s.io/gateway-name": gw.name})


def _route_backend(d: Derivation, srcs: list[Pod], ref: dict[str, Any], route_ns: str, why: str, depth: int = 0) -> None:
    kind, group = ref.get("kind", "Service"), ref.get("group", "")
    ns, name = ref.get("namespace") or route_ns, ref.get("name")
    if kind == "Service" and group in ("", "core"):
        d.to_service(srcs, d.cluster.service(ns, name), as_int(ref.get("port")) or ref.get("port"), why,
                     f"{ns}/Service/{name}", direct=True)
    elif kind == "Backend" and depth < 4:   # kgateway Backend: static hosts, priority groups of Backends
        for b in backend_objects(d, "Backend", ns, name):
            spec = b.manifest.get("spec") or {}
            for h in ((spec.get("static") or {}).get("hosts") or []):
                d.to_address(srcs, str(h.get("host")), as_int(h.get("port")), why)
            for group_ in spec.get("priorityGroups") or []:
                for inner in group_.get("backendRefs") or []:
                    _route_backend(d, srcs, {"kind": "Backend", **inner}, ns, why, depth + 1)
    elif kind == "AgentgatewayBackend" and depth < 4:
        # agentgateway: a static host, or an LLM backend whose providers (one, or priority groups)
        # send to a namespace-local Service or InferencePool (agentgateway-crds v1.4.1 `ai.provider`,
        # `ai.groups[].providers[]`, `custom.backendRef`)
        for b in backend_objects(d, "AgentgatewayBackend", ns, name):
            spec = b.manifest.get("spec") or {}
            static = spec.get("static") or {}
            if static.get("host"):
                d.to_address(srcs, str(static["host"]), as_int(static.get("port")), why)
            ai = spec.get("ai") or {}
            providers = [ai["provider"]] if ai.get("provider") else [
                p for g in ai.get("groups") or [] for p in g.get("providers") or []]
            for provider in providers:
                inner = (provider.get("custom") or {}).get("backendRef")
                if inner:
                    _route_backend(d, srcs, {**inner, "namespace": ns}, ns, why, depth + 1)
    elif kind == "InferencePool":
        for pool in backend_objects(d, "InferencePool", ns, name):
            spec = pool.manifest.get("spec") or {}
            sel = spec.get("selector") or {}
            sel = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
            ports = [as_int(p.get("number")) for p in spec.get("targetPorts") or []] or [as_int(spec.get("targetPortNumber"))]
            for pod in d.pods_where(ns, {k: str(v) for k, v in sel.items()}):
                for n in ports:
                    if n:
                        for s in srcs:
                            d.need(s, pod, n, "TCP", f"{why} (InferencePool {name})")
            epp = spec.get("endpointPickerRef") or spec.get("extensionRef") or {}
            if epp.get("name"):
                port = as_int((epp.get("port") or {}).get("number")) or as_int(epp.get("portNumber")) or 9002
                d.to_service(srcs, d.cluster.service(ns, epp["name"]), port, f"{why} (endpoint picker of {name})",
                             f"{ns}/Service/{epp['name']}")


def routes(d: Derivation) -> None:
    gateways = {(o.namespace, o.name): o for o in d.objects if o.kind == "Gateway" and o.group == "gateway.networking.k8s.io"}
    for route in (o for o in d.objects if o.kind in ("HTTPRoute", "GRPCRoute") and o.group == "gateway.networking.k8s.io"):
        spec = route.manifest.get("spec") or {}
        for parent in spec.get("parentRefs") or []:
            if parent.get("kind", "Gateway") != "Gateway":
                continue
            gw = gateways.get((parent.get("namespace") or route.namespace, parent.get("name")))
            if gw is None:
                continue
            srcs = _gateway_pods(d, gw)
            if not srcs:
                d.unresolved.append({"from": f"{gw.namespace}/Gateway/{gw.name}", "to": route.ref,
                                     "why": "gateway -> route backends", "problem": "no proxy pods of this Gateway"})
                continue
            for rule in spec.get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    _route_backend(d, srcs, ref, route.namespace, f"gateway -> {route.kind} {route.namespace}/{route.name}")


def gateway_extensions(d: Derivation) -> None:
    """The proxies of a namespace's Gateways -> the addresses in its gateway extensions and policies
    (e.g. a JWT provider's remote JWKS, by URL or by a Backend)."""
    kinds = {"GatewayExtension", "TrafficPolicy", "AgentgatewayPolicy", "BackendConfigPolicy"}
    proxies: dict[str | None, list[Pod]] = {}   # a namespace's Gateways' pods
    for gw in d.objects:
        if gw.kind == "Gateway" and gw.group == "gateway.networking.k8s.io":
            proxies.setdefault(gw.namespace, []).extend(_gateway_pods(d, gw))
    for o in d.objects:
        if o.kind not in kinds:
            continue
        srcs = proxies.get(o.namespace, [])
        if not srcs:
            continue
        stack: list[Any] = [o.manifest.get("spec") or {}]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("backendRef")
                if isinstance(ref, dict) and ref.get("kind") in ("Backend", "AgentgatewayBackend"):
                    _route_backend(d, srcs, ref, o.namespace, f"gateway -> {o.kind} {o.namespace}/{o.name}")
                    continue   # the Backend is where it connects (the URL is what it asks for)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str) and "://" in node:
                d.to_url(srcs, node, f"gateway -> {o.kind} {o.namespace}/{o.name}")
