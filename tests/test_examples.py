"""The fixture stacks under examples/ (docs/DEVELOPING.md, "Tests"): small stacks that stand on their
own, beside dev and prod, each planned once per session (`variant_plan`). Each plans cleanly (no
rejected object, no mandatory finding: `python -m plan` would exit 0), and each shows what it is for."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import EXAMPLES, example_stacks, variant_plan

NAMESPACE = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@pytest.fixture(scope="session", params=example_stacks())
def example_plan(request):
    return variant_plan(request.param)


def tenants_of(name: str) -> list[dict]:
    doc = yaml.safe_load((EXAMPLES / f"Pulumi.{name}.yaml").read_text())
    return doc["config"].get("agentic-platform:tenants") or []


def test_the_examples_are_there():
    assert {"minimal", "tenants"} <= set(example_stacks())


def test_every_example_plans_cleanly(example_plan):
    rejected = example_plan.extras["admission"]
    assert rejected == [], "\n".join(f"[{f['check']}] {f['object'] or f['source']}: {f['message']}" for f in rejected)
    assert [f for f in example_plan.policies if f["level"] == "mandatory"] == []


def _namespaces(plan) -> set[str]:
    return {r.inputs["metadata"]["name"] for r in plan.by_type(NAMESPACE)}


@pytest.mark.program
def test_minimal_declares_the_platform_without_tenants_or_models():
    plan = variant_plan("minimal")
    assert tenants_of("minimal") == []
    assert not any(r.inputs["metadata"].get("namespace", "").startswith("tenant") for r in plan.by_type(QUOTA))
    # no model servers: no Deployment in the inference namespace
    assert [r.name for r in plan.by_type(DEPLOYMENT) if r.inputs["metadata"].get("namespace") == "ai-inference"] == []
    assert {"eks:index:Cluster", "aws:ec2/vpc:Vpc"} <= {r.type for r in plan.resources}


@pytest.mark.program
def test_many_tenants_each_get_a_namespace_quota_and_default_deny():
    plan = variant_plan("tenants")
    tenants = tenants_of("tenants")
    assert len(tenants) >= 8
    namespaces = _namespaces(plan)
    quotas = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"] for r in plan.by_type(QUOTA)}
    policies: dict[str, list[dict]] = {}
    for r in plan.by_type(NETPOL):
        policies.setdefault(r.inputs["metadata"]["namespace"], []).append(r.inputs["spec"])
    for t in tenants:
        name = t["name"]
        assert name in namespaces, name
        gpu = quotas[name].get("requests.nvidia.com/gpu")
        assert str(gpu or 0) == str(t["quota"].get("gpu", 0)), (name, quotas[name])   # CPU-only: no GPU
        deny = [p for p in policies.get(name, []) if p.get("podSelector") == {} and not p.get("ingress") and not p.get("egress")]
        assert deny and set(deny[0]["policyTypes"]) == {"Ingress", "Egress"}, (name, policies.get(name))
