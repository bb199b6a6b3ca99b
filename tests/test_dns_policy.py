"""A pod's DNS goes where its dnsPolicy says (Kubernetes "DNS for Services and Pods", Pod's DNS
Policy; plan/reachability/model.py Pod.resolver): `None` asks only its dnsConfig.nameservers, never
CoreDNS, so its egress must admit those addresses; `Default` asks the node's resolver (the VPC's
Route 53 Resolver, from the pod's own address)."""

from __future__ import annotations

from components import names
from plan.objects import K8sObject
from plan.reachability import Pod
from tests.test_flows import _with, vpc

NS = names.NS_AGENTS
NAMESERVER = "10.96.0.53"


def _deployment(dns_policy: str, nameservers: list[str] | None = None) -> K8sObject:
    spec = {"dnsPolicy": dns_policy, "containers": [{"name": "c", "image": "busybox:1.36"}]}
    if nameservers is not None:
        spec["dnsConfig"] = {"nameservers": nameservers}
    return K8sObject({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dns-probe", "namespace": NS},
                      "spec": {"selector": {"matchLabels": {"app": "dns-probe"}},
                               "template": {"metadata": {"labels": {"app": "dns-probe"}}, "spec": spec}}}, "test")


def _dns(reach: dict) -> set[tuple[str, int, str, bool]]:
    return {(c["to"], c["port"], c["protocol"], c["allowed"]) for c in reach["connections"]
            if c["from"] == f"{NS}/Deployment/dns-probe" and "DNS" in c["why"]}


def test_resolver_of_each_dns_policy():
    assert Pod("ns", "Deployment/x", dns_policy="None").resolver == "none"
    assert Pod("ns", "Deployment/x", dns_policy="Default").resolver == "node"
    assert Pod("ns", "Deployment/x", host_network=True).resolver == "node"        # hostNetwork + ClusterFirst
    assert Pod("ns", "Deployment/x", host_network=True, dns_policy="ClusterFirstWithHostNet").resolver == "cluster"
    assert Pod("ns", "Deployment/x").resolver == "cluster"


def test_dns_policy_none_asks_its_nameservers_only_and_the_namespace_denies_them(prod_plan):   # _with() edits a copy of it
    """ai-agents' egress admits CoreDNS, not an arbitrary address: the pod's queries to its own
    nameserver are a denied connection the plan reports, and no CoreDNS flow is invented for it."""
    dns = _dns(_with("prod", lambda objects: objects.append(_deployment("None", [NAMESERVER]))))
    assert {(to, port, proto) for to, port, proto, _ in dns} == {(f"{NAMESERVER}/32", 53, p) for p in ("UDP", "TCP")}
    assert not [d for d in dns if d[3]]


def test_dns_policy_none_without_nameservers_makes_no_dns_connection(prod_plan):   # _with() edits a copy of it
    """Not a pod the API server admits ("DNS for Services and Pods", Pod's DNS Config: with dnsPolicy
    None "the list must contain at least one IP address"); the flows invent no resolver for it."""
    assert _dns(_with("prod", lambda objects: objects.append(_deployment("None", [])))) == set()


def test_dns_policy_default_asks_the_vpc_resolver_not_coredns(prod_plan):   # _with() edits a copy of it
    dns = _dns(_with("prod", lambda objects: objects.append(_deployment("Default"))))
    assert {to for to, *_ in dns} == {f"{names.vpc_resolver_ip(vpc('prod'))}/32"}
