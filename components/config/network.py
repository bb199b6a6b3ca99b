"""`network`: the VPC."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import Problem, Section
from domain.subnets import SubnetsDoNotFitError, plan_subnets


class NetworkConfig(Section):
    """The VPC. Private subnets hold nodes and pods (the VPC CNI gives pods VPC addresses, so
    they are large); public subnets hold NAT gateways and internet-facing load balancers;
    control-plane subnets hold only the EKS control plane's network interfaces (the cluster's
    subnets), so NetworkPolicies can name the Kubernetes API by their CIDRs instead of the VPC."""

    cidr: ipaddress.IPv4Network = Field(
        ipaddress.IPv4Network("10.0.0.0/16"), description="the VPC's IPv4 range: a private (RFC 1918) /16 to /24")
    availability_zones: int = Field(3, ge=2, le=6, description="AZs the subnets (one private, one public each) spread over")
    nat_gateways: Literal["single", "perAz"] = Field(
        "perAz", description="one NAT gateway for the VPC, or one per AZ (no cross-AZ egress dependency)")
    private_subnet_prefix: int = Field(19, ge=16, le=28, description="prefix length of each private subnet (nodes and pods)")
    public_subnet_prefix: int = Field(
        24, ge=16, le=28, description="prefix length of each public subnet (NAT gateways, internet-facing load balancers)")
    # EKS User Guide, "View Amazon EKS networking requirements for VPC and subnets": cluster subnets
    # need at least six free IP addresses (16 recommended) and AWS recommends small (/28), dedicated
    # subnets for the control plane's network interfaces; AWS keeps 5 addresses of every subnet, so
    # a /29 leaves 3: /28 is the smallest that works.
    control_plane_subnet_prefix: int = Field(
        28, ge=20, le=28, description="prefix length of each control-plane subnet (one per AZ, carved after the "
                                      "private and public subnets; only the EKS control plane's network interfaces)")

    def problems(self) -> Iterator[Problem]:
        vpc_prefix = self.cidr.prefixlen
        if not (16 <= vpc_prefix <= 24):
            yield "cidr", f"VPC prefix /{vpc_prefix} is outside what AWS allows for a platform VPC (/16 to /24)"
        for key, prefix in (("privateSubnetPrefix", self.private_subnet_prefix),
                            ("publicSubnetPrefix", self.public_subnet_prefix)):
            if prefix <= vpc_prefix:
                yield key, f"/{prefix} subnets do not fit inside the VPC {self.cidr}"
        needed = self.availability_zones * (2 ** (32 - self.private_subnet_prefix)
                                            + 2 ** (32 - self.public_subnet_prefix))
        if needed > self.cidr.num_addresses:
            yield "cidr", (f"{self.availability_zones} AZs x (one /{self.private_subnet_prefix} private + one "
                           f"/{self.public_subnet_prefix} public subnet) need {needed} addresses; "
                           f"{self.cidr} has {self.cidr.num_addresses}")
        else:   # the private and public subnets fit: do the control-plane ones, after them?
            try:
                plan_subnets(self.cidr, self.availability_zones, self.private_subnet_prefix,
                             self.public_subnet_prefix, self.control_plane_subnet_prefix)
            except SubnetsDoNotFitError:
                yield "controlPlaneSubnetPrefix", (
                    f"{self.availability_zones} AZs x one /{self.control_plane_subnet_prefix} control-plane subnet do "
                    f"not fit {self.cidr} after the private and public subnets")
        if not self.cidr.is_private:
            yield "cidr", f"{self.cidr} is not a private (RFC 1918) range"
