"""Capacity pre-flight: can this account launch the node pools the stack declares? Read-only.

Per pool:
(a) **Offerings** (``ec2:DescribeInstanceTypeOfferings``): a type missing from some of the
    cluster's AZs is a warning; offered in none of them, a failure.
(b) **vCPU quotas** (``servicequotas:GetServiceQuota``, falling back to
    ``GetAWSDefaultServiceQuota``): the vCPUs the pool can reach at its limits against the EC2
    quota of its family group (Standard, G and VT, P, P5) and capacity type (plan/preflight/quotas.py).
    Pools sharing a quota are also summed; a shortfall only in the sum is a warning.
(c) **Capacity reservations** (``ec2:DescribeCapacityReservations``): a pool with capacity type
    ``reserved`` must select, through its ``capacityReservations`` terms (the EC2NodeClass's
    ``capacityReservationSelectorTerms``), at least one active or scheduled reservation of one of its
    instance types in one of the cluster's AZs. Karpenter launches `reserved` nodes only into the
    reservations the terms select (karpenter-provider-aws v1.14.1,
    website/content/en/docs/tasks/odcrs.md: no open matching). A pool that may only use
    ``reserved`` and has none fails; one that falls back to on-demand/spot gets a warning.

Never raises for AWS problems: missing credentials, AccessDenied or an unreachable endpoint
become failures with the permission that is missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:   # boto3 takes 0.1 s to import: only when the pre-flight runs (plan/preflight)
    import boto3

from domain.instances import InstanceFacts, instance_facts
from plan.preflight import aws
from plan.preflight.quotas import QUOTA_CAPACITY_TYPES, Need, pool_needs, read_quotas

RESERVED = "reserved"
CAPACITY_TYPES = (*QUOTA_CAPACITY_TYPES, RESERVED)
"""Karpenter's ``karpenter.sh/capacity-type`` values."""


@dataclass(frozen=True)
class PoolDemand:
    """What one node pool may ask EC2 for."""

    name: str
    instance_types: list[str]
    capacity_types: list[str]            # on-demand, spot, reserved
    gpu_limit: int                       # nvidia.com/gpu limit; 0 for CPU pools
    vcpu_limit: int | None = None        # the pool's cpu limit; caps the need, required for CPU types
    reservation_terms: list[dict[str, Any]] = field(default_factory=list)  # capacityReservationSelectorTerms
    warm_nodes: int = 0                  # nodes of its static NodePool (gpuPools[].warmNodes), beyond its limits


@dataclass(frozen=True)
class QuotaCheck:
    """vCPUs a pool needs from one quota, against what the account has."""

    family_group: str
    capacity_type: str
    quota_code: str
    quota_name: str
    needed_vcpus: int
    available_vcpus: float | None        # None: could not be read
    source: str                          # applied | default | unavailable
    basis: str                           # how needed_vcpus was derived

    @property
    def ok(self) -> bool:
        return self.available_vcpus is not None and self.needed_vcpus <= self.available_vcpus


@dataclass
class PoolReport:
    name: str
    offerings: dict[str, list[str]] = field(default_factory=dict)   # type -> selected AZs offering it
    quotas: list[QuotaCheck] = field(default_factory=list)
    reservations: list[aws.Reservation] = field(default_factory=list)  # the usable ones the terms select
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class PreflightReport:
    region: str | None
    availability_zones: list[str] = field(default_factory=list)
    pools: list[PoolReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # across pools (quotas only reached together)
    failures: list[str] = field(default_factory=list)   # stop the whole check (credentials, region, AZs)

    @property
    def ok(self) -> bool:
        return not self.failures and all(p.ok for p in self.pools)


def _validate_pool(pool: PoolDemand, report: PoolReport) -> None:
    if not pool.instance_types:
        report.failures.append(f"pool {pool.name!r}: lists no instance types")
    bad = [c for c in pool.capacity_types if c not in CAPACITY_TYPES]
    if bad or not pool.capacity_types:
        report.failures.append(f"pool {pool.name!r}: capacity_types {list(pool.capacity_types)} must be a "
                               f"non-empty subset of {list(CAPACITY_TYPES)}")
    if pool.gpu_limit < 0 or (pool.vcpu_limit is not None and pool.vcpu_limit < 0):
        report.failures.append(f"pool {pool.name!r}: gpu_limit and vcpu_limit must not be negative")


def _check_offerings(pool: PoolDemand, azs: list[str], offered: dict[str, set[str]], report: PoolReport) -> None:
    for t in pool.instance_types:
        where = [az for az in azs if az in offered.get(t, set())]
        report.offerings[t] = where
        missing = [az for az in azs if az not in where]
        if not where:
            report.failures.append(f"pool {pool.name!r}: {t} is not offered in any selected AZ ({', '.join(azs)})")
        elif missing:
            report.warnings.append(f"pool {pool.name!r}: {t} is not offered in {', '.join(missing)}; "
                                   f"nodes of this type can only start in {', '.join(where)}")
    for az in azs if pool.instance_types else []:
        if not any(az in report.offerings[t] for t in pool.instance_types):
            report.warnings.append(f"pool {pool.name!r}: none of its instance types is offered in {az}")


def _check_reservations(ec2: Any, pool: PoolDemand, azs: list[str], report: PoolReport) -> None:
    """(c) above: which selected reservations Karpenter can use for this pool."""
    if RESERVED not in pool.capacity_types:
        return
    usable: dict[str, aws.Reservation] = {}
    for i, term in enumerate(pool.reservation_terms):
        found = aws.reservations(ec2, term)
        if not found:
            report.warnings.append(f"pool {pool.name!r}: capacityReservations[{i}] {term} selects no reservation")
        for r in found:
            why = ("is not one of the pool's instance types" if r.instance_type not in pool.instance_types else
                   f"is in {r.zone}, not in the cluster's AZs" if r.zone not in azs else
                   f"is {r.state}" if r.state not in aws.USABLE_RESERVATION_STATES else "")
            if why:
                report.warnings.append(f"pool {pool.name!r}: reservation {r.id} ({r.instance_type}) {why}; "
                                       "Karpenter cannot launch into it")
            else:
                usable[r.id] = r
    report.reservations = sorted(usable.values(), key=lambda r: r.id)
    fallback = [c for c in pool.capacity_types if c != RESERVED]
    if not usable and not fallback:
        report.failures.append(f"pool {pool.name!r}: capacity type 'reserved' only, but its capacityReservations "
                               f"select no usable reservation of {', '.join(pool.instance_types)} in "
                               f"{', '.join(azs)}; it could never launch a node")
    elif not usable:
        report.warnings.append(f"pool {pool.name!r}: no usable capacity reservation; it falls back to "
                               f"{', '.join(fallback)}")


def _quota_checks(pools: Sequence[PoolDemand], report: PreflightReport, needs: list[list[Need]], sq: Any) -> None:
    values, notes = read_quotas(sq, [n.quota for pool_needs_ in needs for n in pool_needs_])
    report.warnings += [f"{report.region}: {n}" for n in notes]
    totals: dict[str, int] = {}
    short: set[str] = set()
    for pool, pr, pool_needs_ in zip(pools, report.pools, needs, strict=True):
        for need in pool_needs_:
            qv = values[need.quota.code]
            check = QuotaCheck(need.group, need.capacity_type, qv.quota.code, qv.quota.name, need.vcpus,
                               qv.value, qv.source, need.basis)
            pr.quotas.append(check)
            totals[check.quota_code] = totals.get(check.quota_code, 0) + need.vcpus
            if qv.value is None:
                pr.failures.append(f"pool {pool.name!r}: cannot read {need.group} {need.capacity_type} vCPU quota "
                                   f"{need.quota.code} ({need.quota.name}): {qv.note}")
            elif not check.ok:
                short.add(check.quota_code)
                pr.failures.append(
                    f"pool {pool.name!r}: {need.group} {need.capacity_type} vCPU quota too low: needs "
                    f"{need.vcpus} vCPUs ({need.basis}) but {check.quota_code} ({check.quota_name}) is "
                    f"{qv.value:g} in {report.region}; request an increase in Service Quotas or lower the pool's limit")
    for code, total in sorted(totals.items()):
        qv = values[code]
        if qv.value is not None and total > qv.value and code not in short:
            report.warnings.append(f"pools together need {total} vCPUs from {code} ({qv.quota.name}) but it is "
                                   f"{qv.value:g} in {report.region}; they cannot all reach their limits at once")


def _select_azs(ec2: Any, report: PreflightReport, az_count: int | None,
                availability_zones: Sequence[str] | None) -> list[str] | None:
    zones = aws.zone_names(ec2)
    if availability_zones is not None:
        unknown = [az for az in availability_zones if az not in zones]
        if unknown:
            report.failures.append(f"AZs {unknown} do not exist (or are not available) in {report.region}: {zones}")
            return None
        return list(availability_zones)
    if az_count is not None:
        if az_count > len(zones):
            report.failures.append(f"az_count {az_count} but {report.region} has only {len(zones)} AZs: {zones}")
            return None
        return aws.first_azs(zones, az_count)
    return zones


def run_preflight(session: boto3.Session, pools: Sequence[PoolDemand], *, az_count: int | None = None,
                  availability_zones: Sequence[str] | None = None,
                  clients: Mapping[str, Any] | None = None) -> PreflightReport:
    """Check offerings, vCPU quotas and capacity reservations for ``pools`` in the session's region.

    AZs: ``availability_zones`` if given (each must exist), else the first ``az_count`` zone names
    in name order (the network layer's rule), else every available zone. ``clients`` maps a
    service name (``"ec2"``, ``"service-quotas"``) to a ready client (tests: a recorded account)."""
    if az_count is not None and availability_zones is not None:
        raise ValueError("pass either az_count or availability_zones, not both")
    if az_count is not None and az_count < 1:
        raise ValueError(f"az_count must be at least 1, got {az_count}")
    report = PreflightReport(region=session.region_name)
    if not report.region:
        report.failures.append("no AWS region configured (set AWS_REGION or the profile's region)")
        return report
    try:
        ec2 = aws.client(session, clients, "ec2")
        azs = _select_azs(ec2, report, az_count, availability_zones)
        if azs is None:
            return report
        report.availability_zones = azs
        offered = aws.offerings(ec2, sorted({t for p in pools for t in p.instance_types}), azs)
        sq = aws.client(session, clients, "service-quotas")
        needs: list[list[Need]] = []
        for pool in pools:
            pr = PoolReport(name=pool.name)
            report.pools.append(pr)
            _validate_pool(pool, pr)
            _check_offerings(pool, azs, offered, pr)
            _check_reservations(ec2, pool, azs, pr)
            facts: list[InstanceFacts] = []
            for t in pool.instance_types:
                if (f := instance_facts(t)) is None:
                    pr.failures.append(f"pool {pool.name!r}: unknown instance type {t!r} (not in "
                                       "platform/instances.yaml); add its facts there or choose a listed type")
                else:
                    facts.append(f)
            if pool.gpu_limit == 0 and any(f.gpus > 0 for f in facts):
                pr.warnings.append(f"pool {pool.name!r}: gpu_limit is 0, so it can never launch a GPU node")
            needs.append(pool_needs(pool.name, facts, list(pool.capacity_types), max(pool.gpu_limit, 0),
                                    pool.vcpu_limit, pr.warnings, pool.warm_nodes))
    except aws.AwsError as exc:
        report.failures.append(f"{report.region}: {exc}")
        return report
    except (ClientError, BotoCoreError) as exc:  # client creation (e.g. no region / bad profile)
        report.failures.append(f"{report.region}: {aws.describe(exc)}")
        return report
    _quota_checks(pools, report, needs, sq)
    return report
