"""Tenancy's NetworkPolicies: who may reach whom (namespace selectors, private ranges, cross-layer
flows, endpoint pickers, scrapes, the Pod Identity agent, the Kubernetes API, databases)."""

from __future__ import annotations

from components import names
from plan.reachability import egress_allows_ip, policies_by_namespace
from tests.conftest import rendered, stack_doc
from tests.tenancy_objects import NETPOL, in_ns, namespaces


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


def test_cross_layer_flows_in_the_policies(prod_plan, dev_plan):
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
