"""The Kubernetes API as a NetworkPolicy peer: the EKS cluster's own subnets (dedicated control-plane
subnets, one small one per AZ) plus the `kubernetes` Service's ClusterIP, never the VPC; the subnets
are carved after the existing ones, so no existing subnet moves."""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
import sys
from types import SimpleNamespace

import pytest

from components import names
from components.config import NetworkConfig
from domain.subnets import plan_subnets
from plan.connections import build, reachability
from plan.connections.addons import control_plane_cidrs_of, node_cidrs_of
from plan.connections.images import endpoint_host
from plan.engine import ROOT
from plan.reachability import NS_NAME_LABEL, IPSet
from tests.conftest import stack_doc, write_stack

NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SUBNET = "aws:ec2/subnet:Subnet"
# main's subnets before the control-plane subnets existed (python -m plan dev|prod at 37c7686): they
# must not move (a changed cidrBlock replaces the subnet and everything in it).
EXISTING = {
    "dev": {"private": ["10.20.0.0/19", "10.20.32.0/19"], "public": ["10.20.64.0/24", "10.20.65.0/24"]},
    "prod": {"private": ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"],
             "public": ["10.0.96.0/24", "10.0.97.0/24", "10.0.98.0/24"]},
}
CONTROL_PLANE = {"dev": ["10.20.66.0/28", "10.20.66.16/28"], "prod": ["10.0.99.0/28", "10.0.99.16/28", "10.0.99.32/28"]}
CLUSTER_IP = "172.20.0.1/32"   # the `kubernetes` Service (EKS's default service CIDR for a 10/8 VPC)
API_USERS = (names.NS_COST, names.NS_GATEWAY, names.NS_AGENTS, names.NS_OBSERVABILITY, names.NS_INFERENCE)


def subnet_cidrs(plan, kind: str) -> list[str]:
    return [s.inputs["cidrBlock"] for s in sorted(plan.by_type(SUBNET), key=lambda s: s.name)
            if s.name.startswith(f"network-{kind}-")]


def rules(plan, direction: str):
    for r in plan.by_type(NETPOL):
        for rule in r.inputs["spec"].get(direction) or []:
            yield r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"], rule


def opens(rule, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(int(p.get("port", port)) == port for p in ports)


# ------------------------------------------------------------------------------------ the subnets

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_existing_subnets_keep_their_cidrs(stack):
    net = NetworkConfig.model_validate(stack_doc(stack)["config"]["agentic-platform:network"])
    got = plan_subnets(net.cidr, net.availability_zones, net.private_subnet_prefix, net.public_subnet_prefix,
                       net.control_plane_subnet_prefix)
    assert got.private == EXISTING[stack]["private"] and got.public == EXISTING[stack]["public"]
    assert got.control_plane == CONTROL_PLANE[stack]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_plan_creates_them_where_planned(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    assert subnet_cidrs(plan, "private") == EXISTING[stack]["private"]
    assert subnet_cidrs(plan, "public") == EXISTING[stack]["public"]
    assert subnet_cidrs(plan, "control-plane") == CONTROL_PLANE[stack]


def test_control_plane_subnets_are_for_the_cluster_alone(prod_plan):
    by_name = {s.name: s for s in prod_plan.by_type(SUBNET)}
    assocs = {a.name: a for a in prod_plan.by_type("aws:ec2/routeTableAssociation:RouteTableAssociation")}
    for suffix in "abc":
        cp, private = by_name[f"network-control-plane-{suffix}"], by_name[f"network-private-{suffix}"]
        assert cp.inputs["availabilityZone"] == private.inputs["availabilityZone"]
        # nodes and load balancers must never land here: no discovery tag of Karpenter or the LB controller
        assert not [k for k in cp.inputs["tags"] if k.startswith(("kubernetes.io/", "karpenter.sh/"))]
        deps = assocs[f"network-control-plane-{suffix}"].options["inputDependencies"]["routeTableId"]
        assert [d.rsplit("::", 1)[1] for d in deps] == [f"network-private-{suffix}-rt"]   # NAT, like the nodes


def test_the_cluster_uses_them_and_the_nodes_do_not(prod_plan):
    (cluster,) = prod_plan.by_type("eks:index:Cluster")
    deps = cluster.options["inputDependencies"]
    assert "privateSubnetIds" not in cluster.inputs and "privateSubnetIds" not in deps
    assert sorted(u.rsplit("::", 1)[1] for u in deps["subnetIds"]) == [f"network-control-plane-{s}" for s in "abc"]
    (group,) = prod_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert sorted(u.rsplit("::", 1)[1] for u in group.options["inputDependencies"]["subnetIds"]) == [
        f"network-private-{s}" for s in "abc"]
    assert control_plane_cidrs_of(prod_plan) == CONTROL_PLANE["prod"]
    assert node_cidrs_of(prod_plan, prod_plan.objects) == EXISTING["prod"]["private"]


def test_control_plane_subnets_that_do_not_fit_are_a_config_error():
    # a /22 filled exactly by 2 x /24 private + 2 x /24 public: nothing is left for the control plane
    cfg = {"cidr": "10.20.0.0/22", "availabilityZones": 2, "privateSubnetPrefix": 24, "publicSubnetPrefix": 24}
    assert list(NetworkConfig.model_validate(cfg).problems()) == [
        ("controlPlaneSubnetPrefix", "2 AZs x one /28 control-plane subnet do not fit 10.20.0.0/22 after the "
                                     "private and public subnets")]
    assert not list(NetworkConfig.model_validate({**cfg, "cidr": "10.20.0.0/21"}).problems())
    # /29 would leave 3 usable addresses; EKS needs 6
    with pytest.raises(ValueError):
        NetworkConfig.model_validate({**cfg, "cidr": "10.20.0.0/21", "controlPlaneSubnetPrefix": 29})


@pytest.mark.slow
def test_the_cli_names_the_key_and_exits_2(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:network"].update(cidr="10.20.0.0/22", privateSubnetPrefix=24, publicSubnetPrefix=24)
    proc = subprocess.run([sys.executable, "-m", "plan", str(write_stack(tmp_path, doc))], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "agentic-platform:network.controlPlaneSubnetPrefix: 2 AZs x one /28 control-plane subnet" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------ the policies

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_kube_api_ipblocks_are_the_control_plane_subnets_and_the_cluster_ip(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    api_rules = [(ns, rule) for ns, _n, rule in rules(plan, "egress")
                 if {"ipBlock": {"cidr": CLUSTER_IP}} in rule["to"]]
    assert {ns for ns, _ in api_rules} >= {names.NS_COST, names.NS_GATEWAY, names.NS_AGENTS, names.NS_OBSERVABILITY}
    for ns, rule in api_rules:
        assert [p["ipBlock"]["cidr"] for p in rule["to"]] == [*CONTROL_PLANE[stack], CLUSTER_IP], ns
        assert [int(p["port"]) for p in rule["ports"]] == [443]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_egress_on_443_covers_a_node_subnet(stack, request):
    """Pods have their node's subnet's addresses (VPC CNI): an egress ipBlock on 443 that covers a node
    subnet opens 443 of every pod and internal load balancer there (the VPC CIDR did)."""
    plan = request.getfixturevalue(f"{stack}_plan")
    nodes = [ipaddress.ip_network(c) for c in EXISTING[stack]["private"]]
    for ns, name, rule in rules(plan, "egress"):
        if not opens(rule, 443):
            continue
        for peer in rule.get("to") or []:
            if "ipBlock" in peer:
                block = IPSet.of(peer["ipBlock"]["cidr"], peer["ipBlock"].get("except") or ())
                assert not any(block.overlaps(IPSet([n])) for n in nodes), (ns, name, peer)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_webhook_ingress_is_from_the_control_plane_subnets(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    hooks = [rule for ns, name, rule in rules(plan, "ingress") if ns == names.NS_OBSERVABILITY
             and {"protocol": "TCP", "port": 10250} in [{**p, "port": int(p["port"])} for p in rule.get("ports", [])]]
    assert hooks and all([p["ipBlock"]["cidr"] for p in rule["from"]] == CONTROL_PLANE[stack] for rule in hooks)


# ------------------------------------------------------------------------------------ reachability

def test_api_users_reach_no_other_pod_on_443(prod_plan):
    """Every namespace with a Kubernetes API flow: 443 of another namespace's pods only where a flow
    names that namespace (agents -> the gateway's listener), never through the API peer."""
    reach = prod_plan.extras["reachability"]
    named = {(ns, peer["namespaceSelector"]["matchLabels"][NS_NAME_LABEL] if "namespaceSelector" in peer else ns)
             for ns, _n, rule in rules(prod_plan, "egress") if opens(rule, 443)
             for peer in rule.get("to") or [] if "ipBlock" not in peer}
    for row in reach["namespaces"]:
        if row["from"] in API_USERS and row["from"] != row["to"] and ("443/TCP" in row["ports"] or row["ports"] == ["any"]):
            assert (row["from"], row["to"]) in named, row
    opencost = {row["to"]: row["ports"] for row in reach["namespaces"] if row["from"] == names.NS_COST}
    assert opencost == {names.NS_COST: ["any"], names.NS_SYSTEM: ["53/TCP", "53/UDP"], names.NS_OBSERVABILITY: ["9090/TCP"]}


def test_the_api_server_is_modelled_at_the_control_plane_subnets(prod_plan):
    d = build(prod_plan)
    assert d.api is not None
    assert [str(n) for n in d.api.ips.nets] == ["10.0.99.0/27", "10.0.99.32/28"]   # the three /28s, collapsed
    assert not d.cluster.pod_ips.overlaps(d.api.ips)
    conns = prod_plan.extras["reachability"]["connections"]
    api = [c for c in conns if c.get("to_peer", "").startswith("kube-apiserver")]
    hooks = [c for c in conns if c.get("from_peer", "").startswith("kube-apiserver")]
    assert api and hooks and all(c["allowed"] for c in api + hooks)
    assert {c["from"].split("/")[0] for c in api} >= {names.NS_COST, names.NS_GATEWAY, names.NS_AGENTS}


# ------------------------------------------------------------------------------------ OpenCost's AWS endpoints

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_opencost_calls_ec2_in_the_cluster_region(stack, request):
    """OpenCost's spot prices: EC2 DescribeSpotPriceHistory through a client of the node's region
    (opencost pkg/cloud/aws/spotpricehistory.go), i.e. ec2.<region>.amazonaws.com; the price list
    stays on pricing.us-east-1 whatever the region."""
    plan = request.getfixturevalue(f"{stack}_plan")
    why = " ".join(c["why"] for c in plan.extras["reachability"]["connections"]
                   if c["from"].startswith(f"{names.NS_COST}/") and c["port"] == 443)
    assert f"(ec2.{plan.region}.amazonaws.com)" in why and "(pricing.us-east-1.amazonaws.com)" in why
    assert "(ec2.amazonaws.com)" not in why


def test_endpoint_hosts_follow_the_partition():
    assert endpoint_host("ec2.{region}.{suffix}", "eu-central-1") == "ec2.eu-central-1.amazonaws.com"
    assert endpoint_host("ec2.{region}.{suffix}", "cn-northwest-1") == "ec2.cn-northwest-1.amazonaws.com.cn"
    assert endpoint_host("pricing.{pricing_region}.{suffix}", "cn-northwest-1") == "pricing.cn-north-1.amazonaws.com.cn"
    assert endpoint_host("pricing.{pricing_region}.{suffix}", "ap-south-1") == "pricing.us-east-1.amazonaws.com"


def test_a_cluster_on_the_node_subnets_is_caught(prod_plan):
    """The plan takes the API server's addresses from the cluster resource's subnets, not from the
    config: a cluster put back on the node subnets (its interfaces there) while the policies name the
    control-plane CIDRs leaves every API client denied, and the plan exits 1."""
    private = [s.urn for s in prod_plan.by_type(SUBNET) if s.name.startswith("network-private-")]
    resources = []
    for r in prod_plan.resources:
        if r.type == "eks:index:Cluster":
            deps = {**r.options["inputDependencies"], "subnetIds": private}
            r = dataclasses.replace(r, options={**r.options, "inputDependencies": deps})
        resources.append(r)
    moved = SimpleNamespace(objects=prod_plan.objects, resources=resources, region=prod_plan.region)
    assert control_plane_cidrs_of(moved) == EXISTING["prod"]["private"]
    denied = reachability(moved)["denied"]
    assert denied and all(c.get("to_peer", "").startswith("kube-apiserver") or
                          c.get("from_peer", "").startswith("kube-apiserver") for c in denied)
    assert {c["from"].split("/")[0] for c in denied} >= {names.NS_COST, names.NS_GATEWAY}
    assert not prod_plan.extras["reachability"]["denied"]
