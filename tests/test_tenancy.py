"""Tenancy: namespaces, Pod Security, quotas, default deny, RBAC, access entries, config rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from components import names
from components.config import ConfigError, PlatformQuotasConfig, TenantConfig
from plan.engine import ROOT, execute
from tests.conftest import stack_doc, write_stack

NS = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMITS = "kubernetes:core/v1:LimitRange"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
PSA = "pod-security.kubernetes.io/"


def namespaces(plan) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"] for r in plan.by_type(NS)}


def in_ns(plan, typ: str, ns: str) -> list[dict]:
    return [r.inputs for r in plan.by_type(typ) if r.inputs["metadata"].get("namespace") == ns]


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


def test_selectors_use_the_api_server_namespace_label(any_plan):
    for r in any_plan.by_type(NETPOL):
        spec = r.inputs["spec"]
        for rule in [*spec.get("ingress", []), *spec.get("egress", [])]:
            for peer in [*rule.get("from", []), *rule.get("to", [])]:
                sel = peer.get("namespaceSelector")
                if sel is not None:
                    assert set(sel.get("matchLabels", {})) == {"kubernetes.io/metadata.name"}, r.name
                    assert "name" not in sel.get("matchLabels", {})
                    assert not sel.get("matchExpressions")


def test_model_server_egress_excludes_private_ranges(prod_plan):
    egress = next(p["spec"]["egress"] for p in in_ns(prod_plan, NETPOL, names.NS_INFERENCE)
                  if p["metadata"]["name"] == "allow-egress")
    blocks = [peer["ipBlock"] for rule in egress for peer in rule["to"] if "ipBlock" in peer]
    assert blocks == [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}]


def test_controllers_reach_the_api_server_in_the_vpc(prod_plan):
    for ns in (names.NS_GATEWAY, names.NS_AGENTS, names.NS_OBSERVABILITY):
        egress = next(p["spec"]["egress"] for p in in_ns(prod_plan, NETPOL, ns) if p["metadata"]["name"] == "allow-egress")
        assert any(peer.get("ipBlock") == {"cidr": "10.0.0.0/16"} and {"protocol": "TCP", "port": 443} in
                   [{**p, "port": int(p["port"])} for p in rule.get("ports", [])]
                   for rule in egress for peer in rule["to"]), ns


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


def test_scheduling_for_node_isolated_tenant():
    from components.tenancy import Tenancy, TenancyArgs

    tenants = [TenantConfig.model_validate({"name": "t1", "isolation": "node", "quota": {"gpu": 2}}),
               TenantConfig.model_validate({"name": "t2"})]
    got = {}

    def body():
        t = Tenancy("tenancy", TenancyArgs(tenants, PlatformQuotasConfig(), "c", "10.0.0.0/16", "1.34", {}))
        got["t1"], got["t2"] = t.scheduling_for("t1"), t.scheduling_for("t2")

    plan = execute(body, stack="unit", config={})
    assert got["t2"] == ([], {})
    tolerations, selector = got["t1"]
    assert tolerations == [{"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": "t1", "effect": "NoSchedule"}]
    assert selector == {names.NODEPOOL_LABEL: names.tenant_pool_name("t1")}
    assert len(plan.by_type(NS)) == len(names.PLATFORM_NAMESPACES) + 2


# ------------------------------------------------------------------------------- bad config

def _config_errors(doc) -> list[str]:
    import tempfile
    from pathlib import Path

    from components.config import validate
    from plan.engine import program_config, read_stack

    with tempfile.TemporaryDirectory() as d:
        sf = read_stack(str(write_stack(Path(d), doc)))
        try:
            validate({k.split(":", 1)[1]: v for k, v in program_config(sf).items()
                      if k.startswith("agentic-platform:")}, sf.name)
        except ConfigError as err:
            return err.lines()
    return []


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


def test_cross_layer_flows_in_the_policies(prod_plan):
    from plan.reachability import egress_allows_ip, policies_by_namespace

    pol = policies_by_namespace(prod_plan.resources)
    # agents: RDS/ElastiCache in the VPC, remote tools over HTTPS outside private ranges (not 10/8)
    assert egress_allows_ip(pol[names.NS_AGENTS], "10.0.1.5", 5432)
    assert egress_allows_ip(pol[names.NS_AGENTS], "203.0.113.10", 443)
    assert not egress_allows_ip(pol[names.NS_AGENTS], "203.0.113.10", 5432)
    assert not egress_allows_ip(pol[names.NS_AGENTS], "10.200.0.1", 443)   # private, outside the VPC
    # ai-data admits kube-system (KEDA) on the Redis port only
    (ingress,) = [p for p in in_ns(prod_plan, NETPOL, names.NS_DATA) if p["metadata"]["name"] == "allow-ingress"]
    from_system = [r for r in ingress["spec"]["ingress"]
                   if r["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]]
    assert [r["ports"] for r in from_system] == [[{"protocol": "TCP", "port": names.PORT_REDIS}]]


def test_endpoint_picker_flows_are_pod_scoped(prod_plan):
    """Inference routing (agentgateway): the proxy reaches only the endpoint pickers on 9002, and only
    the pickers (not the model servers) may call the Kubernetes API in the VPC."""
    pols = {p["metadata"]["name"]: p["spec"] for p in in_ns(prod_plan, NETPOL, names.NS_INFERENCE)}
    epp = pols["allow-egress-endpoint-picker"]
    assert epp["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "endpoint-picker"}}
    assert epp["egress"] == [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 443}]}]
    gateway_egress = next(p["spec"]["egress"] for p in in_ns(prod_plan, NETPOL, names.NS_GATEWAY)
                          if p["metadata"]["name"] == "allow-egress")
    to_epp = [r for r in gateway_egress if {"protocol": "TCP", "port": 9002} in r.get("ports", [])]
    assert to_epp and all(peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "endpoint-picker"}}
                          for r in to_epp for peer in r["to"])
