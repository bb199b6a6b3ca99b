"""Network layer: subnet plan, AZ spread, NAT per stack, discovery tags, S3 endpoint."""

from __future__ import annotations

import ipaddress

import pytest

from domain.subnets import plan_subnets


def test_plan_subnets_aligned_disjoint_inside_vpc():
    vpc = ipaddress.IPv4Network("10.0.0.0/16")
    private, public, control_plane = plan_subnets(vpc, 3, 19, 24, 28)
    nets = [ipaddress.IPv4Network(n) for n in private + public + control_plane]
    assert [n.prefixlen for n in nets] == [19] * 3 + [24] * 3 + [28] * 3
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_plan_subnets_refuses_overflow():
    with pytest.raises(ValueError):
        plan_subnets(ipaddress.IPv4Network("10.0.0.0/20"), 3, 19, 24, 28)


def subnets(plan, kind):
    return [r for r in plan.by_type("aws:ec2/subnet:Subnet") if f"-{kind}-" in r.name]


@pytest.mark.parametrize("stack,azs,nats", [("dev", 2, 1), ("prod", 3, 3)])
def test_subnets_per_az_and_nat(request, stack, azs, nats):
    plan = request.getfixturevalue(f"{stack}_plan")
    private, public = subnets(plan, "private"), subnets(plan, "public")
    assert len(private) == len(public) == azs
    assert len({s.inputs["availabilityZone"] for s in private}) == azs
    assert len(plan.by_type("aws:ec2/natGateway:NatGateway")) == nats
    # every private route table sends 0.0.0.0/0 through a NAT gateway
    private_rts = [r for r in plan.by_type("aws:ec2/routeTable:RouteTable") if "private" in r.name]
    assert len(private_rts) == azs
    assert all(rt.inputs["routes"][0].get("natGatewayId") for rt in private_rts)


def test_discovery_tags(prod_plan):
    cluster = prod_plan.outputs["clusterName"]
    for s in subnets(prod_plan, "private"):
        tags = s.inputs["tags"]
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert tags["karpenter.sh/discovery"] == cluster
        assert "kubernetes.io/role/elb" not in tags
    for s in subnets(prod_plan, "public"):
        tags = s.inputs["tags"]
        assert tags["kubernetes.io/role/elb"] == "1"
        assert "karpenter.sh/discovery" not in tags, "Karpenter must never launch nodes in public subnets"
        assert s.inputs.get("mapPublicIpOnLaunch") is False


def test_s3_gateway_endpoint_on_private_route_tables(prod_plan):
    (ep,) = prod_plan.by_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert ep.inputs["vpcEndpointType"] == "Gateway"
    assert ep.inputs["serviceName"] == "com.amazonaws.us-west-2.s3"
    assert len(ep.inputs["routeTableIds"]) == 3


def test_default_security_group_is_emptied(prod_plan):
    (sg,) = prod_plan.by_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")
