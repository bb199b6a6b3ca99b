"""`gpuPools`, `cpuPool`, `gpuStack`: Karpenter NodePools and the NVIDIA stack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import DnsName, Duration, FiniteDuration, Problem, Section
from domain.instances import instance_facts
from domain.sizing import max_gpus_per_node

# gp3 limits the EC2NodeClass volumes are validated against.
GP3_MIN_IOPS, GP3_MAX_IOPS, GP3_IOPS_PER_GIB = 3000, 16000, 500
GP3_MIN_THROUGHPUT, GP3_MAX_THROUGHPUT, GP3_THROUGHPUT_PER_IOPS = 125, 1000, 0.25


class DisruptionBudget(Section):
    """A Karpenter disruption budget: at most `nodes` disrupted, optionally only in a cron window."""

    nodes: str = Field(
        pattern=r"^((100|[0-9]{1,2})%|[0-9]+)$", description="nodes disrupted at once: a count or a percentage (e.g. 20%)")
    schedule: str | None = Field(None, description="cron, e.g. '0 9 * * mon-fri' (UTC); needs duration")
    duration: Duration | None = Field(None, description="how long the schedule's window stays open")
    reasons: list[Literal["Underutilized", "Empty", "Drifted"]] | None = Field(
        None, description="disruption reasons the budget applies to; default all")

    def problems(self) -> Iterator[Problem]:
        if (self.schedule is None) != (self.duration is None):
            yield "schedule", "schedule and duration go together"


class TaintConfig(Section):
    """An extra node taint of a pool (e.g. the seed's spot pool: karpenter.sh/capacity-type=spot)."""

    key: str = Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                             r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", description="taint key (a qualified name)")
    value: str | None = Field(None, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", description="taint value")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field("NoSchedule", description="taint effect")


class NodePoolConfig(Section):
    """A Karpenter NodePool and its EC2NodeClass."""

    name: DnsName
    instance_types: list[str] = Field(
        min_length=1, description="EC2 instance types of the pool (listed in platform/instances.yaml)")
    capacity_types: list[Literal["on-demand", "spot", "reserved"]] = Field(
        default_factory=lambda: ["on-demand"], min_length=1, description="Karpenter capacity types the pool may launch")
    ami_family: Literal["al2023", "bottlerocket"] = Field(
        "al2023", description="EC2NodeClass AMI family (EKS-optimized AL2023 or Bottlerocket)")
    ami_version: str = Field("latest", pattern=r"^(latest|v[0-9]{8}|[0-9]+\.[0-9]+\.[0-9]+)$",
                             description="AMI alias version: 'latest' or pinned (al2023 v20251023, bottlerocket 1.49.0)")
    root_volume_gib: int = Field(200, ge=20, le=16384, alias="rootVolumeGiB", description="encrypted gp3 root volume per node, GiB")
    # gp3 provisioned performance (unset: the gp3 baseline, 3000 IOPS / 125 MiB/s).
    root_volume_iops: int | None = Field(
        None, ge=GP3_MIN_IOPS, le=GP3_MAX_IOPS,
        description="provisioned gp3 IOPS (at most 500 per GiB); unset: the gp3 baseline 3000")
    root_volume_throughput: int | None = Field(None, ge=GP3_MIN_THROUGHPUT, le=GP3_MAX_THROUGHPUT,
                                               description="MiB/s")
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = Field(
        "WhenEmptyOrUnderutilized", description="when Karpenter may consolidate nodes")
    consolidate_after: Duration = Field("30s", description="how long a node must be consolidatable before Karpenter acts")
    expire_after: Duration = Field("720h", description="a node's lifetime before Karpenter replaces it")
    # Unset, a drain blocked by a PodDisruptionBudget would hold the NodeClaim forever.
    termination_grace_period: FiniteDuration = Field(
        "30m", description="how long a draining node waits for its pods (PDBs, do-not-disrupt) before Karpenter deletes them")
    budgets: list[DisruptionBudget] = Field(
        default_factory=lambda: [DisruptionBudget(nodes="20%")], description="Karpenter disruption budgets of the pool")
    weight: int | None = Field(None, ge=1, le=100, description="Karpenter NodePool weight: higher is tried first")
    labels: dict[str, str] = Field(
        default_factory=dict, description="extra node labels (not in Karpenter's or Kubernetes' restricted domains)")
    cpu_limit: int | None = Field(None, ge=1, description="vCPU limit of the pool")
    memory_limit_gib: int | None = Field(None, ge=1, alias="memoryLimitGiB", description="memory limit of the pool, GiB")
    taints: list[TaintConfig] = Field(default_factory=list, description="extra taints besides the GPU taint")

    def problems(self) -> Iterator[Problem]:
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
    termination_grace_period: FiniteDuration = Field(
        "2h", description="how long a draining GPU node waits for its pods before Karpenter deletes them")

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        for i, t in enumerate(self.instance_types):
            facts = instance_facts(t)
            if facts is not None and facts.gpus == 0:
                yield f"instanceTypes[{i}]", f"'{t}' is not a GPU instance type"

    def max_gpus_per_node(self) -> int:
        return max_gpus_per_node(self.instance_types)


class CpuPoolConfig(NodePoolConfig):
    """The CPU NodePool for platform workloads (gateway, agents, data, observability)."""

    name: DnsName = "platform"
    instance_types: list[str] = Field(default_factory=lambda: ["m7i.xlarge", "m7i.2xlarge", "m6i.xlarge", "m6i.2xlarge"],
                                      min_length=1, description="EC2 instance types of the pool (no GPU types)")
    cpu_limit: int | None = Field(256, ge=1, description="vCPU limit of the pool (it, or memoryLimitGiB, is required)")

    def problems(self) -> Iterator[Problem]:
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

    mode: Literal["devicePlugin", "gpuOperator"] = Field(
        "devicePlugin",
        description="devicePlugin: the standalone NVIDIA device plugin; gpuOperator: the GPU operator, driver and toolkit off")
    dcgm_scrape_interval: Duration = Field("15s", description="how often Prometheus scrapes the DCGM exporter")

    def problems(self) -> Iterator[Problem]:
        if not re.search(r"[1-9]", self.dcgm_scrape_interval):  # "Never", "0s"
            yield "dcgmScrapeInterval", f"'{self.dcgm_scrape_interval}' is not a scrape interval (e.g. 15s)"
