"""`gpuPools`, `cpuPool`, `gpuStack`: Karpenter NodePools and the NVIDIA stack."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from components.config.base import DnsName, Duration, FiniteDuration, Problem, Section
from domain.instances import instance_facts
from domain.sizing import max_gpus_per_node

# gp3 limits the EC2NodeClass volumes are validated against.
GP3_MIN_IOPS, GP3_MAX_IOPS, GP3_IOPS_PER_GIB = 3000, 16000, 500
GP3_MIN_THROUGHPUT, GP3_MAX_THROUGHPUT, GP3_THROUGHPUT_PER_IOPS = 125, 1000, 0.25
SOCI_MIN_THROUGHPUT = 600  # MiB/s: below it SOCI parallel pull is slower (see GpuPoolConfig)


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


class CapacityReservationTerm(Section):
    """One EC2NodeClass `capacityReservationSelectorTerms` entry: an On-Demand Capacity Reservation
    or a Capacity Block (EC2 models both as capacity reservations), by id, or by tags / owner /
    instance match criteria (karpenter-crd 1.14.1, karpenter.k8s.aws_ec2nodeclasses.yaml)."""

    id: str | None = Field(None, pattern=r"^cr-[0-9a-z]+$", description="the reservation's id (cr-...); alone in its term")
    tags: dict[str, str] | None = Field(
        None, max_length=20, description="select reservations carrying every tag ('*' matches any value)")
    owner_id: str | None = Field(None, alias="ownerID", pattern=r"^[0-9]{12}$",
                                 description="only reservations of this account (with tags or instanceMatchCriteria)")
    instance_match_criteria: Literal["open", "targeted"] | None = Field(
        None, description="select reservations by how they match instances")

    def problems(self) -> Iterator[Problem]:
        # The CRD's CEL rules (the plan does not run CEL): at least one selector; `id` alone.
        if self.id is None and self.tags is None and self.instance_match_criteria is None:
            yield "", "set id, tags or instanceMatchCriteria"
        if self.id is not None and (self.tags is not None or self.owner_id is not None
                                    or self.instance_match_criteria is not None):
            yield "id", "id is mutually exclusive with tags, ownerID and instanceMatchCriteria"
        for k, v in (self.tags or {}).items():
            if not k or not v:
                yield f"tags.{k}", "empty tag keys or values are not supported"

    def selector_term(self) -> dict[str, Any]:
        """The term as the EC2NodeClass spells it."""
        return self.model_dump(by_alias=True, exclude_none=True)


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
    capacity_reservations: list[CapacityReservationTerm] = Field(
        default_factory=list, max_length=30,
        description="ODCRs / Capacity Blocks the pool launches `reserved` nodes into (needs capacityTypes `reserved`)")

    def problems(self) -> Iterator[Problem]:
        # Karpenter launches `reserved` nodes only into the reservations the node class selects
        # (no open matching), and uses none unless the NodePool allows capacity type `reserved`
        # (karpenter-provider-aws v1.14.1, website/content/en/docs/tasks/odcrs.md).
        if "reserved" in self.capacity_types and not self.capacity_reservations:
            yield "capacityReservations", "capacityTypes has 'reserved': select the reservations to launch into"
        if self.capacity_reservations and "reserved" not in self.capacity_types:
            yield "capacityTypes", "capacityReservations are set but 'reserved' is not a capacity type: they would go unused"
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

    # A model server's node is worth keeping: never consolidate a node for being underutilized
    # (the model on it would cold-start elsewhere, minutes of weights and warm-up); only empty nodes
    # go, after long enough for a replica scale-up to reuse them.
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = Field(
        "WhenEmpty", description="WhenEmpty: only empty GPU nodes are consolidated (a loading model's node never is)")
    consolidate_after: Duration = Field(
        "10m", description="how long a GPU node must stay empty before Karpenter removes it")
    fast_image_pull: bool = Field(
        True, description="SOCI parallel pull and unpack of container images on the pool's nodes (AL2023: nodeadm "
                          "FastImagePull; Bottlerocket: the soci snapshotter)")
    # Warm capacity: a static NodePool beside the pool (Karpenter `spec.replicas`, alpha feature gate
    # staticCapacity; kubernetes-sigs/karpenter designs/static-capacity.md at the core commit of
    # karpenter-provider-aws v1.14.1): same node class, requirements, labels and taints, never
    # consolidated, so a model replica that finds one free starts without a node launch.
    warm_nodes: int = Field(
        0, ge=0, le=100,
        description="ready nodes the pool always keeps (a static NodePool `<name>-warm` of this many replicas, "
                    "beside the pool's own limits; model pods land on them first). 0: none")

    def problems(self) -> Iterator[Problem]:
        yield from super().problems()
        for i, t in enumerate(self.instance_types):
            facts = instance_facts(t)
            if facts is not None and facts.gpus == 0:
                yield f"instanceTypes[{i}]", f"'{t}' is not a GPU instance type"
        if self.consolidation_policy == "WhenEmptyOrUnderutilized" and not self.blocks_underutilized():
            yield "consolidationPolicy", ("WhenEmptyOrUnderutilized would move a model that is loading or serving to "
                                          "another node (a full cold start); use WhenEmpty, or add an always-active "
                                          "budget {nodes: \"0\", reasons: [Underutilized]}")
        yield from self._fast_pull_problems()

    def blocks_underutilized(self) -> bool:
        """An always-active budget of 0 nodes for reason Underutilized: Karpenter then never
        consolidates a node for being underutilized (NodePool CRD: the most restrictive active
        budget wins, per reason)."""
        return any(b.nodes in ("0", "0%") and b.schedule is None and (b.reasons is None or "Underutilized" in b.reasons)
                   for b in self.budgets)

    def images_on_instance_store(self) -> bool:
        """AL2023 with instanceStorePolicy RAID0: containerd's (and, moved there, SOCI's) data is on
        the NVMe array, not the root volume."""
        facts = [instance_facts(t) for t in self.instance_types]
        return self.ami_family == "al2023" and bool(facts) and all(f is not None and f.instance_store_gib > 0
                                                                  for f in facts)

    def _fast_pull_problems(self) -> Iterator[Problem]:
        if not self.fast_image_pull:
            return
        # AWS ("Introducing Seekable OCI Parallel Pull mode for Amazon EKS", 2025): parallel pull
        # is disk-bound; below ~600 MiB/s of EBS throughput pulls get slower, not faster.
        throughput = self.root_volume_throughput or GP3_MIN_THROUGHPUT
        if not self.images_on_instance_store() and throughput < SOCI_MIN_THROUGHPUT:
            yield "rootVolumeThroughput", (f"fastImagePull writes images to the gp3 volume at {throughput} MiB/s; "
                                           f"give at least {SOCI_MIN_THROUGHPUT} (or set fastImagePull: false)")
        # nodeadm enables SOCI only on nodes with >= 4 vCPUs and >= 7 GiB (awslabs/amazon-eks-ami,
        # nodeadm/internal/containerd/config.go, UseSOCISnapshotter).
        for i, t in enumerate(self.instance_types):
            f = instance_facts(t)
            if self.ami_family == "al2023" and f is not None and (f.vcpu < 4 or f.memory_gib < 7):
                yield f"instanceTypes[{i}]", f"'{t}' is too small for nodeadm's FastImagePull (4 vCPUs, 7 GiB)"

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


class BudgetConfig(Section):
    """A spending ceiling for the stack: the plan's cost ceiling (every NodePool at its limits plus
    the fixed platform cost, plan/cost.py) above it is a mandatory policy finding."""

    hourly: float | None = Field(None, gt=0, description="USD per hour the stack may cost at most")
    monthly: float | None = Field(None, gt=0, description="USD per month (730 hours) the stack may cost at most")

    def problems(self) -> Iterator[Problem]:
        if self.hourly is None and self.monthly is None:
            yield "", "set hourly or monthly (USD)"
