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
    from components.tenancy import Tenancy, TenancyArgs

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


def test_cross_layer_flows_in_the_policies(prod_plan, dev_plan):
    from plan.reachability import egress_allows_ip, policies_by_namespace

    pol = policies_by_namespace(prod_plan.resources)
    # agents: RDS/ElastiCache in the VPC, remote tools over HTTPS outside private ranges (not 10/8)
    assert egress_allows_ip(pol[names.NS_AGENTS], "10.0.1.5", 5432)
    assert egress_allows_ip(pol[names.NS_AGENTS], "203.0.113.10", 443)
    assert not egress_allows_ip(pol[names.NS_AGENTS], "203.0.113.10", 5432)
    assert not egress_allows_ip(pol[names.NS_AGENTS], "10.200.0.1", 443)   # private, outside the VPC
    # ai-data admits kube-system (KEDA) on the Redis port only, and only where Redis runs there
    # (dev's Valkey; prod's Redis is ElastiCache, outside the cluster)
    def from_system(plan):
        (ingress,) = [p for p in in_ns(plan, NETPOL, names.NS_DATA) if p["metadata"]["name"] == "allow-ingress"]
        return [r["ports"] for r in ingress["spec"]["ingress"]
                if r["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]]

    assert from_system(prod_plan) == []
    assert from_system(dev_plan) == [[{"protocol": "TCP", "port": names.PORT_REDIS}]]


def _ports_of(rules, port):
    return [r for r in rules if {"protocol": "TCP", "port": port} in r.get("ports", [])]


def test_endpoint_picker_flows_are_pod_scoped(agw_plan):
    """Inference routing (agentgateway): the proxy reaches only the endpoint pickers on 9002, and only
    the pickers (not the model servers) may call the Kubernetes API (the control-plane subnets)."""
    pols = {p["metadata"]["name"]: p["spec"] for p in in_ns(agw_plan, NETPOL, names.NS_INFERENCE)}
    epp = pols["allow-egress-endpoint-picker"]
    assert epp["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "endpoint-picker"}}
    assert epp["egress"] == [{"to": [{"ipBlock": {"cidr": c}} for c in
                                     ("10.0.99.0/28", "10.0.99.16/28", "10.0.99.32/28", "172.20.0.1/32")],
                              "ports": [{"protocol": "TCP", "port": 443}]}]
    gateway_egress = next(p["spec"]["egress"] for p in in_ns(agw_plan, NETPOL, names.NS_GATEWAY)
                          if p["metadata"]["name"] == "allow-egress")
    to_epp = _ports_of(gateway_egress, 9002)
    assert to_epp and all(peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "endpoint-picker"}}
                          for r in to_epp for peer in r["to"])
    # the pickers really carry the label the policies select
    epps = [d.inputs for d in agw_plan.by_type("kubernetes:apps/v1:Deployment")
            if d.inputs["metadata"]["name"].endswith("-epp")]
    assert epps and all(d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "endpoint-picker"
                        for d in epps)


def test_no_endpoint_picker_policies_without_inference_routing(dev_plan, kgw_plan):
    """Nothing creates endpoint pickers unless gateway.inferenceRouting is agentgateway (dev: none; the
    kgateway variant of prod: none): no policy selects them, no namespace admits 9002."""
    for plan in (dev_plan, kgw_plan):
        assert not [d for d in plan.by_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"].endswith("-epp")]
        for p in plan.by_type(NETPOL):
            spec = p.inputs["spec"]
            assert spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") != "endpoint-picker"
            assert not _ports_of([*spec.get("ingress", []), *spec.get("egress", [])], 9002), p.inputs["metadata"]


def test_the_external_path_to_the_pools_is_needed_and_allowed(agw_plan):
    """prod's vLLM path as the plan derives it from the routes: kgateway's proxies -> agentgateway's
    (its Service, port 80) -> each pool's model servers (8000) and endpoint picker (9002, through its
    ClusterIP, which the VPC CNI admits only when the egress peer's podSelector matches the Service's
    selector: the picker's Service selects on the component label the policy names)."""
    conns = agw_plan.extras["reachability"]["connections"]

    def found(src: str, dst: str, port: int) -> list[dict]:
        return [c for c in conns if c["from"] == src and c["to"] == dst and c["port"] == port]

    kgw = f"{names.NS_GATEWAY}/Deployment/{names.GATEWAY_NAME}"
    agw = f"{names.NS_GATEWAY}/Deployment/{names.AGENTGATEWAY_NAME}"
    (hop,) = found(kgw, agw, names.GATEWAY_PORT)
    assert hop["allowed"] and hop.get("vpc_cni") is not False
    vllm = [m["name"] for m in stack_doc("prod")["config"]["agentic-platform:models"] if m["engine"] == "vllm"]
    assert vllm
    for model in vllm:
        (to_model,) = found(agw, f"{names.NS_INFERENCE}/Deployment/{model}", names.PORT_VLLM)
        (to_epp,) = found(agw, f"{names.NS_INFERENCE}/Deployment/{model}-epp", 9002)
        assert to_model["allowed"] and to_epp["allowed"] and to_epp["vpc_cni"] is True, to_epp
    assert not agw_plan.extras["reachability"]["vpc_cni_denied"]


def test_no_ingress_on_ports_nothing_scrapes(any_plan):
    """Nothing scrapes ai-agents (kagent 0.9.12 serves no agent metrics) or kgateway (no monitor):
    observability reaches ai-agents not at all and ai-gateway only on the agentgateway proxies' metrics
    port, in a policy of those pods alone (prod, inferenceRouting: agentgateway); the Valkey exporter
    port and Redis exist only with the in-cluster Valkey."""
    def ingress(ns, policy=None):
        return [r for p in in_ns(any_plan, NETPOL, ns) if policy in (None, p["metadata"]["name"])
                for r in p["spec"].get("ingress", [])]

    obs = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": names.NS_OBSERVABILITY}}}
    assert not [r for r in ingress(names.NS_AGENTS) if obs in r["from"]]
    agw = any(r.inputs.get("name") == "agentgateway" for r in any_plan.by_type("kubernetes:helm.sh/v3:Release"))
    scrape = [r for r in ingress(names.NS_GATEWAY) if obs in r["from"]]
    assert scrape == ([{"from": [obs], "ports": [{"protocol": "TCP", "port": 15020}]}] if agw else [])
    assert scrape == [r for r in ingress(names.NS_GATEWAY, f"allow-ingress-{names.AGENTGATEWAY_NAME}") if obs in r["from"]]
    valkey = any(r.inputs.get("name") == "valkey" for r in any_plan.by_type("kubernetes:helm.sh/v3:Release"))
    data = ingress(names.NS_DATA)
    assert bool(_ports_of(data, 9121)) == valkey and bool(_ports_of(data, names.PORT_REDIS)) == valkey


def test_prometheus_reaches_coredns_metrics(any_plan):
    """kube-prometheus-stack's coreDns ServiceMonitor scrapes the kube-dns pods on 9153."""
    egress = [r for p in in_ns(any_plan, NETPOL, names.NS_OBSERVABILITY) for r in p["spec"].get("egress", [])]
    to_dns = _ports_of(egress, 9153)
    assert to_dns and all(peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
                          for r in to_dns for peer in r["to"])
    from tests.conftest import rendered

    kps = rendered(any_plan, "kube-prometheus-stack")
    (svc,) = [o for o in kps if o["kind"] == "Service" and o["metadata"]["name"].endswith("-coredns")]
    assert svc["metadata"]["namespace"] == "kube-system" and svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [9153]


POD_IDENTITY_AGENT = {"ipBlock": {"cidr": "169.254.170.23/32"}}


def _reaches_agent(plan, ns, pod_labels) -> bool:
    """Some policy of `ns` that selects pods with `pod_labels` allows egress to the agent on TCP 80."""
    for p in in_ns(plan, NETPOL, ns):
        spec = p["spec"]
        if not spec["podSelector"].get("matchLabels", {}).items() <= pod_labels.items():
            continue
        for r in spec.get("egress", []):
            if POD_IDENTITY_AGENT in r["to"] and {"protocol": "TCP", "port": 80} in r.get("ports", []):
                return True
    return False


def test_pod_identity_pods_reach_the_agent(any_plan):
    """Every pod with a PodIdentityAssociation in a namespace with NetworkPolicies may reach the EKS
    Pod Identity agent (169.254.170.23:80), and only those pods: Milvus, LangFuse web/worker, OpenCost,
    the S3-cached model servers and their weights Jobs."""
    managed = set(namespaces(any_plan))
    assocs = [(a.inputs["namespace"], a.inputs["serviceAccount"])
              for a in any_plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
              if a.inputs.get("namespace") in managed]
    assert (names.NS_DATA, "milvus") in assocs and (names.NS_OBSERVABILITY, "langfuse") in assocs
    chart_pods = {(names.NS_DATA, "milvus"): {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "milvus",
                                             "component": "standalone"},
                  (names.NS_OBSERVABILITY, "langfuse"): {"app.kubernetes.io/name": "langfuse",
                                                         "app.kubernetes.io/instance": "langfuse",
                                                         "app.kubernetes.io/component": "web"},
                  # opencost 2.5.17 _helpers.tpl opencost.selectorLabels
                  (names.NS_COST, "opencost"): {"app.kubernetes.io/name": "opencost",
                                                "app.kubernetes.io/instance": "opencost"}}
    deployments = {(d.inputs["metadata"]["namespace"], d.inputs["spec"]["template"]["spec"].get("serviceAccountName")):
                   d.inputs["spec"]["template"]["metadata"]["labels"]
                   for d in [*any_plan.by_type("kubernetes:apps/v1:Deployment"), *any_plan.by_type("kubernetes:batch/v1:Job")]}
    for ns, sa in assocs:
        pods = chart_pods.get((ns, sa)) or deployments[(ns, sa)]
        assert _reaches_agent(any_plan, ns, pods), (ns, sa)
    # no other pod gets it: the agent's address appears only in pod-scoped policies
    for p in any_plan.by_type(NETPOL):
        spec = p.inputs["spec"]
        if any(POD_IDENTITY_AGENT in r["to"] for r in spec.get("egress", [])):
            assert spec["podSelector"].get("matchLabels"), p.inputs["metadata"]
    # Milvus's etcd (service account of its own, no association) is not selected
    assert not _reaches_agent(any_plan, names.NS_DATA, {"app.kubernetes.io/name": "etcd",
                                                         "app.kubernetes.io/instance": "milvus"})


def test_s3_cached_model_pods_reach_the_agent_only_where_they_run(prod_plan, dev_plan):
    (llama,) = [d.inputs for d in prod_plan.by_type("kubernetes:apps/v1:Deployment")
                if d.inputs["metadata"]["name"] == "llama-3-70b"]
    assert _reaches_agent(prod_plan, names.NS_INFERENCE, llama["spec"]["template"]["metadata"]["labels"])
    (qwen,) = [d.inputs for d in dev_plan.by_type("kubernetes:apps/v1:Deployment")
               if d.inputs["metadata"]["name"] == "qwen-1-5b"]   # a pvc cache: no Pod Identity
    assert not _reaches_agent(dev_plan, names.NS_INFERENCE, qwen["spec"]["template"]["metadata"]["labels"])
    # dev has no S3-cached model: ai-inference has no policy for it
    assert not [p for p in in_ns(dev_plan, NETPOL, names.NS_INFERENCE)
                if any(POD_IDENTITY_AGENT in r["to"] for r in p["spec"].get("egress", []))]


def test_node_exporter_quota_covers_the_most_nodes(any_plan, request):
    """observability-node's quota admits a node-exporter pod on each of the most nodes the pools
    allow (system maxSize + every NodePool at its limits / smallest instance), at its limits."""
    from components.config import quantity_value
    from components.node_pools import max_pool_nodes

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
    from components.config import CpuPoolConfig, GpuPoolConfig
    from components.node_pools import TenantPlacement, max_node_count

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


def test_kubernetes_api_egress_names_the_clusterip_too(prod_plan):
    """The VPC CNI judges egress to `kubernetes.default` at its ClusterIP (before translation), so
    every controller's API egress carries the Service CIDR's first address beside the control-plane
    subnets (tests/test_api_peer.py: exactly those)."""
    for ns in (names.NS_GATEWAY, names.NS_AGENTS, names.NS_OBSERVABILITY):
        pols = {p["metadata"]["name"]: p["spec"] for p in in_ns(prod_plan, NETPOL, ns)}
        https = [r for r in pols["allow-egress"]["egress"] if r.get("ports") == [{"protocol": "TCP", "port": 443}]]
        cidrs = {peer["ipBlock"]["cidr"] for r in https for peer in r["to"] if "ipBlock" in peer}
        assert {"10.0.99.0/28", f"{names.kubernetes_service_ip('10.0.0.0/16')}/32"} <= cidrs, ns
        assert "10.0.0.0/16" not in cidrs, ns
    assert names.kubernetes_service_ip("10.0.0.0/16") == "172.20.0.1"
    assert names.kubernetes_service_ip("192.168.0.0/16") == "10.100.0.1"


def test_webhook_ingress_from_the_vpc_admits_only_the_operator(prod_plan):
    """The API server's ENIs (VPC CIDR) reach the prometheus-operator webhook, not every pod of
    observability: pods have VPC addresses too."""
    pols = {p["metadata"]["name"]: p["spec"] for p in in_ns(prod_plan, NETPOL, names.NS_OBSERVABILITY)}
    shared = [peer for r in pols["allow-ingress"]["ingress"] for peer in r["from"]]
    assert not any(peer.get("ipBlock", {}).get("cidr") == "10.0.0.0/16" for peer in shared)
    scoped = [spec for name, spec in pols.items() if name.startswith("allow-ingress-")]
    assert [s["podSelector"]["matchLabels"] for s in scoped] == [{"app": "kube-prometheus-stack-operator",
                                                                 "release": "kube-prometheus-stack"}]


def test_database_egress_only_where_a_managed_database_is_used(dev_plan, prod_plan):
    """dev runs kagent's and LangFuse's PostgreSQL in the cluster and Valkey for Redis: no pod may
    open 5432/6379 into the VPC there; prod's kagent and LangFuse use RDS and ElastiCache."""
    def vpc_db_ports(plan, ns):
        pols = {p["metadata"]["name"]: p["spec"] for p in in_ns(plan, NETPOL, ns)}
        return {port["port"] for r in (pols.get("allow-egress") or {}).get("egress", [])
                if any(peer.get("ipBlock", {}).get("cidr") == "10.0.0.0/16" for peer in r["to"])
                for port in r.get("ports") or [] if port["port"] in (5432, 6379)}
    for ns in (names.NS_AGENTS, names.NS_OBSERVABILITY, names.NS_DATA):
        assert vpc_db_ports(dev_plan, ns) == set(), ns
    assert vpc_db_ports(prod_plan, names.NS_AGENTS) == {5432, 6379}
    assert vpc_db_ports(prod_plan, names.NS_OBSERVABILITY) == {5432, 6379}
    assert vpc_db_ports(prod_plan, names.NS_DATA) == set()


def test_no_chart_brings_network_policies_of_its_own(any_plan):
    """The tenancy layer's FLOWS are the network design: a chart's own NetworkPolicy (bitnami's admit
    every source on their ports and allow all egress) would widen it behind the reachability check."""
    assert [o.ref for o in any_plan.objects if o.kind == "NetworkPolicy" and o.release] == []
