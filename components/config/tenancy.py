"""`tenants`, `platformQuotas`: namespaces, their quotas, isolation and access."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import DnsName, GroupName, Problem, Quantity, Section, quantity_value


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
    pods: int = Field(50, ge=1, description="pods")
    services: int = Field(20, ge=0, description="services")
    persistent_volume_claims: int = Field(10, ge=0, description="persistentvolumeclaims")
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

    arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", description="IAM role ARN")
    access: Literal["operator", "viewer"] = Field("viewer", description="operator: into operatorGroups; viewer: into viewerGroups")


class TenantConfig(Section):
    """A tenant: a namespace with its quota, limits, isolation and access."""

    name: DnsName
    isolation: Literal["namespace", "node"] = Field(
        "namespace", description="namespace: shares the GPU pools; node: a dedicated NodePool (tenant-<name>), tainted for it")
    gpu_pools: list[DnsName] | None = Field(None, description="GPU pools it may use; default all")
    quota: QuotaConfig = Field(default_factory=QuotaConfig)
    operator_groups: list[GroupName] = Field(default_factory=list,
                                             description="Kubernetes groups bound to the tenant's agent-operator role")
    viewer_groups: list[GroupName] = Field(default_factory=list,
                                           description="Kubernetes groups bound to the tenant's agent-viewer role")
    iam_roles: list[TenantIamRole] = Field(default_factory=list,
                                           description="IAM roles mapped into the tenant's groups by EKS access entries")

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
    # OpenCost: one exporter pod (requests 10m/55Mi in the chart; the platform's 100m/256Mi).
    opencost: QuotaConfig = Field(default_factory=lambda: _quota("1", "2Gi", 0, 5))

    def for_namespace(self, namespace: str) -> QuotaConfig:
        field = next(n for n, f in type(self).model_fields.items() if (f.alias or n) == namespace)
        return getattr(self, field)
