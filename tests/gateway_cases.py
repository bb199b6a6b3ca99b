"""What the gateway tests read from a plan: its routes, backends, rules per model, agentgateway's
providers and pools (shared by tests/test_gateway*.py)."""

from __future__ import annotations

import json

import yaml

from components import names
from plan.engine import ROOT, Plan

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
POLICY = "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy"
BACKEND = "kubernetes:gateway.kgateway.dev/v1alpha1:Backend"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
RELEASE = "kubernetes:helm.sh/v3:Release"
PATHS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


def stack_config(stack: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def kgateway_gateway(plan: Plan):
    """The external entry's Gateway (prod also has agentgateway's, in no fixed order)."""
    (gw,) = [r for r in plan.by_type(GATEWAY) if r.inputs["metadata"]["name"] == names.GATEWAY_NAME]
    return gw


def routes(plan: Plan) -> list[dict]:
    return [r.inputs for r in plan.by_type(ROUTE)]


def backend_hosts(plan: Plan, name: str) -> list[str]:
    """The Service hosts a kgateway Backend sends to, in priority order."""
    by_name = {b.inputs["metadata"]["name"]: b.inputs["spec"] for b in plan.by_type(BACKEND)}
    spec = by_name[name]
    if spec["type"] == "Static":
        return [h["host"] for h in spec["static"]["hosts"]]
    return [h for g in spec["priorityGroups"] for ref in g["backendRefs"] for h in backend_hosts(plan, ref["name"])]


def primary_host(plan: Plan, ref: dict) -> str:
    if ref["kind"] == "Service":
        return f"{ref['name']}.{ref['namespace']}.svc.cluster.local"
    return backend_hosts(plan, ref["name"])[0]


def rules_for(plan: Plan, model: str, tenant: str | None = None) -> list[dict]:
    out = []
    for route in routes(plan):
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                headers = {h["name"]: h["value"] for h in match["headers"]}
                if headers.get("x-model-id") == model and headers.get("x-tenant-id") == tenant:
                    out.append((route, rule, match))
    return out


AGW_BACKEND = "kubernetes:agentgateway.dev/v1alpha1:AgentgatewayBackend"
AGW_POLICY = "kubernetes:agentgateway.dev/v1alpha1:AgentgatewayPolicy"


def forwards_to_agentgateway(ref: dict) -> bool:
    return ref["kind"] == "Service" and ref["name"] == names.AGENTGATEWAY_NAME and ref["port"] == names.GATEWAY_PORT


def llm_providers(plan: Plan, ref: dict) -> list[dict]:
    """The custom providers of an AgentgatewayBackend ref, in priority order (one without groups)."""
    ai = _named(plan, AGW_BACKEND)[(ref["namespace"], ref["name"])]["spec"]["ai"]
    if "provider" in ai:
        return [ai["provider"]]
    return [p for g in ai["groups"] for p in g["providers"]]


def pools_behind(plan: Plan, ref: dict) -> list[str]:
    """The InferencePools an AgentgatewayBackend ref sends to, in priority order."""
    out = []
    for p in llm_providers(plan, ref):
        pool = p["custom"]["backendRef"]
        assert (pool["group"], pool["kind"]) == ("inference.networking.k8s.io", "InferencePool")
        out.append(pool["name"])
    return out


def pool_rule(plan: Plan, model: str) -> dict:
    """The agentgateway Gateway's rule for a model id (on its pool route)."""
    found = [(route, rule) for route, rule, _ in rules_for(plan, model)
             if route["spec"]["parentRefs"][0]["name"] == names.AGENTGATEWAY_NAME]
    assert {r["metadata"]["name"] for r, _ in found} == {f"pool-{model}"}, model
    return found[0][1]


def _named(plan: Plan, typ: str) -> dict[tuple[str, str], dict]:
    return {(r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"]): r.inputs
            for r in plan.by_type(typ)}


def stack_raw(stack: str, **gateway_changes) -> dict[str, str]:
    """The stack file's agentic-platform values as Pulumi hands them over, the gateway section changed."""
    cfg = stack_config(stack)
    gw = {**cfg["agentic-platform:gateway"], **gateway_changes}
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in cfg.items()
           if k.startswith("agentic-platform:")}
    raw["gateway"] = json.dumps(gw)
    return raw
