"""Deploy order: every release or workload whose pods need nodes waits for the node source they are
placed on (and on destroy goes before it), and every pod with a Pod Identity association waits for
it. An atomic release otherwise starts its 900 s clock before any node can run its pods (Karpenter
not yet installed, or its NodePool not yet declared) and rolls back."""

from __future__ import annotations

import pytest

from components import names

RELEASE = "kubernetes:helm.sh/v3:Release"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
# Releases with pods, by where the pods run: system nodes (nodeSelector node-role=system), the
# Karpenter CPU pool (`platform`: untainted, everything without a nodeSelector lands there), GPU pools.
SYSTEM = ("keda", "aws-load-balancer-controller", "karpenter")
PLATFORM = ("kgateway", "kagent", "kube-prometheus-stack", "otel-collector", "milvus", "valkey", "langfuse",
            "agentgateway", "opencost")
GPU = ("nvidia-device-plugin", "gpu-operator", "dcgm-exporter")


def releases(plan) -> dict[str, object]:
    return {r.inputs["name"]: r for r in plan.by_type(RELEASE)}


def node_sources(plan) -> tuple[str, str, str, list[str]]:
    """(system node group, Karpenter release, platform NodePool, GPU NodePools) URNs."""
    (ng,) = plan.by_type("aws:eks/nodeGroup:NodeGroup")
    pools = {p.inputs["metadata"]["name"]: p.urn for p in plan.by_type(NODEPOOL)}
    return ng.urn, releases(plan)["karpenter"].urn, pools.pop("platform"), list(pools.values())


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pod_bearing_releases_wait_for_their_nodes(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    system, karpenter, platform, gpu = node_sources(plan)
    rel = releases(plan)
    seen = set()
    for name, r in rel.items():
        deps = set(r.dependencies)
        if name in SYSTEM:
            assert system in deps, f"{name}: its pods run on the system nodes"
        elif name in PLATFORM:
            assert {karpenter, platform} <= deps, f"{name}: its pods run on the platform NodePool"
        elif name in GPU:
            assert karpenter in deps and set(gpu) <= deps, f"{name}: its pods run on the GPU NodePools"
        else:
            assert name.endswith(("-crd", "-crds")), f"{name}: no node source rule (add it here)"
            continue
        seen.add(name)
    assert {"keda", "kgateway", "kagent", "kube-prometheus-stack", "milvus", "langfuse"} <= seen


def test_platform_workloads_wait_for_the_platform_nodes(prod_plan):
    """Deployments the platform declares outside charts (the Milvus MCP server) too."""
    _, karpenter, platform, _ = node_sources(prod_plan)
    (mcp,) = [d for d in prod_plan.by_type("kubernetes:apps/v1:Deployment")
              if d.inputs["metadata"]["name"] == "knowledge-base"]
    assert {karpenter, platform} <= set(mcp.dependencies)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pod_identity_users_wait_for_their_association(stack, request):
    """Pods that start before their PodIdentityAssociation get no credentials (IMDS is closed by
    hop limit 1): every release, Deployment or Job whose service account has one depends on it."""
    plan = request.getfixturevalue(f"{stack}_plan")
    users = {}
    for r in plan.by_type(RELEASE):
        v = r.inputs.get("values") or {}
        for sa in (v.get("serviceAccount") or {}, ((v.get("langfuse") or {}).get("serviceAccount") or {})):
            if sa.get("name"):
                users[(r.inputs["namespace"], sa["name"])] = r
    for d in [*plan.by_type("kubernetes:apps/v1:Deployment"), *plan.by_type("kubernetes:batch/v1:Job")]:
        sa = d.inputs["spec"]["template"]["spec"].get("serviceAccountName")
        if sa:
            users[(d.inputs["metadata"]["namespace"], sa)] = d
    addon_accounts = {("kube-system", "aws-node"), ("kube-system", "ebs-csi-controller-sa")}  # EKS add-ons
    checked = 0
    for a in plan.by_type(ASSOCIATION):
        key = (a.inputs["namespace"], a.inputs["serviceAccount"])
        if key in addon_accounts:
            continue
        assert key in users, f"{key}: no release or Deployment of the plan runs it"
        assert a.urn in users[key].dependencies, f"{key}: {users[key].name} does not wait for its association"
        checked += 1
    assert checked >= 4   # karpenter, the LB controller, Milvus, LangFuse (+ S3-cached models in prod)
    assert names.NS_DATA in {a.inputs["namespace"] for a in plan.by_type(ASSOCIATION)}
