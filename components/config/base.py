"""What every section is built on: the `Section` model, the problem type, the error, and the
value types sections share (names, durations, quantities)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from domain.units import quantity

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


Duration = Annotated[str, Field(pattern=r"^([0-9]+(s|m|h))+$|^Never$", description="e.g. 30s, 5m, 720h or Never")]
# Karpenter v1 NodePool spec.template.spec.terminationGracePeriod: no `Never`
# (platform/crds/schemas/karpenter.sh_nodepool_v1.json).
FiniteDuration = Annotated[str, Field(pattern=r"^([0-9]+(s|m|h))+$", description="e.g. 30m, 2h")]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$",
                                description="a Kubernetes quantity, e.g. 500m, 20, 40Gi")]
# Kubernetes group names an access entry may map to (EKS rejects `system:` groups).
GroupName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$",
                                 description="a Kubernetes RBAC group; not system:*")]
RetentionPeriod = Annotated[str, Field(pattern=r"^[1-9][0-9]*(h|d|w|y)$", description="Prometheus retention, e.g. 15d")]


def quantity_value(q: str) -> float:
    """A `Quantity` as a number (500m -> 0.5, 2Gi -> 2147483648), for comparisons."""
    return quantity(q)


def duplicates(section: str, names: list[str]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            yield f"{section}[{i}].name", f"'{n}' is used twice"
        seen.add(n)
