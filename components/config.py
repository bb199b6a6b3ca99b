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
    admins: list[AdminPrincipal] = Field(default_factory=list)
    system_nodes: SystemNodesConfig = Field(default_factory=SystemNodesConfig)
    log_retention_days: int = Field(90, ge=1, le=3653)
    deletion_protection: bool = False

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


# ----------------------------------------------------------------------------------- compute

Duration = Annotated[str, Field(pattern=r"^([0-9]+(s|m|h))+$|^Never$", description="e.g. 30s, 5m, 720h or Never")]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$",
                                description="a Kubernetes quantity, e.g. 500m, 20, 40Gi")]


class DisruptionBudget(Section):
    """A Karpenter disruption budget: at most `nodes` disrupted, optionally only in a cron window."""

    nodes: str = Field(pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$")
    schedule: str | None = Field(None, description="cron, e.g. '0 9 * * mon-fri' (UTC); needs duration")
    duration: Duration | None = None
    reasons: list[Literal["Underutilized", "Empty", "Drifted"]] | None = None

    def problems(self) -> Iterator[Problem]:
        if (self.schedule is None) != (self.duration is None):
            yield "schedule", "schedule and duration go together"


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
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmptyOrUnderutilized"
    consolidate_after: Duration = "30s"
    expire_after: Duration = "720h"
    budgets: list[DisruptionBudget] = Field(default_factory=lambda: [DisruptionBudget(nodes="20%")])
    weight: int | None = Field(None, ge=1, le=100)
    labels: dict[str, str] = Field(default_factory=dict)
    cpu_limit: int | None = Field(None, ge=1, description="vCPU limit of the pool")
    memory_limit_gib: int | None = Field(None, ge=1, alias="memoryLimitGiB")

    def problems(self) -> Iterator[Problem]:
        from components.instances import instance_facts

        for i, t in enumerate(self.instance_types):
            if instance_facts(t) is None:
                yield f"instanceTypes[{i}]", f"'{t}' is not in platform/instances.yaml"
        if len(set(self.instance_types)) != len(self.instance_types):
            yield "instanceTypes", "lists a type twice"


class GpuPoolConfig(NodePoolConfig):
    """A GPU NodePool: tainted nvidia.com/gpu=true:NoSchedule and always GPU-limited."""

    gpu_limit: int = Field(ge=1, description="nvidia.com/gpu limit of the pool (required: no unbounded GPU spend)")

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


# ----------------------------------------------------------------------------------- tenancy

class QuotaConfig(Section):
    """A namespace's ResourceQuota."""

    cpu: Quantity = "8"
    memory: Quantity = "32Gi"
    gpu: int = Field(0, ge=0, description="requests.nvidia.com/gpu")
    pods: int = Field(50, ge=1)
    services: int = Field(20, ge=0)
    persistent_volume_claims: int = Field(10, ge=0)


class TenantIamRole(Section):
    """An IAM role mapped, by an EKS access entry, into one of the tenant's groups."""

    arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    access: Literal["operator", "viewer"] = "viewer"


class TenantConfig(Section):
    """A tenant: a namespace with its quota, limits, isolation and access."""

    name: DnsName
    isolation: Literal["namespace", "node"] = "namespace"
    gpu_pools: list[DnsName] | None = Field(None, description="GPU pools it may use; default all")
    quota: QuotaConfig = Field(default_factory=QuotaConfig)
    operator_groups: list[str] = Field(default_factory=list)
    viewer_groups: list[str] = Field(default_factory=list)
    iam_roles: list[TenantIamRole] = Field(default_factory=list)


class PlatformQuotasConfig(Section):
    """Quotas of the platform namespaces that run tenant-facing work (the seed's numbers in prod)."""

    ai_inference: QuotaConfig = Field(default_factory=lambda: QuotaConfig(cpu="16", memory="64Gi", gpu=1, pods=20),
                                      alias="ai-inference")
    ai_agents: QuotaConfig = Field(default_factory=lambda: QuotaConfig(cpu="8", memory="16Gi", gpu=0, pods=50),
                                   alias="ai-agents")


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

    def problems(self) -> Iterator[Problem]:
        if self.min_replicas > self.max_replicas:
            yield "minReplicas", f"{self.min_replicas} is more than maxReplicas ({self.max_replicas})"
        if not re.fullmatch(r"[^:@\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})", self.image) \
                or self.image.endswith(":latest"):
            yield "image", f"'{self.image}' is not pinned: use repo:tag (not latest) or repo@sha256:digest"


# ------------------------------------------------------------------------------ the whole config

Environment = Literal["dev", "staging", "prod"]

# Secret keys (`pulumi config set --secret`), read as Pulumi secrets by `load_secrets`, never
# into the pydantic model. name -> what it is.
SECRET_KEYS: dict[str, str] = {}


class PlatformConfig(Section):
    """The whole stack config. A field per `agentic-platform:<key>`."""

    environment: Environment
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    protect_data: bool = True
    gpu_pools: list[GpuPoolConfig] = Field(default_factory=list)
    cpu_pool: CpuPoolConfig = Field(default_factory=CpuPoolConfig)
    tenants: list[TenantConfig] = Field(default_factory=list)
    platform_quotas: PlatformQuotasConfig = Field(default_factory=PlatformQuotasConfig)
    models: list[ModelConfig] = Field(default_factory=list)

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
    platform_ns = {"ai-gateway", "ai-agents", "ai-inference", "ai-data", "observability", "kube-system", "default"}
    for i, t in enumerate(cfg.tenants):
        if t.name in platform_ns or t.name.startswith("kube-"):
            yield f"tenants[{i}].name", f"'{t.name}' is reserved for the platform"


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


def _is_string_field(annotation: Any) -> bool:
    if annotation is str:
        return True
    return typing.get_origin(annotation) is Literal and all(isinstance(a, str) for a in typing.get_args(annotation))


def validate(raw: dict[str, str], stack: str) -> PlatformConfig:
    """Validate the raw `agentic-platform:*` values (strings, as Pulumi hands them over).

    `raw` maps the key below the namespace (e.g. "network") to its string value. Raises
    ConfigError with every problem found."""
    problems: list[Problem] = []
    fields = {f.alias or n: (n, f) for n, f in PlatformConfig.model_fields.items()}
    known = set(fields) | set(SECRET_KEYS)
    for key in sorted(set(raw) - known):
        problems.append((key, f"unknown key; known keys are {', '.join(sorted(known))}"))

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
            continue
        problems.extend(_walk_problems(values[alias], alias))

    if problems:
        raise ConfigError(problems)
    cfg = PlatformConfig.model_validate(values)
    if cfg.cluster.name is None:
        default = f"agentic-{stack}".lower()
        default = re.sub(r"[^a-z0-9-]", "-", default)[:40].rstrip("-")
        cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"name": default})})
    for check in CROSS_CHECKS:
        problems.extend(check(cfg))
    if problems:
        raise ConfigError(problems)
    return cfg


def raw_from_pulumi() -> dict[str, str]:
    """Every `agentic-platform:*` value the Pulumi runtime was given, as strings."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = NAMESPACE + ":"
    return {k[len(prefix):]: v for k, v in merged.items() if k.startswith(prefix) and k[len(prefix):] not in SECRET_KEYS}


def load_config() -> PlatformConfig:
    """Read and validate the stack's config. Raises ConfigError."""
    import pulumi

    return validate(raw_from_pulumi(), pulumi.get_stack())


def load_secrets() -> dict[str, Any]:
    """The stack's secret keys as Pulumi secret Outputs (None where unset)."""
    import pulumi

    conf = pulumi.Config(NAMESPACE)
    return {key: conf.get_secret(key) for key in SECRET_KEYS}
