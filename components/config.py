"""The typed stack config: the only code that reads `agentic-platform:*` keys.

Every section is a pydantic model with camelCase aliases and `extra="forbid"`. A problem is
reported with the stack-file key path (`agentic-platform:network.cidr: ...`); all problems are
collected before anything is created, and `load_config` raises one `ConfigError` holding them all.

Adding a section (a later layer) means: a model class, a field on `PlatformConfig`, and, if it
has rules that span sections, a function decorated with `@cross_check`. The loader never changes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

NAMESPACE = "agentic-platform"

# A problem: (absolute key path below `agentic-platform:`, message).
Problem = tuple[str, str]

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DnsName = Annotated[
    str,
    Field(pattern=DNS_LABEL.pattern, max_length=63,
          description="a DNS-1123 label: lower-case letters, digits and '-', starting with a letter"),
]


class ConfigError(Exception):
    """Invalid stack config: one `agentic-platform:<path>: <message>` line per problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{NAMESPACE}:{path}: {message}" for path, message in self.problems]


class Section(BaseModel):
    """Base of every config model: camelCase keys, unknown keys rejected, immutable.

    Override `problems()` for rules inside one section; paths it yields are relative to the
    section (e.g. "publicAccessCidrs[0]")."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=False, validate_by_alias=True,
                              extra="forbid", frozen=True)

    def problems(self) -> Iterator[Problem]:
        return iter(())


# ----------------------------------------------------------------------------------- network

class NetworkConfig(Section):
    """The VPC. Private subnets hold nodes and pods (the VPC CNI gives pods VPC addresses, so
    they are large); public subnets hold NAT gateways and internet-facing load balancers."""

    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")
    availability_zones: int = Field(3, ge=2, le=6)
    nat_gateways: Literal["single", "perAz"] = "perAz"
    private_subnet_prefix: int = Field(19, ge=16, le=28)
    public_subnet_prefix: int = Field(24, ge=16, le=28)

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
        if not self.cidr.is_private:
            yield "cidr", f"{self.cidr} is not a private (RFC 1918) range"


# ----------------------------------------------------------------------------------- cluster

class AdminPrincipal(Section):
    """An IAM principal given cluster-admin through an EKS access entry."""

    name: DnsName
    arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")


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

    instance_types: list[str] = Field(default_factory=lambda: ["m7i.xlarge"], min_length=1)
    min_size: int = Field(2, ge=1)
    max_size: int = Field(4, ge=1)
    desired_size: int = Field(2, ge=1)
    disk_size_gib: int = Field(50, ge=20, le=1000, alias="diskSizeGiB")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"

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
    version: str = Field("1.34", pattern=r"^1\.(2[89]|3\d)$")
    endpoint: Literal["private", "publicAndPrivate"] = "private"
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(default_factory=list)
    api_access: ApiAccessConfig = Field(default_factory=ApiAccessConfig)
    deployer: DeployerConfig | None = Field(None, description="required: the principal that runs pulumi up")
    admins: list[AdminPrincipal] = Field(default_factory=list)
    system_nodes: SystemNodesConfig = Field(default_factory=SystemNodesConfig)
    log_retention_days: int = Field(90, ge=1, le=3653)
    deletion_protection: bool = False
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


# ----------------------------------------------------------------------------------- compute

Duration = Annotated[str, Field(pattern=r"^([0-9]+(s|m|h))+$|^Never$", description="e.g. 30s, 5m, 720h or Never")]
# Karpenter v1 NodePool spec.template.spec.terminationGracePeriod: no `Never`
# (platform/crds/schemas/karpenter.sh_nodepool_v1.json).
FiniteDuration = Annotated[str, Field(pattern=r"^([0-9]+(s|m|h))+$", description="e.g. 30m, 2h")]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$",
                                description="a Kubernetes quantity, e.g. 500m, 20, 40Gi")]
# gp3 limits the EC2NodeClass volumes are validated against.
GP3_MIN_IOPS, GP3_MAX_IOPS, GP3_IOPS_PER_GIB = 3000, 16000, 500
GP3_MIN_THROUGHPUT, GP3_MAX_THROUGHPUT, GP3_THROUGHPUT_PER_IOPS = 125, 1000, 0.25


class DisruptionBudget(Section):
    """A Karpenter disruption budget: at most `nodes` disrupted, optionally only in a cron window."""

    nodes: str = Field(pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$")
    schedule: str | None = Field(None, description="cron, e.g. '0 9 * * mon-fri' (UTC); needs duration")
    duration: Duration | None = None
    reasons: list[Literal["Underutilized", "Empty", "Drifted"]] | None = None

    def problems(self) -> Iterator[Problem]:
        if (self.schedule is None) != (self.duration is None):
            yield "schedule", "schedule and duration go together"


class TaintConfig(Section):
    """An extra node taint of a pool (e.g. the seed's spot pool: karpenter.sh/capacity-type=spot)."""

    key: str = Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                             r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    value: str | None = Field(None, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class NodePoolConfig(Section):
    """A Karpenter NodePool and its EC2NodeClass."""

    name: DnsName
    instance_types: list[str] = Field(min_length=1)
    capacity_types: list[Literal["on-demand", "spot", "reserved"]] = Field(default_factory=lambda: ["on-demand"],
                                                                           min_length=1)
    ami_family: Literal["al2023", "bottlerocket"] = "al2023"
    ami_version: str = Field("latest", pattern=r"^(latest|v[0-9]{8}|[0-9]+\.[0-9]+\.[0-9]+)$",
                             description="AMI alias version: 'latest' or pinned (al2023 v20251023, bottlerocket 1.49.0)")
    root_volume_gib: int = Field(200, ge=20, le=16384, alias="rootVolumeGiB")
    # gp3 provisioned performance (unset: the gp3 baseline, 3000 IOPS / 125 MiB/s).
    root_volume_iops: int | None = Field(None, ge=GP3_MIN_IOPS, le=GP3_MAX_IOPS)
    root_volume_throughput: int | None = Field(None, ge=GP3_MIN_THROUGHPUT, le=GP3_MAX_THROUGHPUT,
                                               description="MiB/s")
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmptyOrUnderutilized"
    consolidate_after: Duration = "30s"
    expire_after: Duration = "720h"
    # How long a draining node may wait for its pods (PDBs, do-not-disrupt) before Karpenter
    # deletes them; unset, a drain blocked by a PodDisruptionBudget holds the NodeClaim forever.
    termination_grace_period: FiniteDuration = "30m"
    budgets: list[DisruptionBudget] = Field(default_factory=lambda: [DisruptionBudget(nodes="20%")])
    weight: int | None = Field(None, ge=1, le=100)
    labels: dict[str, str] = Field(default_factory=dict)
    cpu_limit: int | None = Field(None, ge=1, description="vCPU limit of the pool")
    memory_limit_gib: int | None = Field(None, ge=1, alias="memoryLimitGiB")
    taints: list[TaintConfig] = Field(default_factory=list, description="extra taints besides the GPU taint")

    def problems(self) -> Iterator[Problem]:
        from components.instances import instance_facts

        for i, t in enumerate(self.instance_types):
            if instance_facts(t) is None:
                yield f"instanceTypes[{i}]", f"'{t}' is not in platform/instances.yaml"
        if len(set(self.instance_types)) != len(self.instance_types):
            yield "instanceTypes", "lists a type twice"
        if not re.search(r"[1-9]", self.termination_grace_period):
            yield "terminationGracePeriod", (f"'{self.termination_grace_period}' would delete pods at once on every "
                                             "drain; give the time a drain may take (e.g. 30m, 2h)")
        for key in self.labels:
            # Karpenter's NodePool CRD refuses these label domains (CEL rules the plan cannot run).
            domain = key.split("/", 1)[0] if "/" in key else ""
            if domain.endswith(("karpenter.sh", "karpenter.k8s.aws", "kubernetes.io", "k8s.io")):
                yield f"labels.{key}", f"label domain '{domain}' is restricted by Karpenter"
        # gp3: at most 500 IOPS per GiB and 0.25 MiB/s per provisioned IOPS (EC2 refuses the launch otherwise).
        iops = self.root_volume_iops or GP3_MIN_IOPS
        if self.root_volume_iops is not None and iops > GP3_IOPS_PER_GIB * self.root_volume_gib:
            yield "rootVolumeIops", (f"{iops} IOPS need a volume of at least {-(-iops // GP3_IOPS_PER_GIB)} GiB "
                                     f"(gp3: {GP3_IOPS_PER_GIB} IOPS per GiB; rootVolumeGiB is {self.root_volume_gib})")
        if self.root_volume_throughput is not None and self.root_volume_throughput > iops * GP3_THROUGHPUT_PER_IOPS:
            yield "rootVolumeThroughput", (f"{self.root_volume_throughput} MiB/s exceeds {GP3_THROUGHPUT_PER_IOPS} MiB/s "
                                           f"per IOPS of {iops} IOPS (rootVolumeIops)")


class GpuPoolConfig(NodePoolConfig):
    """A GPU NodePool: tainted nvidia.com/gpu=true:NoSchedule and always GPU-limited."""

    gpu_limit: int = Field(ge=1, description="nvidia.com/gpu limit of the pool (required: no unbounded GPU spend)")
    # Model servers drain slowly (in-flight generations, weights reloaded elsewhere): 2 hours.
    termination_grace_period: FiniteDuration = "2h"

    def problems(self) -> Iterator[Problem]:
        from components.instances import instance_facts

        yield from super().problems()
        for i, t in enumerate(self.instance_types):
            facts = instance_facts(t)
            if facts is not None and facts.gpus == 0:
                yield f"instanceTypes[{i}]", f"'{t}' is not a GPU instance type"

    def max_gpus_per_node(self) -> int:
        from components.instances import instance_facts

        return max((f.gpus for t in self.instance_types if (f := instance_facts(t))), default=0)


class CpuPoolConfig(NodePoolConfig):
    """The CPU NodePool for platform workloads (gateway, agents, data, observability)."""

    name: DnsName = "platform"
    instance_types: list[str] = Field(default_factory=lambda: ["m7i.xlarge", "m7i.2xlarge", "m6i.xlarge", "m6i.2xlarge"],
                                      min_length=1)
    cpu_limit: int | None = Field(256, ge=1)

    def problems(self) -> Iterator[Problem]:
        from components.instances import instance_facts

        yield from super().problems()
        for i, t in enumerate(self.instance_types):
            facts = instance_facts(t)
            if facts is not None and facts.gpus > 0:
                yield f"instanceTypes[{i}]", f"'{t}' is a GPU type; the CPU pool must not hold GPUs"
        if self.cpu_limit is None and self.memory_limit_gib is None:
            # The node count bounds spend and sizes the node-exporter quota (observability-node).
            yield "cpuLimit", "set cpuLimit or memoryLimitGiB: an unlimited pool has no maximum node count"


class GpuStackConfig(Section):
    """How GPUs are exposed to the scheduler: the standalone NVIDIA device plugin, or the GPU
    operator with driver and toolkit off (the EKS NVIDIA AMIs ship both). DCGM exporter either way."""

    mode: Literal["devicePlugin", "gpuOperator"] = "devicePlugin"
    dcgm_scrape_interval: Duration = "15s"

    def problems(self) -> Iterator[Problem]:
        if not re.search(r"[1-9]", self.dcgm_scrape_interval):  # "Never", "0s"
            yield "dcgmScrapeInterval", f"'{self.dcgm_scrape_interval}' is not a scrape interval (e.g. 15s)"


# ----------------------------------------------------------------------------------- tenancy

_QUANTITY_UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                   "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def quantity_value(q: str) -> float:
    """A `Quantity` as a number (500m -> 0.5, 2Gi -> 2147483648), for comparisons."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", q)
    assert m, q
    return float(m.group(1)) * _QUANTITY_UNITS.get(m.group(2), 1.0)


class ContainerResources(Section):
    """CPU and memory of one container (a LimitRange default or default request)."""

    cpu: Quantity
    memory: Quantity


class QuotaConfig(Section):
    """A namespace's ResourceQuota, and the LimitRange defaults that let pods without their own
    requests/limits be admitted under it (a quota on limits rejects pods that set none)."""

    cpu: Quantity = Field("8", description="requests.cpu")
    memory: Quantity = Field("32Gi", description="requests.memory")
    cpu_limit: Quantity | None = Field(None, description="limits.cpu; default = cpu")
    memory_limit: Quantity | None = Field(None, description="limits.memory; default = memory")
    gpu: int = Field(0, ge=0, description="requests.nvidia.com/gpu")
    pods: int = Field(50, ge=1)
    services: int = Field(20, ge=0)
    persistent_volume_claims: int = Field(10, ge=0)
    default_limit: ContainerResources = Field(
        default_factory=lambda: ContainerResources(cpu="1", memory="1Gi"),
        description="LimitRange default (limits) of a container that sets none")
    default_request: ContainerResources = Field(
        default_factory=lambda: ContainerResources(cpu="100m", memory="256Mi"),
        description="LimitRange defaultRequest of a container that sets none")

    def hard(self) -> dict[str, str]:
        """The ResourceQuota's `spec.hard`."""
        return {"requests.cpu": self.cpu, "requests.memory": self.memory,
                "limits.cpu": self.cpu_limit or self.cpu, "limits.memory": self.memory_limit or self.memory,
                "requests.nvidia.com/gpu": str(self.gpu), "pods": str(self.pods),
                "services": str(self.services), "persistentvolumeclaims": str(self.persistent_volume_claims)}

    def problems(self) -> Iterator[Problem]:
        for key, req, lim in (("cpuLimit", self.cpu, self.cpu_limit), ("memoryLimit", self.memory, self.memory_limit)):
            if lim is not None and quantity_value(lim) < quantity_value(req):
                yield key, f"{lim} is less than the requests quota ({req})"
        for res in ("cpu", "memory"):
            req, lim = getattr(self.default_request, res), getattr(self.default_limit, res)
            if quantity_value(req) > quantity_value(lim):
                yield f"defaultRequest.{res}", f"{req} is more than defaultLimit.{res} ({lim})"


class TenantIamRole(Section):
    """An IAM role mapped, by an EKS access entry, into one of the tenant's groups."""

    arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    access: Literal["operator", "viewer"] = "viewer"


# Kubernetes group names an access entry may map to (EKS rejects `system:` groups).
GroupName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$",
                                 description="a Kubernetes RBAC group; not system:*")]


class TenantConfig(Section):
    """A tenant: a namespace with its quota, limits, isolation and access."""

    name: DnsName
    isolation: Literal["namespace", "node"] = "namespace"
    gpu_pools: list[DnsName] | None = Field(None, description="GPU pools it may use; default all")
    quota: QuotaConfig = Field(default_factory=QuotaConfig)
    operator_groups: list[GroupName] = Field(default_factory=list)
    viewer_groups: list[GroupName] = Field(default_factory=list)
    iam_roles: list[TenantIamRole] = Field(default_factory=list)

    def problems(self) -> Iterator[Problem]:
        for key, groups in (("operatorGroups", self.operator_groups), ("viewerGroups", self.viewer_groups)):
            for k, g in enumerate(groups):
                if g.startswith("system:"):
                    yield f"{key}[{k}]", f"'{g}' is a reserved system: group; EKS access entries reject it"
        for j, role in enumerate(self.iam_roles):
            groups = self.operator_groups if role.access == "operator" else self.viewer_groups
            if not groups:
                yield f"iamRoles[{j}].access", (f"'{role.access}' access maps the role into the tenant's "
                                                f"{role.access}Groups, which is empty")


def _quota(cpu: str, memory: str, gpu: int, pods: int) -> QuotaConfig:
    return QuotaConfig(cpu=cpu, memory=memory, gpu=gpu, pods=pods)


class PlatformQuotasConfig(Section):
    """Quotas of the platform namespaces (the seed's numbers for ai-inference and ai-agents in
    prod). GPU quota 0 everywhere but ai-inference: no GPU without a quota that pays for it."""

    ai_inference: QuotaConfig = Field(default_factory=lambda: _quota("16", "64Gi", 1, 20), alias="ai-inference")
    ai_agents: QuotaConfig = Field(default_factory=lambda: _quota("8", "16Gi", 0, 50), alias="ai-agents")
    ai_gateway: QuotaConfig = Field(default_factory=lambda: _quota("8", "16Gi", 0, 30), alias="ai-gateway")
    ai_data: QuotaConfig = Field(default_factory=lambda: _quota("16", "64Gi", 0, 50), alias="ai-data")
    observability: QuotaConfig = Field(default_factory=lambda: _quota("16", "64Gi", 0, 50))
    observability_node: QuotaConfig = Field(default_factory=lambda: _quota("4", "8Gi", 0, 200),
                                            alias="observability-node")

    def for_namespace(self, namespace: str) -> QuotaConfig:
        field = next(n for n, f in type(self).model_fields.items() if (f.alias or n) == namespace)
        return getattr(self, field)


# ----------------------------------------------------------------------------------- models

class ModelConfig(Section):
    """A model served by vLLM or TGI. `name` is the `x-model-id` clients send."""

    name: DnsName
    engine: Literal["vllm", "tgi"]
    model: str = Field(min_length=1, description="Hugging Face model id, e.g. meta-llama/Llama-3.3-70B-Instruct")
    image: str = Field(description="pinned image: repo:tag or repo@sha256:digest")
    parameters_b: float = Field(gt=0, description="parameters, in billions (for the fit check)")
    gpus: int = Field(1, ge=1, le=8, description="GPUs per replica (tensor parallel / shards)")
    pool: DnsName = Field(description="a gpuPools name")
    gpu_model: str | None = Field(None, description="select nodes with this GPU (e.g. H100); default any in the pool")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    max_model_len: int = Field(8192, ge=256)
    dtype: Literal["auto", "bfloat16", "float16"] = "bfloat16"
    quantization: Literal["none", "fp8", "awq", "gptq", "bitsandbytes"] = "none"
    gpu_memory_utilization: float = Field(0.90, gt=0.1, le=0.98)
    extra_args: list[str] = Field(default_factory=list)
    tenant: DnsName | None = None
    cache: Literal["pvc", "s3", "nodeLocal"] = "pvc"
    cache_size_gib: int = Field(200, ge=10, alias="cacheSizeGiB")
    queue_target: int = Field(5, ge=1, description="waiting requests per replica before KEDA scales out")

    def problems(self) -> Iterator[Problem]:
        if self.min_replicas > self.max_replicas:
            yield "minReplicas", f"{self.min_replicas} is more than maxReplicas ({self.max_replicas})"
        if self.cache == "s3" and self.engine != "vllm":
            yield "cache", "'s3' streams weights with vLLM's runai_streamer; TGI needs 'pvc' or 'nodeLocal'"
        # One ReadWriteOnce gp3 volume attaches to one node: a second replica could not mount it.
        if self.cache == "pvc" and self.max_replicas > 1:
            yield "maxReplicas", (f"{self.max_replicas} replicas cannot share one ReadWriteOnce 'pvc' cache; "
                                  "use cache 's3' or 'nodeLocal' to scale out")
        if not re.fullmatch(r"[^:@\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})", self.image) \
                or self.image.endswith(":latest"):
            yield "image", f"'{self.image}' is not pinned: use repo:tag (not latest) or repo@sha256:digest"


class ModelServingConfig(Section):
    """KEDA and the autoscaling defaults every model's ScaledObject uses (the seed's GPU page)."""

    keda_replicas: int = Field(2, ge=1, le=5, description="KEDA operator, metrics server and webhook replicas")
    polling_interval: int = Field(15, ge=5, le=300, description="seconds between KEDA metric checks")
    cooldown_period: int = Field(60, ge=0, description="seconds before scaling to minReplicas 0")
    gpu_util_threshold: int = Field(70, ge=1, le=100, description="DCGM_FI_DEV_GPU_UTIL % per replica to scale on")
    gpu_util_activation: int = Field(50, ge=0, le=100)

    def problems(self) -> Iterator[Problem]:
        if self.gpu_util_activation >= self.gpu_util_threshold:
            yield "gpuUtilActivation", (f"{self.gpu_util_activation} must be below gpuUtilThreshold "
                                        f"({self.gpu_util_threshold})")


# ----------------------------------------------------------------------------------- data

class WorkloadSize(Section):
    """Replicas, requests and limits of one data-service component (limits default to requests)."""

    replicas: int = Field(1, ge=1)
    cpu: Quantity = "500m"
    memory: Quantity = "1Gi"
    cpu_limit: Quantity | None = None
    memory_limit: Quantity | None = None


class EtcdConfig(Section):
    """Milvus's metadata store (the chart's etcd), on the data StorageClass."""

    replicas: int = Field(3, ge=1, le=7)
    storage_gib: int = Field(20, ge=1, alias="storageGiB")
    cpu: Quantity = "250m"
    memory: Quantity = "1Gi"

    def problems(self) -> Iterator[Problem]:
        if self.replicas % 2 == 0:
            yield "replicas", f"{self.replicas} etcd members cannot keep a majority through a failure; use an odd number"


class MilvusConfig(Section):
    """Milvus 2.6 (chart milvus 5.0.19) on S3. `standalone` runs one pod; `cluster` runs the
    components below. In 2.6 the index node is folded into the data node and the coordinators into
    mixCoord; the write-ahead log is the streaming node's embedded Woodpecker on S3."""

    mode: Literal["standalone", "cluster"] = "standalone"
    message_queue: Literal["woodpecker", "rocksmq"] = "woodpecker"
    standalone: WorkloadSize = Field(default_factory=lambda: WorkloadSize(cpu="1", memory="4Gi", memoryLimit="8Gi"))
    standalone_disk_gib: int = Field(50, ge=10, alias="standaloneDiskGiB")
    proxy: WorkloadSize = Field(default_factory=lambda: WorkloadSize(replicas=2, cpu="500m", memory="1Gi"))
    query_node: WorkloadSize = Field(default_factory=lambda: WorkloadSize(
        replicas=3, cpu="2", memory="8Gi", cpuLimit="4", memoryLimit="16Gi"))
    data_node: WorkloadSize = Field(default_factory=lambda: WorkloadSize(replicas=2, cpu="1", memory="4Gi"))
    mix_coordinator: WorkloadSize = Field(default_factory=lambda: WorkloadSize(cpu="500m", memory="1Gi"))
    streaming_node: WorkloadSize = Field(default_factory=lambda: WorkloadSize(cpu="1", memory="2Gi"))
    etcd: EtcdConfig = Field(default_factory=EtcdConfig)

    def problems(self) -> Iterator[Problem]:
        if self.mode == "cluster" and self.message_queue == "rocksmq":
            yield "messageQueue", "rocksmq is local to one pod and works in standalone mode only; use woodpecker"
        if self.standalone.replicas != 1:
            yield "standalone.replicas", "standalone Milvus runs exactly one replica; use mode: cluster to scale"


class RedisConfig(Section):
    """The session cache: in-cluster Valkey (chart valkey 0.11.0) or an ElastiCache replication group."""

    mode: Literal["inCluster", "elasticache"] = "inCluster"
    # inCluster
    replicas: int = Field(0, ge=0, le=5, description="Valkey read replicas besides the primary")
    storage_gib: int = Field(8, ge=1, alias="storageGiB")
    cpu: Quantity = "250m"
    memory: Quantity = "1Gi"
    # elasticache
    engine: Literal["valkey", "redis"] = "valkey"
    engine_version: str = Field("8.0", pattern=r"^[0-9]+\.[0-9]+$", description="pinned major.minor")
    node_type: str = Field("cache.r7g.large", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    num_cache_clusters: int = Field(2, ge=1, le=6, description="primary plus replicas, spread over AZs")
    snapshot_retention_days: int = Field(7, ge=0, le=35)

    def problems(self) -> Iterator[Problem]:
        if self.mode == "elasticache":
            if self.num_cache_clusters < 2:
                yield "numCacheClusters", "Multi-AZ with automatic failover needs at least 2 cache clusters"
            if self.snapshot_retention_days < 1:
                yield "snapshotRetentionDays", "must be at least 1: ElastiCache keeps no backups otherwise"


class DataConfig(Section):
    """The data layer: S3 document store, Milvus, Redis."""

    milvus: MilvusConfig = Field(default_factory=MilvusConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    service_monitors: bool = Field(True, description="ServiceMonitors for Milvus and Valkey (needs the Prometheus operator CRDs)")


# ------------------------------------------------------------------------------ observability

RetentionPeriod = Annotated[str, Field(pattern=r"^[1-9][0-9]*(h|d|w|y)$", description="Prometheus retention, e.g. 15d")]


class LangfuseConfig(Section):
    """LangFuse (LLM tracing). `database: rds` puts its PostgreSQL on Amazon RDS; `inCluster` uses
    the chart's bundled PostgreSQL. Blob storage is always an S3 bucket reached through Pod Identity."""

    database: Literal["rds", "inCluster"] = "inCluster"
    rds_instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    rds_storage_gib: int = Field(50, ge=20, le=65536, alias="rdsStorageGiB")
    rds_multi_az: bool = Field(True, alias="rdsMultiAZ")
    rds_backup_retention_days: int = Field(7, ge=1, le=35)
    rds_engine_version: str = Field("16", pattern=r"^[0-9]+(\.[0-9]+)?$")
    clickhouse_replicas: int = Field(1, ge=1, le=5)
    web_replicas: int = Field(1, ge=1, le=10)

    def problems(self) -> Iterator[Problem]:
        # Replicated ClickHouse needs a Keeper quorum the chart only forms with 1 or 3+ replicas.
        if self.clickhouse_replicas == 2:
            yield "clickhouseReplicas", "use 1 (single node) or 3 or more (replicated); 2 cannot form a quorum"


class ObservabilityConfig(Section):
    """Prometheus, Alertmanager, Grafana, the OpenTelemetry collector and LangFuse."""

    prometheus_retention: RetentionPeriod = "15d"
    prometheus_storage_gib: int = Field(50, ge=10, le=16384, alias="prometheusStorageGiB")
    prometheus_replicas: int = Field(1, ge=1, le=3)
    alertmanager_storage_gib: int = Field(5, ge=1, le=1024, alias="alertmanagerStorageGiB")
    grafana_storage_gib: int = Field(10, ge=1, le=1024, alias="grafanaStorageGiB")
    gpu_hour_price: float = Field(4.0, gt=0, le=1000, description="USD per GPU-hour for the Cost Tracking dashboard")
    collector_replicas: int = Field(1, ge=1, le=10)
    langfuse: LangfuseConfig = Field(default_factory=LangfuseConfig)


# ----------------------------------------------------------------------------------- gateway

class GatewayLoadBalancerConfig(Section):
    """The NLB the AWS Load Balancer Controller puts in front of the gateway proxy. It listens on
    443 only, TLS ending at the NLB with the ACM certificate; the plain-HTTP listener (port 80)
    agents use stays in-cluster. Without a certificate there is no NLB."""

    scheme: Literal["internal", "internet-facing"] = "internal"
    certificate_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$",
                                        description="ACM certificate of the NLB's TLS (443) listener; none: no NLB")
    source_ranges: list[ipaddress.IPv4Network] = Field(default_factory=list,
                                                       description="CIDRs allowed through the NLB (loadBalancerSourceRanges)")

    def problems(self) -> Iterator[Problem]:
        if self.scheme == "internet-facing":
            if self.certificate_arn is None:
                yield "certificateArn", "an internet-facing gateway needs HTTPS: set an ACM certificate ARN"
            if not self.source_ranges:
                yield "sourceRanges", "an internet-facing NLB needs the client CIDRs allowed to reach it"
        for i, cidr in enumerate(self.source_ranges):
            if cidr.prefixlen == 0:
                yield f"sourceRanges[{i}]", f"{cidr} opens the gateway to the internet; list your own CIDRs"


class GatewayProxyConfig(Section):
    """The Envoy proxy Deployment kgateway creates for the Gateway (via GatewayParameters)."""

    replicas: int = Field(2, ge=1, le=20)
    cpu: Quantity = "500m"
    memory: Quantity = "512Mi"
    cpu_limit: Quantity = "1"
    memory_limit: Quantity = "1Gi"


class JwtConfig(Section):
    """The OIDC issuer whose tokens the gateway accepts (Cognito user pool, Okta, ...)."""

    issuer: str = Field(pattern=r"^https://[^\s/]+(/\S*)?$")
    jwks_uri: str = Field(pattern=r"^https://[^\s/]+(/\S*)?$")
    audiences: list[str] = Field(default_factory=list)
    tenant_claim: str = Field("tenant", min_length=1, description="claim copied to the x-tenant-id header")


class TokenBucketConfig(Section):
    """A local (per proxy replica) token bucket: `maxTokens`, refilled `tokensPerFill` every `fillInterval`."""

    max_tokens: int = Field(ge=1)
    tokens_per_fill: int = Field(ge=1)
    fill_interval: str = Field(pattern=r"^[0-9]{1,5}(ms|s|m|h)$")

    def problems(self) -> Iterator[Problem]:
        if self.tokens_per_fill > self.max_tokens:
            yield "tokensPerFill", f"{self.tokens_per_fill} is more than maxTokens ({self.max_tokens})"


class CanaryConfig(Section):
    """Send `weight` % of a model's traffic to another model's servers (step it 10 → 25 → 50 → 100)."""

    model: DnsName
    weight: int = Field(ge=0, le=100)


class ModelRouteConfig(Section):
    """Routing of one model (by its `models` name): a weighted canary and/or a fallback model."""

    model: DnsName
    canary: CanaryConfig | None = None
    fallback: DnsName | None = None

    def problems(self) -> Iterator[Problem]:
        if self.canary is not None and self.canary.model == self.model:
            yield "canary.model", "a model cannot be its own canary"
        if self.fallback is not None and self.fallback == self.model:
            yield "fallback", "a model cannot be its own fallback"


class GatewayConfig(Section):
    """The inference gateway: Gateway API CRDs, kgateway, the AWS Load Balancer Controller, the
    Gateway, HTTPRoutes per model and the traffic policies (JWT, rate limits, retries, timeouts)."""

    controller_replicas: int = Field(2, ge=1, le=5, description="kgateway controller replicas")
    lbc_replicas: int = Field(2, ge=1, le=5, description="AWS Load Balancer Controller replicas")
    proxy: GatewayProxyConfig = Field(default_factory=GatewayProxyConfig)
    load_balancer: GatewayLoadBalancerConfig = Field(default_factory=GatewayLoadBalancerConfig)
    jwt: JwtConfig
    rate_limit: TokenBucketConfig = Field(
        default_factory=lambda: TokenBucketConfig.model_validate({"maxTokens": 1000, "tokensPerFill": 100,
                                                                  "fillInterval": "1s"}))
    tenant_rate_limit: TokenBucketConfig = Field(
        default_factory=lambda: TokenBucketConfig.model_validate({"maxTokens": 100, "tokensPerFill": 100,
                                                                  "fillInterval": "60s"}))
    request_timeout: Duration = "120s"
    backend_timeout: Duration = "60s"
    retry_attempts: int = Field(3, ge=0, le=10)
    per_try_timeout: Duration = "30s"
    routes: list[ModelRouteConfig] = Field(default_factory=list)
    inference_routing: Literal["none", "agentgateway"] = "none"

    def problems(self) -> Iterator[Problem]:
        def seconds(d: str) -> int:
            return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", d))
        for key, value in (("requestTimeout", self.request_timeout), ("backendTimeout", self.backend_timeout),
                           ("perTryTimeout", self.per_try_timeout)):
            if value == "Never":
                yield key, "must be a duration (e.g. 60s)"
        if "Never" not in (self.request_timeout, self.backend_timeout, self.per_try_timeout):
            if seconds(self.backend_timeout) > seconds(self.request_timeout):
                yield "backendTimeout", (f"{self.backend_timeout} is longer than requestTimeout "
                                         f"({self.request_timeout})")
            if seconds(self.per_try_timeout) >= seconds(self.request_timeout):
                yield "perTryTimeout", f"{self.per_try_timeout} must be shorter than requestTimeout ({self.request_timeout})"
        seen: set[str] = set()
        for i, r in enumerate(self.routes):
            if r.model in seen:
                yield f"routes[{i}].model", f"'{r.model}' has more than one routes entry"
            seen.add(r.model)


# ----------------------------------------------------------------------------------- agents

class AgentDatabaseConfig(Section):
    """kagent's PostgreSQL: `bundled` (the chart's single-pod PostgreSQL; dev only: no backups, no
    HA) or `external` (an RDS PostgreSQL instance of its own, password a Pulumi secret)."""

    mode: Literal["bundled", "external"] = "external"
    instance_class: str = Field("db.t4g.small", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    engine_version: str = Field("17", pattern=r"^[0-9]+(\.[0-9]+)?$")
    allocated_storage_gib: int = Field(20, ge=20, le=1000, alias="allocatedStorageGiB")
    multi_az: bool = False
    backup_retention_days: int = Field(7, ge=0, le=35)


class ToolServerConfig(Section):
    """An MCP tool server agents may use. `api`: an existing MCP server at `url` (e.g. ticketing);
    `retrieval`: the Milvus MCP server this program deploys (`url` must be empty)."""

    name: DnsName
    type: Literal["api", "retrieval"]
    description: str = Field(min_length=1)
    url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    protocol: Literal["STREAMABLE_HTTP", "SSE"] = "STREAMABLE_HTTP"
    timeout: Duration = "30s"
    replicas: int = Field(2, ge=1, le=10, description="retrieval: MCP server replicas")
    milvus_db: str = Field("default", min_length=1, description="retrieval: Milvus database")

    def problems(self) -> Iterator[Problem]:
        if self.type == "api" and not self.url:
            yield "url", "an api tool server needs the url of its MCP endpoint"
        if self.type == "retrieval" and self.url:
            yield "url", "a retrieval tool server is deployed by the platform; leave url unset"


class AgentToolRef(Section):
    """A tool server an agent uses; `requireApproval` pauses for a human before those tools run."""

    server: DnsName
    tool_names: list[str] = Field(default_factory=list, max_length=50)
    require_approval: list[str] = Field(default_factory=list, max_length=50)

    def problems(self) -> Iterator[Problem]:
        for i, t in enumerate(self.require_approval):
            if t not in self.tool_names:
                yield f"requireApproval[{i}]", f"'{t}' must also be listed in toolNames"


class AgentScalingConfig(Section):
    """KEDA per agent: Redis task-list length and the agent's CPU (Prometheus, cAdvisor). kagent
    0.9.12 agents export no metrics, so there is no sessions gauge to scale on (docs/agents.md)."""

    min_replicas: int = Field(2, ge=0)
    max_replicas: int = Field(10, ge=1)
    queue_list: str = Field("agent-task-queue", min_length=1, description="Redis list of pending tasks")
    queue_length: int = Field(10, ge=1, description="tasks per replica")
    cpu_utilization: int = Field(70, ge=1, le=100,
                                 description="% of the agent's CPU request per replica before KEDA adds one")
    polling_interval_s: int = Field(15, ge=1)
    cooldown_period_s: int = Field(300, ge=0)

    def problems(self) -> Iterator[Problem]:
        if self.min_replicas > self.max_replicas:
            yield "minReplicas", f"{self.min_replicas} is more than maxReplicas ({self.max_replicas})"


class AgentResources(Section):
    cpu: Quantity = "250m"
    memory: Quantity = "512Mi"
    cpu_limit: Quantity = "500m"
    memory_limit: Quantity = "1Gi"


class AgentConfig(Section):
    """A kagent Declarative Agent: its prompt, the catalog model it calls through the gateway,
    its tool servers, resources and scaling."""

    name: DnsName
    description: str = Field(min_length=1)
    system_prompt: str = Field(min_length=1)
    model: DnsName = Field(description="a models name (the x-model-id the gateway routes on)")
    tools: list[AgentToolRef] = Field(default_factory=list)
    resources: AgentResources = Field(default_factory=AgentResources)
    scaling: AgentScalingConfig = Field(default_factory=AgentScalingConfig)


class AgentRuntimeConfig(Section):
    """The kagent install."""

    database: AgentDatabaseConfig = Field(default_factory=AgentDatabaseConfig)
    demo_agents: bool = Field(False, description="kagent's built-in agents (k8s, istio, helm, ...)")
    controller_replicas: int = Field(1, ge=1, le=3)
    watch_namespaces: list[DnsName] = Field(default_factory=list,
                                            description="namespaces kagent manages besides ai-agents")
    tool_servers: list[ToolServerConfig] = Field(default_factory=list)
    image_registry: str | None = Field(None, pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$",
                                       description="registry holding images built from source (the Milvus MCP server)")

    def problems(self) -> Iterator[Problem]:
        yield from _duplicates("toolServers", [t.name for t in self.tool_servers])
        if any(t.type == "retrieval" for t in self.tool_servers) and not self.image_registry:
            yield "imageRegistry", "a retrieval tool server needs the registry its Milvus MCP server image is pushed to"


# ------------------------------------------------------------------------------ the whole config

Environment = Literal["dev", "staging", "prod"]

# Secret keys (`pulumi config set --secret`), read as Pulumi secrets by `load_secrets`, never
# into the pydantic model. name -> what it is.
SECRET_KEYS: dict[str, str] = {
    "hfToken": "Hugging Face token the model servers download gated weights with",
    "agentGatewayToken": "bearer token kagent sends to the inference gateway (prod: a service-account JWT from the IdP)",
}
# When a secret key must be set (checked with the rest of the config, before anything is declared).
# (hfToken is optional: without it only ungated models download.)
SECRET_REQUIRED: dict[str, Callable[[PlatformConfig], bool]] = {
    "agentGatewayToken": lambda cfg: bool(cfg.agents),
}


class PlatformConfig(Section):
    """The whole stack config. A field per `agentic-platform:<key>`."""

    environment: Environment
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    protect_data: bool = True
    gpu_pools: list[GpuPoolConfig] = Field(default_factory=list)
    cpu_pool: CpuPoolConfig = Field(default_factory=CpuPoolConfig)
    gpu_stack: GpuStackConfig = Field(default_factory=GpuStackConfig)
    tenants: list[TenantConfig] = Field(default_factory=list)
    platform_quotas: PlatformQuotasConfig = Field(default_factory=PlatformQuotasConfig)
    models: list[ModelConfig] = Field(default_factory=list)
    model_serving: ModelServingConfig = Field(default_factory=ModelServingConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    gateway: GatewayConfig | None = Field(None, description="the inference gateway; none: no gateway layer")
    agent_runtime: AgentRuntimeConfig = Field(default_factory=AgentRuntimeConfig)
    agents: list[AgentConfig] = Field(default_factory=list)

    @property
    def cluster_name(self) -> str:
        assert self.cluster.name, "load_config fills cluster.name"
        return self.cluster.name


CrossCheck = Callable[[PlatformConfig], Iterable[Problem]]
CROSS_CHECKS: list[CrossCheck] = []


def cross_check(fn: CrossCheck) -> CrossCheck:
    """Register a rule that spans sections; it runs only when every section is valid."""
    CROSS_CHECKS.append(fn)
    return fn


def _duplicates(section: str, names: list[str]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            yield f"{section}[{i}].name", f"'{n}' is used twice"
        seen.add(n)


@cross_check
def _unique_names(cfg: PlatformConfig) -> Iterator[Problem]:
    yield from _duplicates("gpuPools", [p.name for p in cfg.gpu_pools])
    yield from _duplicates("tenants", [t.name for t in cfg.tenants])
    yield from _duplicates("models", [m.name for m in cfg.models])
    for i, p in enumerate(cfg.gpu_pools):
        if p.name == cfg.cpu_pool.name:
            yield f"gpuPools[{i}].name", f"'{p.name}' is the CPU pool's name"
    from components.names import RESERVED_NAMESPACES

    for i, t in enumerate(cfg.tenants):
        if t.name in RESERVED_NAMESPACES or t.name.startswith("kube-"):
            yield f"tenants[{i}].name", (f"'{t.name}' is reserved (platform and Kubernetes namespaces: "
                                         f"{', '.join(RESERVED_NAMESPACES)}, kube-*)")


@cross_check  # cluster: also when the `cluster` key is absent (its defaults need a deployer and a way in)
def _cluster_access(cfg: PlatformConfig) -> Iterator[Problem]:
    for path, message in cfg.cluster.access_problems():
        yield f"cluster.{path}", message


@cross_check
def _references(cfg: PlatformConfig) -> Iterator[Problem]:
    pools = {p.name for p in cfg.gpu_pools}
    tenants = {t.name for t in cfg.tenants}
    for i, t in enumerate(cfg.tenants):
        for j, p in enumerate(t.gpu_pools or []):
            if p not in pools:
                yield f"tenants[{i}].gpuPools[{j}]", f"'{p}' is not a gpuPools name ({', '.join(sorted(pools)) or 'none'})"
        if t.isolation == "node" and not (t.gpu_pools or cfg.gpu_pools):
            yield f"tenants[{i}].isolation", "node isolation needs a GPU pool to copy its dedicated pool from"
    for i, m in enumerate(cfg.models):
        if m.pool not in pools:
            yield f"models[{i}].pool", f"'{m.pool}' is not a gpuPools name ({', '.join(sorted(pools)) or 'none'})"
        if m.tenant is not None and m.tenant not in tenants:
            yield f"models[{i}].tenant", f"'{m.tenant}' is not a tenants name"


@cross_check
def _gateway_routes(cfg: PlatformConfig) -> Iterator[Problem]:
    """Route entries, canaries and fallbacks name models of the catalog."""
    if cfg.gateway is None:
        return
    models = {m.name for m in cfg.models}
    known = ", ".join(sorted(models)) or "none"
    for i, r in enumerate(cfg.gateway.routes):
        if r.model not in models:
            yield f"gateway.routes[{i}].model", f"'{r.model}' is not a models name ({known})"
        if r.canary is not None and r.canary.model not in models:
            yield f"gateway.routes[{i}].canary.model", f"'{r.canary.model}' is not a models name ({known})"
        if r.fallback is not None and r.fallback not in models:
            yield f"gateway.routes[{i}].fallback", f"'{r.fallback}' is not a models name ({known})"
    # A tenant's rate-limit route holds one rule per model; an HTTPRoute allows 16 rules.
    if cfg.tenants and len(cfg.models) > 16:
        yield "models", f"{len(cfg.models)} models: per-tenant gateway routes hold at most 16 (one rule each)"


@cross_check  # compute: tenant-dedicated NodePools
def _compute_refs(cfg: PlatformConfig) -> Iterator[Problem]:
    from components.names import cluster_name_problems

    for message in cluster_name_problems(cfg.cluster_name):
        yield "cluster.name", message
    for i, t in enumerate(cfg.tenants):
        # A dedicated pool is GPU-limited by the tenant's quota; 0 would be a pool that never launches.
        if t.isolation == "node" and t.quota.gpu < 1:
            yield f"tenants[{i}].quota.gpu", "node isolation needs a GPU quota of at least 1 (it is the dedicated pool's GPU limit)"


@cross_check  # models: a replica fits one node, its weights fit its GPUs, replicas fit the quota
def _model_fit(cfg: PlatformConfig) -> Iterator[Problem]:
    from components import models as mdl
    from components.instances import instance_facts

    kv_headroom, candidate_types, ephemeral_gib, pod_size = mdl.KV_HEADROOM, mdl.candidate_types, mdl.ephemeral_gib, mdl.pod_size
    pool_types, precision, weights_gb, weights_gib = mdl.pool_types, mdl.precision, mdl.weights_gb, mdl.weights_gib

    pools = {p.name: p for p in cfg.gpu_pools}
    tenants = {t.name: t for t in cfg.tenants}
    for i, m in enumerate(cfg.models):
        pool = pools.get(m.pool)
        if pool is None:
            continue  # _references reports it
        key = f"models[{i}]"
        tenant = tenants.get(m.tenant) if m.tenant else None
        if tenant and tenant.gpu_pools is not None and m.pool not in tenant.gpu_pools:
            yield f"{key}.pool", f"tenant '{m.tenant}' may only use {', '.join(tenant.gpu_pools) or 'no'} GPU pools"
        types = pool_types(m, pool)
        if not types:
            models = sorted({f.gpu_model for t in pool.instance_types if (f := instance_facts(t)) and f.gpu_model})
            yield f"{key}.gpuModel", f"'{m.gpu_model}' is not a GPU of pool '{m.pool}' ({', '.join(models)})"
            continue
        most = max(f.gpus for f in types)
        if m.gpus > most:
            yield f"{key}.gpus", (f"{m.gpus} GPUs do not fit one node of pool '{m.pool}': its largest "
                                  f"{m.gpu_model or ''} instance type has {most}".replace("  ", " "))
            continue
        # The smallest-memory GPU it could land on must hold the weights and leave KV-cache room.
        smallest = min(candidate_types(m, pool), key=lambda f: f.gpu_memory_gib)
        budget = kv_headroom * m.gpu_memory_utilization * m.gpus * smallest.gpu_memory_gib
        if weights_gib(m) > budget:
            yield f"{key}.gpus", (f"{m.model} ({weights_gb(m):.0f} GB in {precision(m)}) does not fit {m.gpus} x "
                                  f"{smallest.gpu_model} ({smallest.gpu_memory_gib} GiB) with KV-cache headroom: "
                                  f"weights may use {kv_headroom:.0%} of gpuMemoryUtilization x GPU memory = "
                                  f"{budget:.0f} GiB, they need {weights_gib(m):.0f} GiB")
        if m.cache == "nodeLocal":
            store = min(f.instance_store_gib for f in candidate_types(m, pool))
            if ephemeral_gib(m) > store * 0.9:  # GB vs GiB and the node's own use of the disk
                yield f"{key}.cacheSizeGiB", (f"{m.cache_size_gib} GiB (plus scratch) does not fit the "
                                              f"{store} GB instance store of the smallest node of pool '{m.pool}'")

    # maxReplicas x gpus of every model in a namespace must fit its ResourceQuota.
    used: dict[str, list[int]] = {}
    for i, m in enumerate(cfg.models):
        used.setdefault(m.tenant or "ai-inference", []).append(i)
    for ns, idx in used.items():
        quota, where = ((tenants[ns].quota.gpu, f"tenants[{list(tenants).index(ns)}].quota.gpu") if ns in tenants
                        else (cfg.platform_quotas.ai_inference.gpu, "platformQuotas.ai-inference.gpu"))
        total = sum(cfg.models[i].max_replicas * cfg.models[i].gpus for i in idx)
        if total > quota:
            for i in idx:
                m = cfg.models[i]
                yield f"models[{i}].maxReplicas", (
                    f"{m.max_replicas} x {m.gpus} GPUs: the models of namespace {ns} need {total} GPUs at "
                    f"maxReplicas, more than its quota {where} = {quota}")
        # Their CPU and memory requests too: the quota rejects pods past requests.cpu/requests.memory.
        q = tenants[ns].quota if ns in tenants else cfg.platform_quotas.ai_inference
        sizes = [(cfg.models[i], pod_size(cfg.models[i], pools[cfg.models[i].pool])) for i in idx
                 if cfg.models[i].pool in pools]
        cpu = sum(m.max_replicas * s.cpu_m for m, s in sizes) / 1000
        mem = sum(m.max_replicas * s.memory_gib for m, s in sizes)
        for what, need, have, unit in (("cpu", cpu, _quantity(q.cpu), ""), ("memory", mem, _quantity(q.memory) / 2**30, "Gi")):
            if need > have:
                yield f"models[{idx[-1]}].maxReplicas", (
                    f"the models of namespace {ns} request {need:g}{unit} {what} at maxReplicas, more than its "
                    f"quota {where.rsplit('.', 1)[0]}.{what} = {q.cpu if what == 'cpu' else q.memory}")


def _quantity(text: str) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    num = re.match(r"^[0-9.]+", text)
    assert num, text
    return float(num.group()) * units.get(text[num.end():], 1)


@cross_check  # tenancy: GPU quotas must be payable by the pools, IAM roles map to one tenant
def _tenant_gpu_budget(cfg: PlatformConfig) -> Iterator[Problem]:
    # Namespace-isolated tenants share the GPU pools they may use, so the quotas that may land on a
    # pool must fit its gpuLimit. A node-isolated tenant runs on its own pool (limit = its quota).
    for pool in cfg.gpu_pools:
        total, users = 0, []
        for i, t in enumerate(cfg.tenants):
            if t.isolation != "namespace" or t.quota.gpu == 0 or (t.gpu_pools is not None and pool.name not in t.gpu_pools):
                continue
            total += t.quota.gpu
            users.append(t.name)
            if total > pool.gpu_limit:
                yield f"tenants[{i}].quota.gpu", (f"tenants that may use GPU pool '{pool.name}' ({', '.join(users)}) "
                                                  f"have GPU quotas summing to {total}, over its gpuLimit {pool.gpu_limit}")
                break
    for i, t in enumerate(cfg.tenants):
        if t.quota.gpu > 0 and not cfg.gpu_pools:
            yield f"tenants[{i}].quota.gpu", "a GPU quota needs a GPU pool (gpuPools is empty)"
    seen = {a.arn: "cluster.admins" for a in cfg.cluster.admins}
    if cfg.cluster.deployer is not None:
        seen[cfg.cluster.deployer.arn] = "cluster.deployer (its cluster-admin entry from pulumi-eks)"
    for i, t in enumerate(cfg.tenants):
        for j, r in enumerate(t.iam_roles):
            if r.arn in seen:
                yield f"tenants[{i}].iamRoles[{j}].arn", f"already mapped by {seen[r.arn]}; an IAM role has one access entry"
            seen[r.arn] = f"tenants[{i}]"


@cross_check  # agents: models from the catalog, tools from the declared tool servers
def _agent_refs(cfg: PlatformConfig) -> Iterator[Problem]:
    models = {m.name for m in cfg.models}
    servers = {t.name for t in cfg.agent_runtime.tool_servers}
    yield from _duplicates("agents", [a.name for a in cfg.agents])
    for i, a in enumerate(cfg.agents):
        if a.model not in models:
            yield f"agents[{i}].model", f"'{a.model}' is not a models name ({', '.join(sorted(models)) or 'none'})"
        for j, t in enumerate(a.tools):
            if t.server not in servers:
                yield (f"agents[{i}].tools[{j}].server",
                       f"'{t.server}' is not an agentRuntime.toolServers name ({', '.join(sorted(servers)) or 'none'})")


# ------------------------------------------------------------------------------------- loader

def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _walk_problems(value: Any, prefix: str) -> Iterator[Problem]:
    """Run `problems()` on every Section in a validated value, prefixing the paths."""
    if isinstance(value, Section):
        for rel, message in value.problems():
            yield (f"{prefix}.{rel}" if not rel.startswith("[") else f"{prefix}{rel}") if rel else prefix, message
        for name, field in type(value).model_fields.items():
            yield from _walk_problems(getattr(value, name), f"{prefix}.{field.alias or name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk_problems(item, f"{prefix}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _walk_problems(item, f"{prefix}.{k}")


def _salvage(annotation: Any, value: Any, prefix: str) -> Iterator[Problem]:
    """A section failed to validate: still run the rules of its sub-sections that did validate,
    so a wrong key in one place does not hide a rule broken elsewhere."""
    if not (isinstance(annotation, type) and issubclass(annotation, Section) and isinstance(value, dict)):
        return
    for name, field in annotation.model_fields.items():
        key = field.alias or name
        if key not in value:
            continue
        try:
            sub = TypeAdapter(field.annotation).validate_python(value[key])
        except (ValidationError, TypeError):
            yield from _salvage(field.annotation, value[key], f"{prefix}.{key}")
            continue
        yield from _walk_problems(sub, f"{prefix}.{key}")


def _is_string_field(annotation: Any) -> bool:
    if annotation is str:
        return True
    return typing.get_origin(annotation) is Literal and all(isinstance(a, str) for a in typing.get_args(annotation))


def validate(raw: dict[str, str], stack: str, secret_keys: Iterable[str] | None = None) -> PlatformConfig:
    """Validate the raw `agentic-platform:*` values (strings, as Pulumi hands them over).

    `raw` maps the key below the namespace (e.g. "network") to its string value. `secret_keys`
    are the keys (below the namespace) the stack holds encrypted (`secure:`); when given, a key of
    SECRET_KEYS present in plain text is an error. Raises ConfigError with every problem found."""
    problems: list[Problem] = []
    fields = {f.alias or n: (n, f) for n, f in PlatformConfig.model_fields.items()}
    known = set(fields) | set(SECRET_KEYS)
    for key in sorted(set(raw) - known):
        problems.append((key, f"unknown key; known keys are {', '.join(sorted(known))}"))
    if secret_keys is not None:
        encrypted = set(secret_keys)
        for key in sorted(k for k in SECRET_KEYS if k in raw and k not in encrypted):
            problems.append((key, (f"is plain text in the stack file ({SECRET_KEYS[key]}): set it encrypted with "
                                   f"`pulumi config set --secret {key} <value>` (the file then holds `secure: ...`)")))

    values: dict[str, Any] = {}
    for alias, (_name, field) in fields.items():
        if alias not in raw:
            if field.is_required():
                problems.append((alias, "is required"))
            continue
        text = raw[alias]
        value: Any = text
        if not _is_string_field(field.annotation):
            try:
                value = json.loads(text)
            except (TypeError, ValueError):
                value = text
        try:
            values[alias] = TypeAdapter(field.annotation).validate_python(value)
        except ValidationError as err:
            for e in err.errors():
                where = _path([alias, *e["loc"]])
                msg = e["msg"]
                if e["type"] == "extra_forbidden":
                    msg = "unknown key"
                elif e["type"] == "missing":
                    msg = "is required"
                elif isinstance(e.get("input"), (str, int, float, bool)):
                    msg = f"{msg} (got {e['input']!r})"
                problems.append((where, msg))
            problems.extend(_salvage(field.annotation, value, alias))
            continue
        problems.extend(_walk_problems(values[alias], alias))

    if problems:
        raise ConfigError(problems)
    from components.names import max_cluster_name_length

    cfg = PlatformConfig.model_validate(values)
    if cfg.cluster.name is None:
        default = f"agentic-{stack}".lower()
        default = re.sub(r"[^a-z0-9-]", "-", default)[:max_cluster_name_length()].rstrip("-")
        cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"name": default})})
    for check in CROSS_CHECKS:
        problems.extend(check(cfg))
    for key, required in SECRET_REQUIRED.items():
        if required(cfg) and key not in raw:
            problems.append((key, f"is required ({SECRET_KEYS[key]}): pulumi config set --secret {key} <value>"))
    if problems:
        raise ConfigError(problems)
    return cfg


def raw_from_pulumi() -> dict[str, str]:
    """Every `agentic-platform:*` value the Pulumi runtime was given, as strings."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = NAMESPACE + ":"
    # Secret keys count by presence only: their (decrypted) values never enter validation.
    return {k[len(prefix):]: ("[secret]" if k[len(prefix):] in SECRET_KEYS else v)
            for k, v in merged.items() if k.startswith(prefix)}


def secret_keys_from_pulumi() -> set[str]:
    """The `agentic-platform:*` keys the Pulumi runtime holds as secrets (`secure:` in the stack
    file), below the namespace. The language host passes them with the config
    (RunRequest.configSecretKeys, or PULUMI_CONFIG_SECRET_KEYS)."""
    from pulumi.runtime import config as runtime_config

    prefix = NAMESPACE + ":"
    keys = set(runtime_config.get_config_secret_keys_env())
    keys |= {k for k in {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
             if runtime_config.is_config_secret(k)}
    return {k[len(prefix):] for k in keys if k.startswith(prefix)}


def load_config() -> PlatformConfig:
    """Read and validate the stack's config. Raises ConfigError."""
    import pulumi

    return validate(raw_from_pulumi(), pulumi.get_stack(), secret_keys=secret_keys_from_pulumi())


def load_secrets() -> dict[str, Any]:
    """The stack's secret keys as Pulumi secret Outputs (None where unset)."""
    import pulumi

    conf = pulumi.Config(NAMESPACE)
    return {key: conf.get_secret(key) for key in SECRET_KEYS}
