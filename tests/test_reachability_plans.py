"""Reachability over the dev and prod plans: tenants never reach each other, the plan JSON's report,
a widened policy breaks isolation, and the namespace matrix judges every pair that can meet."""

from __future__ import annotations

import json

import pytest

from plan.connections import build
from plan.reachability import (
    Cluster,
    Pod,
    PortSet,
    namespace_matrix,
    probes,
)
from plan.report import to_json
from tests.test_reachability import policy


def tenants_of(plan) -> list[str]:
    return sorted(o.name for o in plan.objects
                  if o.kind == "Namespace" and "agentic.platform/tenant" in (o.metadata.get("labels") or {}))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_tenants_never_reach_each_other(stack, dev_plan, prod_plan):
    plan = dev_plan if stack == "dev" else prod_plan
    reach = plan.extras["reachability"]
    tenants = tenants_of(plan)
    assert tenants and (stack == "dev" or len(tenants) >= 2)
    rows = {(e["from"], e["to"]): e["ports"] for e in reach["namespaces"]}
    assert [(a, b, rows[(a, b)]) for a in tenants for b in tenants if a != b and (a, b) in rows] == []
    for t in tenants:   # and the matrix is not vacuous: each reaches itself, DNS and the gateway
        assert rows[(t, t)] == ["any"] and "53/UDP" in rows[(t, "kube-system")] and rows[(t, "ai-gateway")]
        assert (t, "ai-inference") not in rows, "tenants reach models only through the gateway"


def test_plan_json_has_the_reachability_report(dev_plan):
    doc = json.loads(json.dumps(to_json(dev_plan), default=str))
    reach = doc["reachability"]
    assert set(reach) >= {"connections", "denied", "findings", "namespaces"}
    assert reach["enforced"] is True
    keys = {"from", "to", "port", "protocol", "why", "allowed"}
    assert reach["connections"] and all(keys <= set(c) for c in reach["connections"])
    assert {"from": "ai-agents", "to": "ai-data", "ports": ["6379/TCP", "19530/TCP"]} in reach["namespaces"]
    assert "Reachability" in dev_plan.extras["_summary"]


def test_widening_a_tenant_policy_breaks_the_isolation(prod_plan):

    a, b = tenants_of(prod_plan)[:2]
    d = build(prod_plan)
    to_b = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": b}}}
    from_a = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": a}}}
    # the destination alone widened: the source's egress still says no
    half = Cluster(d.cluster.pods, d.cluster.policies + [policy(b, {"podSelector": {}, "ingress": [{"from": [from_a]}]})],
                   d.cluster.namespaces, list(d.cluster.services.values()), pod_ips=d.cluster.pod_ips)
    probe_a, probe_b = probes([a])[0], probes([b])[0]
    assert not half.reachable_ports(probe_a, probe_b)
    out = policy(a, {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [to_b]}]})
    both = Cluster(half.pods, half.policies + [out], half.namespaces, list(half.services.values()), pod_ips=half.pod_ips)
    assert both.reachable_ports(probe_a, probe_b).labels() == ["any"]


def _every_pair(c: Cluster, pods: list[Pod]) -> list[dict]:
    """The matrix by brute force: the union of reachable_ports over every pair of pods."""
    by_ns: dict[str, list[Pod]] = {}
    for p in pods:
        by_ns.setdefault(p.namespace, []).append(p)
    out = []
    for src in sorted(by_ns):
        for dst in sorted(by_ns):
            ports = PortSet()
            for a in by_ns[src]:
                for b in by_ns[dst]:
                    ports = ports | c.reachable_ports(a, b)
            if ports:
                out.append({"from": src, "to": dst, "ports": ports.labels()})
    return out


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_matrix_judges_only_pairs_that_can_meet_and_misses_nothing(stack, dev_plan, prod_plan):
    """namespace_matrix skips the pairs whose peer namespaces exclude each other (linear in pods
    for isolated tenants): it must equal the union over every pair of pods."""

    d = build(dev_plan if stack == "dev" else prod_plan)
    pods = d.cluster.pods + probes(list(d.cluster.namespaces))
    assert namespace_matrix(d.cluster, pods) == _every_pair(d.cluster, pods)
    # an ipBlock covering the pod range lets a pod meet every namespace: no pair may be skipped then
    wide = policy("ai-agents", {"podSelector": {}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 7777}]}]})
    c = Cluster(d.cluster.pods, d.cluster.policies + [wide], d.cluster.namespaces, list(d.cluster.services.values()),
                pod_ips=d.cluster.pod_ips)
    assert namespace_matrix(c, pods) == _every_pair(c, pods)
    assert any("7777/TCP" in e["ports"] for e in namespace_matrix(c, pods) if e["from"] == "ai-agents")
