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
