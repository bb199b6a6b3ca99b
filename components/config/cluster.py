"""`cluster`: the EKS cluster, who reaches its API and who administers it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import DnsName, Problem, Section


class AdminPrincipal(Section):
    """An IAM principal given cluster-admin through an EKS access entry."""

    name: DnsName
    arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$", description="IAM role or user ARN")


class DeployerConfig(Section):
    """The IAM principal that runs `pulumi up`. pulumi-eks 4.4 creates the cluster with
    `accessConfig.bootstrapClusterCreatorAdminPermissions: true`, hard-coded (pulumi/pulumi-eks
    nodejs/eks/cluster/cluster.ts; not overridable: pulumi/pulumi-eks#2373), so EKS gives the
    creator a cluster-admin access entry. Naming it here makes that admin visible (a tag on the
    cluster, a stack output, a policy) and lets validation keep it out of `admins`, where a second
    entry for the same principal fails with 409 ResourceInUseException."""

    arn: str = Field(description="the IAM role or user ARN (not an sts assumed-role session ARN)")

    def problems(self) -> Iterator[Problem]:
        if re.fullmatch(r"arn:aws[a-z-]*:sts::\d{12}:assumed-role/([^/]+)/.+", self.arn):
            role = self.arn.split("/")[1]
            yield "arn", (f"'{self.arn}' is a session; EKS grants the access entry to its role: "
                          f"arn:aws:iam::{self.arn.split(':')[4]}:role/{role}")
        elif not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=.@/-]+", self.arn):
            yield "arn", (f"'{self.arn}' is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>); "
                          "it is written into the cluster's tags, which allow letters, digits and + = . _ : / @ -")


class ApiAccessConfig(Section):
    """How the deployer (and operators) reach the API server's private endpoint: each entry becomes
    an ingress rule on 443 of the EKS cluster security group. EKS: a private endpoint is reachable
    only from the VPC and networks connected to it, and the cluster security group must allow 443
    from them (docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html, "Accessing a private
    only API server")."""

    cidrs: list[ipaddress.IPv4Network] = Field(default_factory=list,
                                               description="a VPN's client CIDR, a peered or transit-gateway network")
    security_group_ids: list[str] = Field(default_factory=list,
                                          description="security groups of runners or bastions in the VPC or a peered VPC")

    def problems(self) -> Iterator[Problem]:
        for i, cidr in enumerate(self.cidrs):
            if cidr.prefixlen == 0:
                yield f"cidrs[{i}]", f"{cidr} opens the API server to every address; list your VPN or network CIDRs"
        for i, sg in enumerate(self.security_group_ids):
            if not re.fullmatch(r"sg-[0-9a-f]{8}([0-9a-f]{9})?", sg):
                yield f"securityGroupIds[{i}]", f"'{sg}' is not a security group id (sg-0123456789abcdef0)"
        for key, items in (("cidrs", [str(c) for c in self.cidrs]), ("securityGroupIds", self.security_group_ids)):
            for i, item in enumerate(items):
                if items.index(item) != i:
                    yield f"{key}[{i}]", f"'{item}' is listed twice"

    def empty(self) -> bool:
        return not (self.cidrs or self.security_group_ids)


class SystemNodesConfig(Section):
    """The managed node group for cluster add-ons and controllers (tainted CriticalAddonsOnly)."""

    instance_types: list[str] = Field(default_factory=lambda: ["m7i.xlarge"], min_length=1,
                                      description="EC2 instance types of the system node group")
    min_size: int = Field(2, ge=1, description="fewest nodes")
    max_size: int = Field(4, ge=1, description="most nodes")
    desired_size: int = Field(2, ge=1, description="nodes at creation (between minSize and maxSize)")
    disk_size_gib: int = Field(50, ge=20, le=1000, alias="diskSizeGiB", description="encrypted gp3 root volume per node, GiB")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = Field("ON_DEMAND", description="on-demand or spot system nodes")

    def problems(self) -> Iterator[Problem]:
        if not self.min_size <= self.desired_size <= self.max_size:
            yield "desiredSize", (f"must lie between minSize ({self.min_size}) and maxSize ({self.max_size}); "
                                  f"got {self.desired_size}")
        for i, t in enumerate(self.instance_types):
            if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", t):
                yield f"instanceTypes[{i}]", f"'{t}' is not an EC2 instance type name"


class ClusterConfig(Section):
    """The EKS cluster."""

    name: DnsName | None = Field(None, description="defaults to agentic-<stack>")
    version: str = Field("1.34", pattern=r"^1\.(2[89]|3\d)$",
                         description="Kubernetes minor version of the EKS control plane (1.28 to 1.39)")
    endpoint: Literal["private", "publicAndPrivate"] = Field(
        "private", description="API server endpoint: VPC-only, or public (limited to publicAccessCidrs) and private")
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="CIDRs allowed to the public endpoint (only with publicAndPrivate)")
    api_access: ApiAccessConfig = Field(default_factory=ApiAccessConfig)
    deployer: DeployerConfig | None = Field(None, description="required: the principal that runs pulumi up")
    admins: list[AdminPrincipal] = Field(default_factory=list,
                                         description="IAM principals given cluster-admin through access entries (not the deployer)")
    system_nodes: SystemNodesConfig = Field(default_factory=SystemNodesConfig)
    log_retention_days: int = Field(90, ge=1, le=3653,
                                    description="CloudWatch retention of the control-plane logs (api, audit, authenticator)")
    deletion_protection: bool = Field(False, description="EKS deletion protection of the cluster")
    preflight: bool = Field(False, description="check GPU offerings and vCPU quotas during pulumi preview/up")

    def problems(self) -> Iterator[Problem]:
        if self.endpoint == "publicAndPrivate":
            if not self.public_access_cidrs:
                yield "publicAccessCidrs", "endpoint 'publicAndPrivate' needs the CIDRs allowed to reach it"
            for i, cidr in enumerate(self.public_access_cidrs):
                if cidr.prefixlen == 0:
                    yield f"publicAccessCidrs[{i}]", f"{cidr} opens the API server to the internet; list your own CIDRs"
        elif self.public_access_cidrs:
            yield "publicAccessCidrs", "is only used with endpoint 'publicAndPrivate'"
        names = [a.name for a in self.admins]
        for i, a in enumerate(self.admins):
            if names.count(a.name) > 1:
                yield f"admins[{i}].name", f"'{a.name}' is used by more than one admin"
        yield from self.access_problems()

    def access_problems(self) -> Iterator[Problem]:
        """Who reaches the API server and who is admin: also checked when the `cluster` key is
        absent (the defaults: a private endpoint, no deployer)."""
        if self.deployer is None:
            yield "deployer", ("is required: {arn: <the IAM role or user that runs pulumi up>}; pulumi-eks makes "
                               "it cluster admin (bootstrapClusterCreatorAdminPermissions), so it is declared here")
        else:
            for i, a in enumerate(self.admins):
                if a.arn == self.deployer.arn:
                    yield f"admins[{i}].arn", ("is cluster.deployer, which pulumi-eks already makes cluster admin "
                                               "(bootstrapClusterCreatorAdminPermissions, pulumi/pulumi-eks#2373): a "
                                               "second access entry for it fails with 409; remove it from admins")
        if self.endpoint == "private" and self.api_access.empty():
            yield "apiAccess", ("endpoint 'private' is reachable only from inside the VPC this program creates, so "
                                "pulumi up could not reach it: list the deployer's way in, apiAccess.cidrs (VPN or "
                                "connected network) or apiAccess.securityGroupIds (a runner in the VPC); or use "
                                "endpoint 'publicAndPrivate' with publicAccessCidrs")
