"""The reachability report of the prod plan matches the isolation intent, and widening a policy
breaks the intent check."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

from plan.engine import ROOT
from plan.reachability import compute, of_plan, policies_by_namespace

PLATFORM = {"ai-gateway", "ai-agents", "ai-inference", "ai-data", "observability", "observability-node"}
# Deliberate, narrow exceptions to the intent, (from, to) -> the only ports allowed. KEDA's operator
# (kube-system) reads the agents' task-queue length in Valkey for their redis scaler triggers: it must
# reach ai-data, on the Redis port and nothing else (not Milvus, not the exporters).
NARROW_EXCEPTIONS: dict[tuple[str, str], set[str]] = {("kube-system", "ai-data"): {"6379/TCP"}}


def tenants_of(plan) -> list[str]:
    return sorted(r.inputs["metadata"]["name"] for r in plan.by_type("kubernetes:core/v1:Namespace")
                  if "agentic.platform/tenant" in (r.inputs["metadata"].get("labels") or {}))


def intent_violations(reach: list[dict], tenants: list[str]) -> list[str]:
    """The issue's intent: tenants never reach each other; only agents, tenants and monitoring reach
    ai-data; only the gateway, agents and monitoring reach the model servers in ai-inference."""
    allowed_in = {"ai-data": {"ai-agents", "observability", *tenants},
                  "ai-inference": {"ai-gateway", "ai-agents", "observability"}}
    bad = []
    for e in reach:
        src, dst = e["from"], e["to"]
        if src == dst:
            continue
        if src in tenants and dst in tenants:
            bad.append(f"tenant {src} reaches tenant {dst} on {e['ports']}")
        narrow = NARROW_EXCEPTIONS.get((src, dst))
        if narrow is not None and set(e["ports"]) <= narrow:
            continue
        if dst in allowed_in and src not in allowed_in[dst]:
            bad.append(f"{src} reaches {dst} on {e['ports']}")
    return bad


def test_prod_has_two_tenants(prod_plan):
    assert len(tenants_of(prod_plan)) >= 2


def test_prod_reachability_matches_intent(prod_plan):
    reach = of_plan(prod_plan)
    assert intent_violations(reach, tenants_of(prod_plan)) == []
    pairs = {(e["from"], e["to"]): e["ports"] for e in reach}
    # the flows the design needs are really open (9002: endpoint pickers)
    assert pairs[("ai-gateway", "ai-inference")] == ["8000/TCP", "8080/TCP", "9002/TCP"]
    assert pairs[("ai-agents", "ai-data")] == ["6379/TCP", "19530/TCP"]
    assert "4317/TCP" in pairs[("ai-agents", "observability")]
    for t in tenants_of(prod_plan):
        assert pairs[(t, "ai-gateway")] and pairs[("ai-gateway", t)] == ["any"]
        assert (t, "ai-inference") not in pairs, "tenants reach models only through the gateway"
        assert "53/UDP" in pairs[(t, "kube-system")]


def test_intent_holds_even_when_vpc_ipblocks_match_pods(prod_plan):
    # With the VPC CNI, pods have VPC addresses: an ipBlock of the VPC CIDR also matches pods.
    reach = of_plan(prod_plan, pod_cidr="10.0.0.0/16")
    assert intent_violations(reach, tenants_of(prod_plan)) == []


def test_tenant_to_tenant_rule_breaks_the_intent(prod_plan):
    a, b = tenants_of(prod_plan)[:2]
    peer_a = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": a}}}
    peer_b = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": b}}}
    # only the destination widened: the source's egress still blocks it
    half = copy.deepcopy(policies_by_namespace(prod_plan.resources))
    half[b].append({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [peer_a]}]})
    namespaces = sorted({e["from"] for e in of_plan(prod_plan)})
    assert intent_violations(compute(half, namespaces), [a, b]) == []
    # both sides widened: tenant A reaches tenant B
    half[a].append({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [peer_b]}]})
    bad = intent_violations(compute(half, namespaces), [a, b])
    assert bad == [f"tenant {a} reaches tenant {b} on ['any']"]


def test_keda_reaches_ai_data_on_redis_only_and_wider_breaks_the_intent(prod_plan):
    pairs = {(e["from"], e["to"]): e["ports"] for e in of_plan(prod_plan)}
    assert pairs[("kube-system", "ai-data")] == ["6379/TCP"]
    policies = copy.deepcopy(policies_by_namespace(prod_plan.resources))
    policies["ai-data"].append({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
         "ports": [{"protocol": "TCP", "port": 19530}]}]})
    namespaces = sorted({e["from"] for e in of_plan(prod_plan)})
    bad = intent_violations(compute(policies, namespaces), tenants_of(prod_plan))
    assert bad == ["kube-system reaches ai-data on ['6379/TCP', '19530/TCP']"]


def test_tenant_to_inference_rule_breaks_the_intent(prod_plan):
    t = tenants_of(prod_plan)[0]
    policies = copy.deepcopy(policies_by_namespace(prod_plan.resources))
    policies[t].append({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ai-inference"}}}],
         "ports": [{"protocol": "TCP", "port": 8000}]}]})
    policies["ai-inference"].append({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
        {"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 8000}]}]})
    namespaces = sorted({e["from"] for e in of_plan(prod_plan)})
    bad = intent_violations(compute(policies, namespaces), tenants_of(prod_plan))
    assert f"{t} reaches ai-inference on ['8000/TCP']" in bad


def test_semantics_unisolated_namespace_and_ipblock_only():
    ns = ["a", "b"]
    assert compute({}, ns) == [{"from": s, "to": d, "ports": ["any"]} for s in ns for d in ns]
    deny = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ip_only = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}
    reach = compute({"b": [deny, ip_only]}, ns)
    assert {(e["from"], e["to"]) for e in reach} == {("a", "a")}
    assert ("a", "b") in {(e["from"], e["to"]) for e in compute({"b": [deny, ip_only]}, ns, pod_cidr="10.1.0.0/16")}


def test_plan_json_has_reachability_and_no_private_keys(tmp_path):
    out = tmp_path / "dev.json"
    proc = subprocess.run([sys.executable, "-m", "plan", "dev", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert not [k for k in doc if k.startswith("_")]
    assert {"from": "ai-gateway", "to": "ai-inference", "ports": ["8000/TCP", "8080/TCP", "9002/TCP"]} in doc["reachability"]
    assert "Reachability:" in proc.stdout and "tenant-a -> ai-gateway" in proc.stdout
