"""Tenancy: namespaces, Pod Security, quotas, RBAC, access entries, scheduling, config rules. The
NetworkPolicies' flows: tests/test_tenancy_flows.py."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from components import names
from components.config import (
    ConfigError,
    CpuPoolConfig,
    GpuPoolConfig,
    PlatformQuotasConfig,
    TenantConfig,
    quantity_value,
    validate,
)
from components.node_pools import TenantPlacement, max_node_count, max_pool_nodes
from components.tenancy import Tenancy, TenancyArgs
from plan.engine import ROOT, execute, program_config, read_stack
from tests.conftest import stack_doc, write_stack
from tests.tenancy_objects import BINDING, LIMITS, NETPOL, NS, PSA, QUOTA, ROLE, in_ns, namespaces


def test_platform_and_tenant_namespaces_with_pod_security(any_plan):
    ns = namespaces(any_plan)
    assert set(names.PLATFORM_NAMESPACES) <= set(ns)
    assert ns[names.NS_INFERENCE][PSA + "enforce"] == "restricted"
    assert ns[names.NS_HOST_MONITORING][PSA + "enforce"] == "privileged"
    for name, lbl in ns.items():
        assert lbl[PSA + "audit"] == lbl[PSA + "warn"] == "restricted", name
        assert lbl[PSA + "enforce"] in ("restricted", "baseline", "privileged")
        if names.TENANT_LABEL in lbl:
            assert lbl[PSA + "enforce"] == "restricted" and lbl[names.GATEWAY_ACCESS_LABEL] == "true"
    assert ns[names.NS_AGENTS][names.GATEWAY_ACCESS_LABEL] == "true"
    assert names.GATEWAY_ACCESS_LABEL not in ns[names.NS_INFERENCE]


def test_every_namespace_has_default_deny_quota_and_limits(any_plan):
    for ns in namespaces(any_plan):
        specs = [p["spec"] for p in in_ns(any_plan, NETPOL, ns)]
        assert {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]} in specs, f"{ns}: no default deny"
        quotas = in_ns(any_plan, QUOTA, ns)
        assert len(quotas) == 1, ns
        hard = quotas[0]["spec"]["hard"]
        for key in ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "requests.nvidia.com/gpu",
                    "pods", "services", "persistentvolumeclaims"):
            assert key in hard, f"{ns}: quota lacks {key}"
        limit = in_ns(any_plan, LIMITS, ns)[0]["spec"]["limits"][0]
        assert limit["type"] == "Container" and limit["default"] and limit["defaultRequest"]


def test_gpu_quota_only_where_configured(prod_plan):
    gpu = {q["metadata"]["namespace"]: q["spec"]["hard"]["requests.nvidia.com/gpu"] for q in
           (r.inputs for r in prod_plan.by_type(QUOTA))}
    assert gpu[names.NS_INFERENCE] == "48"
    assert gpu["tenant-a"] == "4" and gpu["tenant-b"] == "8"
    for ns in (names.NS_GATEWAY, names.NS_AGENTS, names.NS_DATA, names.NS_OBSERVABILITY, names.NS_HOST_MONITORING):
        assert gpu[ns] == "0", ns
    seed = next(r.inputs["spec"]["hard"] for r in prod_plan.by_type(QUOTA)
                if r.inputs["metadata"]["namespace"] == names.NS_AGENTS)
    assert seed["requests.cpu"] == "50" and seed["limits.memory"] == "200Gi" and seed["pods"] == "200"


def test_rbac_roles_and_bindings(prod_plan):
    roles = {r.inputs["metadata"]["name"]: r.inputs["rules"] for r in prod_plan.by_type(ROLE)}
    op = next(rule for rule in roles["agent-operator"] if rule["apiGroups"] == ["kagent.dev"])
    assert set(op["resources"]) == {"agents", "modelconfigs", "remotemcpservers"}
    assert {"create", "update", "delete"} <= set(op["verbs"])
    view = next(rule for rule in roles["agent-viewer"] if rule["apiGroups"] == ["kagent.dev"])
    assert set(view["verbs"]) == {"get", "list", "watch"}
    bindings = {(b["metadata"]["namespace"], b["metadata"]["name"]): [s["name"] for s in b["subjects"]]
                for b in (r.inputs for r in prod_plan.by_type(BINDING))}
    assert bindings[("tenant-a", "agent-operator")] == ["tenant-a-operators"]
    assert bindings[("tenant-b", "agent-viewer")] == ["tenant-b-viewers"]
    # the shared ai-agents namespace is read-only for tenants
    assert ("ai-agents", "agent-operator") not in bindings
    assert "tenant-a-operators" in bindings[("ai-agents", "agent-viewer")]


def test_access_entries_are_namespace_scoped(prod_plan):
    entries = {r.inputs["principalArn"]: r.inputs for r in prod_plan.by_type("aws:eks/accessEntry:AccessEntry")}
    assert entries["arn:aws:iam::111122223333:role/TenantAOperators"]["kubernetesGroups"] == ["tenant-a-operators"]
    assert entries["arn:aws:iam::111122223333:role/TenantAViewers"]["kubernetesGroups"] == ["tenant-a-viewers"]
    assocs = prod_plan.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    tenant_assocs = [a.inputs for a in assocs if a.inputs.get("accessScope", {}).get("type") == "namespace"]
    assert len(tenant_assocs) == 3
    assert all(a["policyArn"].endswith("/AmazonEKSViewPolicy") for a in tenant_assocs)
    assert {tuple(a["accessScope"]["namespaces"]) for a in tenant_assocs} == {("tenant-a",), ("tenant-b",)}


@pytest.mark.layer
def test_scheduling_for_node_isolated_tenant():
    tenants = [TenantConfig.model_validate({"name": "t1", "isolation": "node", "quota": {"gpu": 2}}),
               TenantConfig.model_validate({"name": "t2"})]
    got = {}

    def body():
        t = Tenancy("tenancy", TenancyArgs(tenants, PlatformQuotasConfig(), "c", "10.0.0.0/16", ["10.0.99.0/28", "10.0.99.16/28"],
                                           "1.34", {}))
        got["t1"], got["t2"] = t.scheduling_for("t1"), t.scheduling_for("t2")

    plan = execute(body, stack="unit", config={})
    assert got["t2"] == ([], {})
    tolerations, selector = got["t1"]
    assert tolerations == [{"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": "t1", "effect": "NoSchedule"}]
    assert selector == {names.NODEPOOL_LABEL: names.tenant_pool_name("t1")}
    assert len(plan.by_type(NS)) == len(names.PLATFORM_NAMESPACES) + 2


# ------------------------------------------------------------------------------- bad config

def _config_errors(doc) -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        sf = read_stack(str(write_stack(Path(d), doc)))
        try:
            validate({k.split(":", 1)[1]: v for k, v in program_config(sf).items()
                      if k.startswith("agentic-platform:")}, sf.name)
        except ConfigError as err:
            return err.lines()
    return []


@pytest.mark.slow
def test_tenant_gpu_quotas_over_the_pool_limit(tmp_path):
    doc = stack_doc("prod")
    tenants = doc["config"]["agentic-platform:tenants"]
    tenants.append({"name": "tenant-c", "gpuPools": ["gpu-spot"], "quota": {"gpu": 30}})
    path = write_stack(tmp_path, doc)
    proc = subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2
    assert ("agentic-platform:tenants[2].quota.gpu: tenants that may use GPU pool 'gpu-spot' (tenant-a, tenant-c) "
            "have GPU quotas summing to 34, over its gpuLimit 32") in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_pool_and_node_isolation_without_gpus():
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:tenants"][0]["gpuPools"] = ["gpu-inference", "gpu-nope"]
    doc["config"]["agentic-platform:tenants"][1]["quota"]["gpu"] = 0
    lines = _config_errors(doc)
    assert any(x.startswith("agentic-platform:tenants[0].gpuPools[1]: 'gpu-nope' is not a gpuPools name")
               for x in lines), lines
    assert any(x.startswith("agentic-platform:tenants[1].quota.gpu:") for x in lines), lines


@pytest.mark.parametrize("change, expected", [
    (lambda t: t.update(operatorGroups=[]),
     "agentic-platform:tenants[0].iamRoles[0].access: 'operator' access maps the role into the tenant's "
     "operatorGroups, which is empty"),
    (lambda t: t.update(viewerGroups=["system:masters"]),
     "agentic-platform:tenants[0].viewerGroups[0]: 'system:masters' is a reserved system: group; "
     "EKS access entries reject it"),
    (lambda t: t["quota"].update(cpuLimit="10"),
     "agentic-platform:tenants[0].quota.cpuLimit: 10 is less than the requests quota (20)"),
    (lambda t: t["iamRoles"].append({"arn": "arn:aws:iam::111122223333:role/PlatformAdmins"}),
     "agentic-platform:tenants[0].iamRoles[2].arn: already mapped by cluster.admins; an IAM role has one access entry"),
])
def test_bad_tenant_config(change, expected):
    doc = stack_doc("prod")
    change(doc["config"]["agentic-platform:tenants"][0])
    assert expected in _config_errors(doc)


def test_node_exporter_quota_covers_the_most_nodes(any_plan, request):
    """observability-node's quota admits a node-exporter pod on each of the most nodes the pools
    allow (system maxSize + every NodePool at its limits / smallest instance), at its limits."""
    stack = "prod" if any_plan.stack == "prod" else "dev"
    doc = stack_doc(stack)["config"]
    expected = doc["agentic-platform:cluster"]["systemNodes"]["maxSize"]
    for np in any_plan.by_type("kubernetes:karpenter.sh/v1:NodePool"):
        spec = np.inputs["spec"]
        types = spec["template"]["spec"]["requirements"][0]["values"]
        limits = spec.get("limits", {})

        class Pool:
            instance_types = types
            cpu_limit = int(limits["cpu"]) if "cpu" in limits else None
            memory_limit_gib = int(limits["memory"].removesuffix("Gi")) if "memory" in limits else None

        n = max_pool_nodes(Pool, int(limits["nvidia.com/gpu"]) if "nvidia.com/gpu" in limits else None)
        assert n is not None, np.name
        expected += n
    (quota,) = in_ns(any_plan, QUOTA, names.NS_HOST_MONITORING)
    hard = quota["spec"]["hard"]
    assert int(hard["pods"]) == expected
    assert quantity_value(hard["limits.cpu"]) == pytest.approx(expected * 0.2)
    assert quantity_value(hard["limits.memory"]) == expected * 128 * 2**20
    if stack == "prod":
        assert expected > 100   # the old constant (limits.cpu 4) admitted 20 pods


def test_max_node_count_uses_each_pools_tightest_limit():
    gpu = GpuPoolConfig.model_validate({"name": "g", "instanceTypes": ["g5.xlarge", "g5.12xlarge"], "gpuLimit": 8,
                                        "cpuLimit": 1000})
    cpu = CpuPoolConfig.model_validate({"instanceTypes": ["m7i.xlarge", "m7i.2xlarge"], "cpuLimit": 10})
    # g5.xlarge has 1 GPU: 8 nodes (its CPU limit allows 250); m7i.xlarge 4 vCPU: ceil(10/4) = 3
    assert max_node_count(2, [gpu], cpu, []) == 2 + 8 + 3
    tenant = TenantPlacement("t", "tenant-t", "g", gpu_limit=2)
    assert max_node_count(2, [gpu], cpu, [tenant]) == 2 + 8 + 3 + 2


def test_namespaces_with_volumes_go_before_the_ebs_csi_driver(any_plan):
    """On destroy a namespace holding PVCs is deleted (its StatefulSets' PVCs with it) while the EBS
    CSI driver still runs to delete the volumes."""
    (ebs,) = [a for a in any_plan.by_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    ns = {r.inputs["metadata"]["name"]: r for r in any_plan.by_type(NS)}
    holding = {names.NS_DATA, names.NS_OBSERVABILITY}
    holding |= {p.inputs["metadata"]["namespace"] for p in any_plan.by_type("kubernetes:core/v1:PersistentVolumeClaim")}
    for name in holding:
        assert ebs.urn in ns[name].dependencies, name
    assert ebs.urn not in ns[names.NS_GATEWAY].dependencies
