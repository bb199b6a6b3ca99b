"""The pod-level NetworkPolicy evaluator (plan/reachability/): every rule of Kubernetes'
semantics with a case that passes it and one that fails it, the VPC CNI's ClusterIP handling, and
the namespace matrix of both stacks' plans (tenants never reach each other)."""

from __future__ import annotations

import pytest

from plan.reachability import (
    Cluster,
    ContainerPort,
    External,
    IPSet,
    Pod,
    Policy,
    PortSet,
    egress_allows_ip,
    namespace_matrix,
    probes,
    selector_matches,
)

VPC = "10.0.0.0/16"
NS = {"a": {"team": "a"}, "b": {"team": "b"}, "c": {}}


def pod(ns: str, name: str, labels: dict | None = None, ports: tuple = (), host: bool = False) -> Pod:
    return Pod(ns, f"Deployment/{name}", dict(labels or {}), tuple(ContainerPort(*p) for p in ports), host_network=host)


def policy(ns: str, spec: dict, name: str = "p") -> Policy:
    return Policy(ns, name, spec)


def cluster(pods: list[Pod], policies: list[Policy], services: list[dict] = (), namespaces: dict = NS) -> Cluster:
    return Cluster(pods, policies, namespaces, list(services), pod_ips=IPSet.of(VPC))


DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


# ------------------------------------------------------------------------------------ selectors

@pytest.mark.parametrize("selector, labels, expected", [
    ({}, {}, True),
    ({}, {"x": "1"}, True),
    (None, {"x": "1"}, False),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "1"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchLabels": {"app": "web", "tier": "1"}}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, {"app": "api"}, True),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, {}, False),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {}, True),   # absent key
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": "x"}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "web"}, False),
])
def test_label_selectors(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


# ------------------------------------------------------------------------------------ isolation

def test_a_pod_no_policy_selects_allows_everything():
    web, db = pod("a", "web", {"app": "web"}), pod("a", "db", {"app": "db"})
    only_db = policy("a", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress", "Egress"]})
    c = cluster([web, db], [only_db])
    assert c.ingress(web, db, 80) and c.egress(web, db, 80)          # web: not selected, not isolated
    assert not c.ingress(db, web, 80) and not c.egress(db, web, 80)  # db: isolated both ways, no rule


def test_policy_types_default_ingress_only_without_egress_rules():
    web, other = pod("a", "web"), pod("b", "other")
    ingress_only = policy("a", {"podSelector": {}, "ingress": []})        # no policyTypes, no egress rules
    c = cluster([web, other], [ingress_only])
    assert not c.ingress(web, other, 80)   # isolated for ingress (default ["Ingress"])
    assert c.egress(web, other, 80)        # not for egress
    # an empty egress list is no egress section: still Ingress only
    c = cluster([web, other], [policy("a", {"podSelector": {}, "egress": []})])
    assert c.egress(web, other, 80) and not c.ingress(web, other, 80)
    # egress rules make it ["Ingress", "Egress"]
    c = cluster([web, other], [policy("a", {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]})])
    assert not c.egress(web, other, 80) and c.egress(web, other, 53) and not c.ingress(web, other, 80)
    # explicit policyTypes win: Egress only leaves ingress open
    c = cluster([web, other], [policy("a", {"podSelector": {}, "policyTypes": ["Egress"]})])
    assert c.ingress(web, other, 80) and not c.egress(web, other, 80)


def test_policies_add_up_and_both_ends_must_agree():
    src, dst = pod("a", "src"), pod("b", "dst", ports=(("http", 8080),))
    out = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 8080}]}]})
    more = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 9090}]}]}, "q")
    closed = policy("b", DENY_ALL)
    opened = policy("b", {"podSelector": {}, "ingress": [{"ports": [{"port": 8080}]}]}, "open")
    c = cluster([src, dst], [out, more, closed])
    assert c.egress(src, dst, 8080) and c.egress(src, dst, 9090) and not c.egress(src, dst, 7000)
    assert not c.allows(src, dst, 8080)            # the destination's ingress says no
    c = cluster([src, dst], [out, closed, opened])
    assert c.allows(src, dst, 8080) and not c.allows(src, dst, 9090)   # 9090: egress no longer allows it


# ------------------------------------------------------------------------------------ ports

def test_ports_protocol_defaults_to_tcp_and_port_less_entries_cover_the_protocol():
    src, dst = pod("a", "src"), pod("a", "dst")
    c = cluster([src, dst], [policy("a", {"podSelector": {}, "policyTypes": ["Ingress"],
                                          "ingress": [{"ports": [{"port": 53}, {"protocol": "UDP"}]}]})])
    assert c.ingress(dst, src, 53, "TCP") and not c.ingress(dst, src, 54, "TCP")
    assert c.ingress(dst, src, 5353, "UDP")            # UDP entry without a port: every UDP port
    assert not c.ingress(dst, src, 53, "SCTP")
    # no ports at all: every port and protocol
    c = cluster([src, dst], [policy("a", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]})])
    assert c.ingress(dst, src, 1, "SCTP") and c.ingress(dst, src, 65535, "UDP")


def test_end_port_is_an_inclusive_range():
    src, dst = pod("a", "src"), pod("a", "dst")
    c = cluster([src, dst], [policy("a", {"podSelector": {}, "policyTypes": ["Ingress"],
                                          "ingress": [{"ports": [{"port": 32000, "endPort": 32768}]}]})])
    assert c.ingress(dst, src, 32000) and c.ingress(dst, src, 32768) and c.ingress(dst, src, 32500)
    assert not c.ingress(dst, src, 31999) and not c.ingress(dst, src, 32769)


def test_named_ports_resolve_against_the_destination_pod_in_both_directions():
    web = pod("a", "web", {"app": "web"}, (("http", 8080), ("metrics", 9100)))
    api = pod("a", "api", {"app": "api"}, (("http", 3000),))
    client = pod("a", "client", {"app": "client"}, (("http", 9999),))
    ingress = policy("a", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": "http"}]}]})
    c = cluster([web, api, client], [ingress])
    assert c.ingress(web, client, 8080) and not c.ingress(web, client, 9100) and not c.ingress(web, client, 9999)
    assert c.ingress(api, client, 3000) and not c.ingress(api, client, 8080)   # per destination pod
    assert not c.ingress(web, client, 8080, "UDP")                            # the name's protocol is TCP
    # egress: the name resolves against the destination, not the source (client's http is 9999)
    egress = policy("a", {"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
                          "egress": [{"ports": [{"port": "http"}]}]})
    c = cluster([web, api, client], [egress])
    assert c.egress(client, web, 8080) and c.egress(client, api, 3000)
    assert not c.egress(client, web, 9999) and not c.egress(client, api, 8080)
    # a destination without a port of that name: the rule does not apply
    bare = pod("a", "bare")
    assert not c.egress(client, bare, 8080)
    # and a named port never matches an address outside the cluster
    assert not c.egress(client, External("x", IPSet.of("203.0.113.0/24")), 8080)


# ------------------------------------------------------------------------------------ peers

def test_pod_selector_peer_is_the_policys_own_namespace():
    dst = pod("a", "dst")
    same, other = pod("a", "client", {"role": "client"}), pod("b", "client", {"role": "client"})
    c = cluster([dst, same, other], [policy("a", {"podSelector": {}, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})])
    assert c.ingress(dst, same, 80) and not c.ingress(dst, other, 80)


def test_namespace_selector_peer_and_the_metadata_name_label():
    dst = pod("a", "dst")
    in_b, in_c = pod("b", "x"), pod("c", "y")
    by_label = policy("a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]})
    c = cluster([dst, in_b, in_c], [by_label])
    assert c.ingress(dst, in_b, 80) and not c.ingress(dst, in_c, 80)
    by_name = policy("a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "c"}}}]}]})
    c = cluster([dst, in_b, in_c], [by_name])
    assert c.ingress(dst, in_c, 80) and not c.ingress(dst, in_b, 80)
    every = policy("a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})
    c = cluster([dst, in_b, in_c], [every])
    assert c.ingress(dst, in_b, 80) and c.ingress(dst, in_c, 80)
    assert not c.ingress(dst, External("lb", IPSet.of("10.0.5.0/24")), 80)   # selectors never match addresses


def test_namespace_and_pod_selector_in_one_peer_are_anded():
    dst = pod("a", "dst")
    b_client, b_other = pod("b", "x", {"role": "client"}), pod("b", "y", {"role": "other"})
    c_client = pod("c", "z", {"role": "client"})
    anded = policy("a", {"podSelector": {}, "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"role": "client"}}}]}]})
    c = cluster([dst, b_client, b_other, c_client], [anded])
    assert c.ingress(dst, b_client, 80)
    assert not c.ingress(dst, b_other, 80)     # namespace matches, pod does not
    assert not c.ingress(dst, c_client, 80)    # pod matches, namespace does not
    # two peers are ORed: the same selectors apart admit both
    ored = policy("a", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "b"}}}, {"podSelector": {"matchLabels": {"role": "client"}}}]}]})
    c = cluster([dst, b_client, b_other, c_client, pod("a", "local", {"role": "client"})], [ored])
    assert c.ingress(dst, b_other, 80) and c.ingress(dst, c.pods[-1], 80) and not c.ingress(dst, c_client, 80)


def test_ip_block_with_except():
    src = pod("a", "src")
    c = cluster([src], [policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}}], "ports": [{"port": 443}]}]})])
    public, private = External("x", IPSet.of("203.0.113.10/32")), External("y", IPSet.of("10.9.0.1/32"))
    assert c.egress(src, public, 443) and not c.egress(src, public, 80)
    assert not c.egress(src, private, 443)                                   # carved out by except
    assert not c.egress(src, External("z", IPSet.of("192.168.1.0/24")), 443)
    assert egress_allows_ip([{"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}]}], "10.1.2.3", 443) is False


def test_ip_block_matches_pods_by_their_address_range_must_and_may():
    src, dst = pod("a", "src"), pod("b", "dst")
    whole = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": VPC}}]}]})
    half = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/17"}}]}]})
    assert cluster([src, dst], [whole]).egress(src, dst, 80)                  # VPC CNI: pods have VPC addresses
    c = cluster([src, dst], [half])
    assert not c.egress(src, dst, 80, must=True)   # the pod may land outside 10.0.0.0/17
    assert c.egress(src, dst, 80, must=False)      # ... or inside
    # two rules' blocks together cover the range
    other_half = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "10.0.128.0/17"}}]}]}, "q")
    assert cluster([src, dst], [half, other_half]).egress(src, dst, 80, must=True)
    strict = Cluster([src, dst], [whole], NS, pod_ips=IPSet.of(VPC), ipblock_matches_pods=False)
    assert not strict.egress(src, dst, 80)         # plugins that keep ipBlock for cluster-external addresses


def test_host_network_pods_are_not_isolated_and_only_ip_blocks_match_them_for_sure():
    exporter = pod("m", "node-exporter", {"app": "node-exporter"}, (("metrics", 9100),), host=True)
    scraper = pod("o", "prometheus", {"app": "prometheus"})
    deny = policy("m", DENY_ALL)
    by_ns = policy("o", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "m"}}}], "ports": [{"port": 9100}]}]})
    c = cluster([exporter, scraper], [deny, by_ns])
    assert c.ingress(exporter, scraper, 9100)                 # default-deny does not apply to hostNetwork
    assert not c.egress(scraper, exporter, 9100, must=True)   # a selector may not match a hostNetwork pod...
    assert c.egress(scraper, exporter, 9100, must=False)      # ...or may (implementation-defined)
    by_ip = policy("o", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": VPC}}], "ports": [{"port": 9100}]}]})
    assert cluster([exporter, scraper], [deny, by_ip]).allows(scraper, exporter, 9100)   # the node's address


def test_empty_peers_mean_everything():
    src, dst = pod("a", "src"), pod("b", "dst")
    c = cluster([src, dst], [policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [], "ports": [{"port": 443}]}]})])
    assert c.egress(src, dst, 443) and c.egress(src, External("x", IPSet.of("8.8.8.8/32")), 443)
    assert not c.egress(src, dst, 80)


# ------------------------------------------------------------------------------------ services

SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "a"},
       "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                      {"name": "raw", "port": 81, "targetPort": 9000}]}}


def test_service_backends_resolve_the_target_port_per_pod():
    v1 = pod("a", "web-v1", {"app": "web"}, (("http", 8080),))
    v2 = pod("a", "web-v2", {"app": "web"}, (("http", 8081),))
    nameless = pod("a", "web-v3", {"app": "web"})
    c = cluster([v1, v2, nameless, pod("b", "web", {"app": "web"}, (("http", 1),))], [], [SVC])
    assert sorted((p.owner, n) for p, n, _, _ in c.backends(SVC, 80)) == [("Deployment/web-v1", 8080),
                                                                           ("Deployment/web-v2", 8081)]
    assert sorted(p.owner for p, n, _, _ in c.backends(SVC, "raw")) == ["Deployment/web-v1", "Deployment/web-v2",
                                                                        "Deployment/web-v3"]
    assert all(n == 9000 for _, n, _, _ in c.backends(SVC, 81))
    assert c.backends({**SVC, "spec": {**SVC["spec"], "selector": {}}}, 80) == []   # selector-less: no pods


def test_vpc_cni_sees_cluster_ips_only_for_services_the_egress_pod_selector_matches():
    web = pod("a", "web", {"app": "web", "tier": "front"}, (("http", 8080),))
    client = pod("b", "client")
    svc = {**SVC, "spec": {**SVC["spec"], "clusterIP": "172.20.1.1"}}
    ns_b = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}}

    def egress(peer: dict, ports: list | None = None) -> Policy:
        rule = {"to": [peer]} | ({"ports": ports} if ports else {})
        return policy("b", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [rule]})

    # namespace-wide: every Service of the namespace (podSelector absent = {})
    assert cluster([web, client], [egress(ns_b, [{"port": 8080}])], [svc]).vpc_cni_egress(client, svc, 80, "TCP", 8080)
    # pod selector with the Service's labels (and more pods labels than the Service selects): fine
    same = {**ns_b, "podSelector": {"matchLabels": {"app": "web"}}}
    assert cluster([web, client], [egress(same)], [svc]).vpc_cni_egress(client, svc, 80, "TCP", 8080)
    # a pod selector narrower than the Service's selector: Kubernetes allows, the VPC CNI drops the ClusterIP
    narrow = {**ns_b, "podSelector": {"matchLabels": {"tier": "front"}}}
    c = cluster([web, client], [egress(narrow)], [svc])
    assert c.egress(client, web, 8080) and not c.vpc_cni_egress(client, svc, 80, "TCP", 8080)
    # a selector-less Service (the API server's): only an ipBlock around its ClusterIP
    kube = {"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "172.20.0.1", "ports": [{"name": "https", "port": 443}]}}
    vpc = cluster([client], [egress({"ipBlock": {"cidr": VPC}}, [{"port": 443}])], [kube])
    assert not vpc.vpc_cni_egress(client, kube, 443, "TCP", 443)
    cip = cluster([client], [egress({"ipBlock": {"cidr": "172.20.0.1/32"}}, [{"port": 443}])], [kube])
    assert cip.vpc_cni_egress(client, kube, 443, "TCP", 443)


# ------------------------------------------------------------------------------------ matrices

def test_port_sets():
    s = PortSet([("TCP", 80, 80), ("TCP", 81, 90), ("UDP", 53, 53)])
    assert s.labels() == ["53/UDP", "80-90/TCP"]
    assert (85, "TCP") in s and (85, "UDP") not in s
    assert (s & PortSet([("TCP", 88, 100)])).labels() == ["88-90/TCP"]
    assert PortSet.everything().labels() == ["any"]


def test_matrix_probes_stand_for_any_pod_a_namespace_may_run():
    db = policy("b", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"], "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"role": "etl"}}}],
         "ports": [{"port": 5432}]}]})
    deny_b = policy("b", DENY_ALL, "deny")
    c = cluster([pod("b", "db", {"app": "db"}, (("pg", 5432),))], [db, deny_b])
    assert namespace_matrix(c) == []        # the db alone: isolated, and nobody in `a` yet
    rows = {(e["from"], e["to"]): e["ports"] for e in namespace_matrix(c, c.pods + probes(["a", "b"]))}
    # a pod of `a` labelled role=etl may reach the db on 5432; `a` is not isolated; `b` sends nothing
    assert rows == {("a", "a"): ["any"], ("a", "b"): ["5432/TCP"]}


def test_a_pod_meets_only_the_namespaces_its_policies_name():
    a = pod("a", "x", {"app": "x"})
    only_b = policy("a", {"podSelector": {}, "policyTypes": ["Egress"],
                          "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}, {"podSelector": {}}]}]})
    c = cluster([a], [only_b])
    assert c.peer_namespaces(a, "Egress", ["a", "b", "c"]) == {"a", "b"}
    assert c.peer_namespaces(a, "Ingress", ["a", "b", "c"]) is None   # not isolated for ingress: anyone


# The matrix judges each policy once per kind of peer (plan/reachability/matrix.py _Selection): these
# pairs differ only in what that key must tell apart, the first pod of `b` hiding the second otherwise.
WEB_OR_API = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
    {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 80}]},
    {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 82}]}]})
TO_HTTP = policy("a", {"podSelector": {}, "policyTypes": ["Egress"],
                       "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}]})
FROM_A_HTTP = policy("b", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
    {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}], "ports": [{"port": "http"}]}]})


@pytest.mark.parametrize("pol, b_pods, ports", [
    # the peer's labels (a podSelector reads them): web on 80, api on 82
    (WEB_OR_API, [pod("b", "web", {"app": "web"}), pod("b", "api", {"app": "api"})], ["80/TCP", "82/TCP"]),
    # the peer's own ports (egress to a port by name), the pods alike in labels and namespace
    (TO_HTTP, [pod("b", "x", {}, (("http", 8080),)), pod("b", "y", {}, (("http", 9090),))], ["8080/TCP", "9090/TCP"]),
    # the selected pod's own ports (ingress on a port by name), the source the same probe of `a`
    (FROM_A_HTTP, [pod("b", "x", {}, (("http", 8080),)), pod("b", "y", {}, (("http", 9090),))], ["8080/TCP", "9090/TCP"]),
])
def test_the_matrix_tells_apart_pods_a_policy_treats_differently(pol, b_pods, ports):
    c = cluster(b_pods, [pol])
    pods = probes(["a"])[1:] + b_pods   # the probe without labels: a wildcard would open every port
    rows = {(e["from"], e["to"]): e["ports"] for e in namespace_matrix(c, pods)}
    assert rows[("a", "b")] == ports
    assert ports == (c.reachable_ports(pods[0], b_pods[0]) | c.reachable_ports(pods[0], b_pods[1])).labels()
    for first in b_pods:   # each alone: one port, so neither hides the other
        alone = {(e["from"], e["to"]): e["ports"] for e in namespace_matrix(c, [pods[0], first])}
        assert len(alone[("a", "b")]) == 1


def test_the_matrix_tells_apart_peers_by_namespace_and_host_network():
    """The peer's namespace (its labels) and hostNetwork (its addresses) are the rest of that key."""
    to_team_b = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}], "ports": [{"port": 80}]},
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"port": 90}]}]})
    b_host, b_pod, c_pod = pod("b", "h", host=True), pod("b", "x"), pod("c", "x")
    c = Cluster([b_host, b_pod, c_pod], [to_team_b], NS, pod_ips=IPSet.of("10.0.0.0/16"), node_ips=IPSet.of("10.1.0.0/16"))
    src = probes(["a"])[1]
    rows = {(e["from"], e["to"]): e["ports"] for e in namespace_matrix(c, [src, c_pod, b_host, b_pod])}
    assert rows[("a", "c")] == ["90/TCP"] and rows[("a", "b")] == ["80/TCP", "90/TCP"]
    def alone(peer: Pod) -> list[str]:   # (a, a) comes first: the probe itself, a peer of another namespace
        return {(e["from"], e["to"]): e["ports"] for e in namespace_matrix(c, [src, peer])}[("a", peer.namespace)]
    assert (alone(b_host), alone(b_pod), alone(c_pod)) == (["80/TCP"], ["80/TCP", "90/TCP"], ["90/TCP"])


def test_a_namespace_named_by_its_name_label_is_that_namespace_alone():
    """A namespaceSelector on kubernetes.io/metadata.name alone is looked up by name: the label is each
    namespace's own name (the API server sets it; a Namespace object's own value is overwritten)."""
    by_name = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}
    to_b = policy("a", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [by_name]}]})
    a = pod("a", "x")
    c = cluster([a], [to_b], namespaces={**NS, "c": {"kubernetes.io/metadata.name": "b"}})
    assert c.peer_namespaces(a, "Egress", ["a", "b", "c"]) == {"b"}
    assert c.peer_namespaces(a, "Egress", ["a", "c"]) == set()   # of the namespaces asked about only
