"""The connections the platform really makes (plan/connections/, derived from the objects: DNS,
Pod Identity, the API server both ways, every ServiceMonitor target, routes, the addresses in env
and configs, connection Secrets, KEDA triggers, tools) are all allowed by the NetworkPolicies on
both stacks, and nothing beyond the FLOWS design reaches a tenant's way into the platform's stores.
A ServiceMonitor that scrapes nothing, or a flow taken away, is caught."""

from __future__ import annotations

import copy
from functools import cache
from types import SimpleNamespace

import pytest
from conftest import plan_of

from components import names
from components.tenancy import FLOWS, expand
from plan import connections
from plan.objects import K8sObject
from plan.reachability import PortSet, probes, selector_matches

pytestmark = pytest.mark.program  # the helpers below read the shared plans (plan_of)

PUBLIC = "0.0.0.0/0 except 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
POD_IDENTITY = "169.254.170.23/32"
# Stores: every pod of ai-data, and these pods of observability (metrics, traces and their databases).
OBSERVABILITY_STORES = {"prometheus", "alertmanager", "clickhouse", "postgresql", "zookeeper", "redis", "valkey", "minio"}


@cache
def derivation(stack: str) -> connections.Derivation:
    return connections.build(plan_of(stack))


def reach(stack: str) -> dict:
    return plan_of(stack).extras["reachability"]


def vpc(stack: str) -> str:
    return connections.vpc_cidr_of(plan_of(stack))


def conns(stack: str, src: str = "", dst: str = "", port: int | None = None, why: str = "") -> list[dict]:
    """Connections whose from/to start with `src`/`dst` (and port, and a `why` fragment)."""
    return [c for c in reach(stack)["connections"] if c["from"].startswith(src) and c["to"].startswith(dst)
            and (port is None or c["port"] == port) and why in c["why"]]


def tenants(stack: str) -> list[str]:
    return sorted(o.name for o in plan_of(stack).objects
                  if o.kind == "Namespace" and names.TENANT_LABEL in (o.metadata.get("labels") or {}))


# ------------------------------------------------------------------------------------ all allowed

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_needed_connection_is_allowed(stack):
    r = reach(stack)
    assert r["enforced"] is True, "the vpc-cni add-on must enable network policy, or none of this is enforced"
    assert [f"{c['from']} -> {c['to']} {c['port']}/{c['protocol']}: {c['why']}" for c in r["denied"]] == []
    assert r["findings"] == []
    assert len(r["connections"]) > 100


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_derivation_finds_what_the_platform_does(stack):
    """Not a vacuous pass: each kind of connection is derived, with the right ports."""
    v = vpc(stack)
    # DNS from every non-host pod, both protocols
    dns = conns(stack, dst="kube-system/Deployment/coredns", why="DNS")
    assert {c["protocol"] for c in dns} == {"UDP", "TCP"} and {c["port"] for c in dns} == {53}
    assert {c["from"] for c in dns} >= {p.ref for p in derivation(stack).cluster.pods if not p.host_network
                                        and p.labels.get("k8s-app") != "kube-dns" and p.resolver == "cluster"}
    # Karpenter (dnsPolicy Default) asks the VPC's Route 53 Resolver, base + 2, not CoreDNS
    resolver = f"{names.vpc_resolver_ip(v)}/32"
    assert {c["protocol"] for c in conns(stack, "kube-system/Deployment/karpenter", resolver, 53)} == {"UDP", "TCP"}
    assert not conns(stack, "kube-system/Deployment/karpenter", "kube-system/Deployment/coredns", 53)
    # Pod Identity: every associated account's pods, to the agent
    assert conns(stack, f"{names.NS_DATA}/Deployment/milvus", POD_IDENTITY, 80)
    assert conns(stack, "kube-system/Deployment/karpenter", POD_IDENTITY, 80)
    assert conns(stack, f"{names.NS_OBSERVABILITY}/Deployment/langfuse-web", POD_IDENTITY, 80)
    # the API server: controllers to it, it to the webhooks (from the control plane ENIs in the
    # cluster's own subnets, not the VPC)
    api = str(derivation(stack).api.ips)
    assert api != v and not derivation(stack).api.ips.overlaps(derivation(stack).cluster.pod_ips)
    assert conns(stack, f"{names.NS_AGENTS}/Deployment/kagent-controller", api, 443, "Kubernetes API")
    assert conns(stack, f"{names.NS_OBSERVABILITY}/StatefulSet/prometheus-", api, 443, "Kubernetes API")
    assert conns(stack, api, f"{names.NS_OBSERVABILITY}/Deployment/kube-prometheus-stack-operator", 10250, "webhook")
    assert conns(stack, api, "kube-system/Deployment/keda-operator-metrics-apiserver", 6443, "aggregated API")
    # Prometheus -> the targets of its ServiceMonitors, on the container ports behind the names
    prom = f"{names.NS_OBSERVABILITY}/StatefulSet/prometheus-"
    assert conns(stack, prom, f"{names.NS_INFERENCE}/Deployment/", why="ServiceMonitor")
    assert conns(stack, prom, f"{names.NS_DATA}/Deployment/milvus", 9091, "ServiceMonitor")
    assert conns(stack, prom, "kube-system/DaemonSet/dcgm-exporter", 9400, "ServiceMonitor")
    assert conns(stack, prom, "kube-system/Deployment/karpenter", 8080, "ServiceMonitor kube-system/karpenter")
    assert conns(stack, prom, f"{names.NS_HOST_MONITORING}/DaemonSet/", 9100, "ServiceMonitor")
    assert conns(stack, prom, str(derivation(stack).cluster.node_ips), 10250, "kubelet")   # the node subnets
    assert conns(stack, prom, "kube-system/Deployment/coredns", 9153, "ServiceMonitor")
    # LangFuse -> ClickHouse (both protocols), its PostgreSQL and the platform's Redis
    lf = f"{names.NS_OBSERVABILITY}/Deployment/langfuse-"
    assert conns(stack, lf, f"{names.NS_OBSERVABILITY}/StatefulSet/langfuse-clickhouse", 8123)
    assert conns(stack, lf, f"{names.NS_OBSERVABILITY}/StatefulSet/langfuse-clickhouse", 9000)
    # Milvus -> etcd and S3 (the gateway endpoint's public prefix-list addresses)
    assert conns(stack, f"{names.NS_DATA}/Deployment/milvus", f"{names.NS_DATA}/StatefulSet/milvus-etcd", 2379)
    assert conns(stack, f"{names.NS_DATA}/Deployment/milvus", PUBLIC, 443, "object storage")
    # KEDA -> Prometheus (prometheus triggers) and Redis (the agents' redis triggers)
    keda = "kube-system/Deployment/keda-operator"
    assert conns(stack, keda, f"{names.NS_OBSERVABILITY}/StatefulSet/prometheus-", 9090, "KEDA prometheus trigger")
    assert conns(stack, keda, why="KEDA redis trigger")
    # kagent's controller -> its tools: the in-cluster MCP server and the remote one over HTTPS
    assert conns(stack, f"{names.NS_AGENTS}/Deployment/kagent-controller", f"{names.NS_AGENTS}/Deployment/knowledge-base", 8000)
    assert conns(stack, f"{names.NS_AGENTS}/Deployment/kagent-controller", PUBLIC, 443, "ticketing")
    assert conns(stack, f"{names.NS_AGENTS}/Deployment/knowledge-base", f"{names.NS_DATA}/", names.PORT_MILVUS)


def test_dev_uses_the_in_cluster_stores():
    lf = f"{names.NS_OBSERVABILITY}/Deployment/langfuse-"
    assert conns("dev", lf, f"{names.NS_DATA}/Deployment/valkey", names.PORT_REDIS, "redis-connection")
    assert conns("dev", lf, f"{names.NS_OBSERVABILITY}/StatefulSet/langfuse-postgresql", 5432)
    assert conns("dev", "kube-system/Deployment/keda-operator", f"{names.NS_DATA}/Deployment/valkey", names.PORT_REDIS)


def test_prod_uses_rds_and_elasticache_in_the_vpc():
    v, lf = vpc("prod"), f"{names.NS_OBSERVABILITY}/Deployment/langfuse-"
    assert conns("prod", lf, v, 5432, "DATABASE_HOST")
    assert conns("prod", lf, v, names.PORT_REDIS, "redis-connection")
    assert conns("prod", f"{names.NS_AGENTS}/Deployment/kagent-controller", v, 5432, "kagent-database")
    assert conns("prod", "kube-system/Deployment/keda-operator", v, names.PORT_REDIS, "KEDA redis trigger")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_operator_pods_connections(stack):
    """The gateway proxies -> the model servers of every HTTPRoute; the agents -> the gateway."""
    if not any(o.controller for o in plan_of(stack).objects):
        pytest.skip("the plan has no operator-made objects yet (plan/operators/ not wired into analyse)")
    assert conns(stack, f"{names.NS_GATEWAY}/", f"{names.NS_INFERENCE}/Deployment/", why="gateway -> HTTPRoute")
    assert conns(stack, f"{names.NS_AGENTS}/", f"{names.NS_GATEWAY}/", why="ModelConfig")
    assert conns(stack, "", f"{names.NS_GATEWAY}/", why="load balancer")
    assert conns(stack, f"{names.NS_GATEWAY}/", PUBLIC, 443, "GatewayExtension")   # the JWT issuer's JWKS
    assert reach(stack)["unresolved"] == []


# ------------------------------------------------------------------------------------ caught

def _with(stack: str, change) -> dict:
    """The reachability of the stack's objects after `change(objects)` (a deep copy)."""
    plan = plan_of(stack)
    objects = [copy.copy(o) for o in plan.objects]
    for o in objects:
        o.manifest = copy.deepcopy(o.manifest)
    change(objects)
    return connections.reachability(SimpleNamespace(objects=objects, resources=plan.resources, region=plan.region))


def _one(objects, kind: str, ns: str, name: str):
    (o,) = [o for o in objects if o.kind == kind and o.namespace == ns and o.name == name]
    return o


def test_a_service_monitor_with_a_wrong_port_name_is_a_finding():
    def rename(objects):
        _one(objects, "ServiceMonitor", "kube-system", "karpenter").manifest["spec"]["endpoints"][0]["port"] = "metrics"

    r = _with("prod", rename)
    (f,) = [f for f in r["findings"] if f["object"] == "kube-system/ServiceMonitor/karpenter"]
    assert "endpoint port 'metrics' is not a port name of the Services it selects" in f["message"]
    assert "kube-system/karpenter: http-metrics" in f["message"]
    assert f in connections.rejections(r) and f["check"] == "reachability"
    assert not [c for c in r["connections"] if "ServiceMonitor kube-system/karpenter" in c["why"]]


def test_a_service_monitor_that_selects_no_service_or_no_prometheus_is_a_finding():
    def break_them(objects):
        _one(objects, "ServiceMonitor", "kube-system", "karpenter").manifest["spec"]["selector"] = {
            "matchLabels": {"app.kubernetes.io/name": "no-such-app"}}
        (prom,) = [o for o in objects if o.kind == "Prometheus"]
        prom.manifest["spec"]["serviceMonitorSelector"] = {"matchLabels": {"release": "kube-prometheus-stack"}}

    r = _with("dev", break_them)
    messages = {f["object"]: f["message"] for f in r["findings"]}
    assert messages["kube-system/ServiceMonitor/karpenter"].startswith("selects no Service")
    # monitors without the release label are now ignored by Prometheus: each is a finding
    unlabelled = [o.ref for o in plan_of("dev").objects if o.kind == "ServiceMonitor"
                  and (o.metadata.get("labels") or {}).get("release") != "kube-prometheus-stack"]
    assert unlabelled and all("no Prometheus selects" in messages.get(ref, "") or ref == "kube-system/ServiceMonitor/karpenter"
                              for ref in unlabelled)


def test_a_missing_flow_is_caught():
    """Take ai-agents' allow-egress away: the agents' namespace connections are reported denied."""
    def drop(objects):
        objects.remove(_one(objects, "NetworkPolicy", names.NS_AGENTS, "allow-egress"))

    r = _with("prod", drop)
    denied = {(c["from"], c["to"], c["port"]) for c in r["denied"]}
    controller = f"{names.NS_AGENTS}/Deployment/kagent-controller"
    assert (controller, PUBLIC, 443) in denied                          # the ticketing tool
    assert (controller, vpc("prod"), 5432) in denied                    # its RDS database
    assert (controller, f"{names.NS_AGENTS}/Deployment/knowledge-base", 8000) in denied
    rejected = connections.rejections(r)
    assert any(controller in x["message"] and "ticketing" in x["message"] for x in rejected)


def test_a_pod_on_the_node_resolver_needs_egress_to_the_vpc_resolver():
    """With dnsPolicy Default a pod sends its queries from its own address to the VPC's Route 53
    Resolver: an egress policy that admits CoreDNS only denies them (a plan that took Karpenter for a
    CoreDNS client would pass it)."""
    def dns_only(objects):
        objects.append(K8sObject({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "karpenter-dns-only", "namespace": "kube-system"},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "karpenter"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}},
            "test"))

    resolver = f"{names.vpc_resolver_ip(vpc('prod'))}/32"
    denied = {(c["from"], c["to"], c["port"], c["protocol"]) for c in _with("prod", dns_only)["denied"]}
    assert {("kube-system/Deployment/karpenter", resolver, 53, p) for p in ("UDP", "TCP")} <= denied


def test_vpc_resolver_is_the_base_address_plus_two():
    assert names.vpc_resolver_ip("10.0.0.0/16") == "10.0.0.2"
    assert names.vpc_resolver_ip("172.31.16.0/20") == "172.31.16.2"


# ------------------------------------------------------------------------------------ nothing else

def granted(stack: str, src_ns: str, dst) -> PortSet:
    """The ports FLOWS grants from namespace `src_ns` to pod `dst` (its dst_pods narrowing included;
    a flow for a feature counts as granted wherever it could apply). Flows from the VPC CIDR grant
    no namespace."""
    plan = plan_of(stack)
    managed = sorted(o.name for o in plan.objects if o.kind == "Namespace" and not o.group)
    everywhere = [*managed, *derivation(stack).cluster.namespaces]
    features = {f.when: everywhere for f in FLOWS if f.when is not None}
    out = PortSet()
    for src, dst_ns, f in expand(FLOWS, managed, tenants(stack), features):
        if src != src_ns or dst_ns != dst.namespace:
            continue
        if f.dst_pods and not selector_matches({"matchLabels": dict(f.dst_pods)}, dst.labels):
            continue
        out = out | (PortSet.everything() if f.ports is None else PortSet((p, n, n) for p, n in f.ports))
    return out


def stores(stack: str) -> list:
    return [p for p in derivation(stack).cluster.pods if not p.wildcard and (
        p.namespace == names.NS_DATA or (p.namespace == names.NS_OBSERVABILITY
                                         and p.labels.get("app.kubernetes.io/name") in OBSERVABILITY_STORES))]


def ungranted(stack: str, sources: list[str]) -> list[str]:
    d = derivation(stack)
    out = []
    for src_ns in sources:
        srcs = [p for p in d.cluster.pods if p.namespace == src_ns] + probes([src_ns])
        for store in stores(stack):
            if store.namespace == src_ns:
                continue
            may = PortSet()
            for s in srcs:
                may = may | d.cluster.reachable_ports(s, store)
            extra = [label for label in may.labels() if label not in (may & granted(stack, src_ns, store)).labels()]
            if extra:
                out.append(f"{src_ns} -> {store.ref}: {', '.join(extra)}")
    return out


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_tenants_reach_the_platform_stores_only_as_flows_grant(stack):
    assert stores(stack), "no stores found"
    assert ungranted(stack, tenants(stack)) == []
    # and the grant is real: a tenant's pods may reach Milvus and Redis in ai-data
    d, t = derivation(stack), tenants(stack)[0]
    milvus = [p for p in stores(stack) if p.labels.get("app.kubernetes.io/name") == "milvus"
              and any(cp.number == names.PORT_MILVUS for cp in p.ports)]
    assert milvus and any((names.PORT_MILVUS, "TCP") in d.cluster.reachable_ports(probes([t])[0], p) for p in milvus)
