"""Network layer: VPC, private, public and control-plane subnets over N AZs, NAT, S3 gateway
endpoint, and the subnet tags the AWS Load Balancer Controller and Karpenter discover subnets by."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig
from domain.subnets import plan_subnets


@dataclass
class NetworkArgs:
    config: NetworkConfig
    cluster_name: str
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    """VPC with private subnets (nodes, pods, internal load balancers), public subnets (NAT,
    internet-facing load balancers) and control-plane subnets (the EKS cluster's subnets: only its
    network interfaces). The AZs are the region's first N zones by name."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    control_plane_subnet_ids: list[pulumi.Output[str]]
    control_plane_cidrs: list[str]
    availability_zones: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:network:Network", name, None, opts)
        cfg = args.config
        self._name, self._args = name, args
        azs = aws.get_availability_zones_output(state="available",
                                                filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
                                                opts=pulumi.InvokeOutputOptions(parent=self))
        self.availability_zones = azs.names.apply(lambda names: sorted(names)[: cfg.availability_zones])
        cidrs = plan_subnets(cfg.cidr, cfg.availability_zones, cfg.private_subnet_prefix, cfg.public_subnet_prefix,
                             cfg.control_plane_subnet_prefix)
        self.vpc, igw = self._vpc()
        public, nats = self._public_subnets(cidrs.public, igw)
        private, private_rts = self._private_subnets(cidrs.private, nats)
        control_plane = self._control_plane_subnets(cidrs.control_plane, private_rts)
        self._s3_endpoint(private_rts)

        self.vpc_id = self.vpc.id
        self.vpc_cidr = str(cfg.cidr)
        self.private_subnet_ids = [s.id for s in private]
        self.public_subnet_ids = [s.id for s in public]
        self.control_plane_subnet_ids = [s.id for s in control_plane]
        self.control_plane_cidrs = list(cidrs.control_plane)
        self.register_outputs({"vpcId": self.vpc_id, "privateSubnetIds": self.private_subnet_ids,
                               "publicSubnetIds": self.public_subnet_ids,
                               "controlPlaneSubnetIds": self.control_plane_subnet_ids,
                               "availabilityZones": self.availability_zones})

    def _tags(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self._args.tags, **(extra or {}), "Name": f"{self._args.cluster_name}-{name}"}

    def _zone(self, i: int) -> pulumi.Output[str]:
        return self.availability_zones.apply(lambda z: z[i])

    def _vpc(self) -> tuple[aws.ec2.Vpc, aws.ec2.InternetGateway]:
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=str(self._args.config.cidr), enable_dns_hostnames=True,
                          enable_dns_support=True, tags=self._tags("vpc"), opts=child)
        # The default security group of a new VPC allows all traffic between its members: strip it.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[],
                                     tags=self._tags("default-deny"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=self._tags("igw"), opts=child)
        return vpc, igw

    def _public_subnets(self, cidrs: list[str], igw: aws.ec2.InternetGateway
                        ) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.NatGateway]]:
        """A public subnet per AZ (internet-facing load balancers) and the NAT gateways: one per AZ,
        or one in the first AZ."""
        name, cfg, child = self._name, self._args.config, pulumi.ResourceOptions(parent=self)
        cluster = self._args.cluster_name
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=self.vpc.id,
                                       routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
                                       tags=self._tags("public"), opts=child)
        public, nats = [], []
        for i in range(cfg.availability_zones):
            suffix = chr(ord("a") + i)
            subnet = aws.ec2.Subnet(
                f"{name}-public-{suffix}", vpc_id=self.vpc.id, cidr_block=cidrs[i], availability_zone=self._zone(i),
                map_public_ip_on_launch=False,
                tags=self._tags(f"public-{suffix}", {"kubernetes.io/role/elb": "1",
                                                     f"kubernetes.io/cluster/{cluster}": "shared"}),
                opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{suffix}", subnet_id=subnet.id,
                                          route_table_id=public_rt.id, opts=pulumi.ResourceOptions(parent=subnet))
            public.append(subnet)
            if cfg.nat_gateways == "perAz" or i == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{suffix}", domain="vpc", tags=self._tags(f"nat-{suffix}"), opts=child)
                nats.append(aws.ec2.NatGateway(
                    f"{name}-nat-{suffix}", allocation_id=eip.id, subnet_id=subnet.id, tags=self._tags(f"nat-{suffix}"),
                    # NAT needs the internet gateway attached before it can route.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
        return public, nats

    def _private_subnets(self, cidrs: list[str], nats: list[aws.ec2.NatGateway]
                         ) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.RouteTable]]:
        """A private subnet per AZ (nodes, pods, internal load balancers; Karpenter discovers them),
        each routed through its AZ's NAT gateway (or the single one)."""
        name, cfg, child = self._name, self._args.config, pulumi.ResourceOptions(parent=self)
        cluster = self._args.cluster_name
        discovery = {"karpenter.sh/discovery": cluster, f"kubernetes.io/cluster/{cluster}": "shared",
                     "kubernetes.io/role/internal-elb": "1"}
        private, route_tables = [], []
        for i in range(cfg.availability_zones):
            suffix = chr(ord("a") + i)
            nat = nats[i] if cfg.nat_gateways == "perAz" else nats[0]
            rt = aws.ec2.RouteTable(f"{name}-private-{suffix}-rt", vpc_id=self.vpc.id,
                                    routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                                    tags=self._tags(f"private-{suffix}"), opts=child)
            route_tables.append(rt)
            subnet = aws.ec2.Subnet(
                f"{name}-private-{suffix}", vpc_id=self.vpc.id, cidr_block=cidrs[i], availability_zone=self._zone(i),
                tags=self._tags(f"private-{suffix}", discovery), opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{suffix}", subnet_id=subnet.id,
                                          route_table_id=rt.id, opts=pulumi.ResourceOptions(parent=subnet))
            private.append(subnet)
        return private, route_tables

    def _control_plane_subnets(self, cidrs: list[str], route_tables: list[aws.ec2.RouteTable]) -> list[aws.ec2.Subnet]:
        """A small subnet per AZ for the EKS control plane's network interfaces alone (EKS User Guide,
        "View Amazon EKS networking requirements for VPC and subnets": small dedicated subnets for
        them, nodes and load balancers elsewhere). No load balancer or Karpenter discovery tag, so
        neither lands here; routed like the node subnets of its AZ (its route table: NAT)."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        out = []
        for i, cidr in enumerate(cidrs):
            suffix = chr(ord("a") + i)
            subnet = aws.ec2.Subnet(f"{name}-control-plane-{suffix}", vpc_id=self.vpc.id, cidr_block=cidr,
                                    availability_zone=self._zone(i), tags=self._tags(f"control-plane-{suffix}"),
                                    opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-control-plane-{suffix}", subnet_id=subnet.id,
                                          route_table_id=route_tables[i].id, opts=pulumi.ResourceOptions(parent=subnet))
            out.append(subnet)
        return out

    def _s3_endpoint(self, route_tables: list[aws.ec2.RouteTable]) -> None:
        # Model weights and object storage traffic stays off the NAT gateways (cost and throughput).
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        aws.ec2.VpcEndpoint(f"{self._name}-s3", vpc_id=self.vpc.id, vpc_endpoint_type="Gateway",
                            service_name=region.region.apply(lambda r: f"com.amazonaws.{r}.s3"),
                            route_table_ids=[rt.id for rt in route_tables], tags=self._tags("s3"),
                            opts=pulumi.ResourceOptions(parent=self))
