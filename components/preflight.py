"""Capacity pre-flight: can this account actually launch the node pools we plan?

Read-only. Given a ``boto3.Session`` and the planned pools it checks, per pool:

(a) **Offerings.** Which instance types EC2 offers in which of the cluster's
    availability zones (``ec2:DescribeInstanceTypeOfferings``). A type missing
    from some AZs is a warning; a type offered in none of them is a failure.
(b) **vCPU quotas.** The vCPUs the pool can reach at its limit, against the EC2
    Service Quotas for its family group and capacity type
    (``servicequotas:GetServiceQuota``, falling back to
    ``GetAWSDefaultServiceQuota`` when no applied value exists).

It never raises for AWS problems: missing credentials, AccessDenied or an
unreachable endpoint become failures in the report with a message that says
what permission or setting is missing.

The vCPU rule (conservative): Karpenter never launches a node that would take
the pool past its ``nvidia.com/gpu`` limit, so at most ``gpu_limit`` GPUs run.
For each instance type ``t`` the pool may pick, filling the limit with ``t``
alone needs ``ceil(gpu_limit / gpus(t)) * vcpu(t)`` vCPUs. The need of a quota
bucket is the maximum of that over the pool's types that count against it. It is
an upper bound for any mix of types (each GPU brings at most the largest
vCPU-per-GPU ratio), and the ceil covers a pool whose limit is not a multiple of
the GPUs per node. If the pool also sets ``vcpu_limit`` (its ``cpu`` limit), the
need is capped by it; CPU-only types are checked only through ``vcpu_limit``.

The quota value is compared as a whole: current usage is not subtracted (that
needs CloudWatch usage metrics), so "ok" means "fits in an otherwise empty
account". Pools that share one quota are also summed; a shortfall that only
appears in the sum is a warning (the limits are ceilings, rarely all reached).

Tests inject clients through ``clients={"service-quotas": stubbed_client}``;
anything not given there is created with ``session.client(name)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from domain.instances import InstanceFacts, instance_facts

ON_DEMAND = "on-demand"
SPOT = "spot"
CAPACITY_TYPES = (ON_DEMAND, SPOT)
"""Capacity types a pool may ask for (Karpenter's ``karpenter.sh/capacity-type`` values)."""


@dataclass(frozen=True)
class QuotaCode:
    """One EC2 Service Quotas entry (service code ``ec2``; value in vCPUs, per region)."""

    code: str
    name: str


# EC2 vCPU quotas by (family group, capacity type). Codes checked 2026-11-25 against
# the EC2 User Guide quota pages (On-Demand and Spot quota lists), AWS's Startups
# "GPU instance quota assistant" page (which lists the P5 split) and several public
# tools that call these codes; see the report of issue 3 for the sources.
# - On-Demand, all P families (P2..P6, incl. P5/P5e/P5en) share "Running On-Demand
#   P instances"; there is no separate on-demand P5 vCPU quota (a claim that
#   L-5480EFD2 is one is wrong: that code is "Running Dedicated inf Hosts").
# - Spot, P5/P5e/P5en have their own "All P5 Spot Instance Requests" (L-C4BD4855);
#   P2/P3/P4 use L-7212CCBC ("All P4, P3 and P2 Spot Instance Requests", which the
#   newest User Guide lists as "All P Spot Instance Requests" without a P5 entry).
#   If L-C4BD4855 does not exist in the account/region, P5 spot falls back to
#   L-7212CCBC (see _QUOTA_FALLBACKS) and the report says so.
_STANDARD_OD = QuotaCode("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")
_STANDARD_SPOT = QuotaCode("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")
_G_OD = QuotaCode("L-DB2E81BA", "Running On-Demand G and VT instances")
_G_SPOT = QuotaCode("L-3819A6DF", "All G and VT Spot Instance Requests")
_P_OD = QuotaCode("L-417A185B", "Running On-Demand P instances")
_P_SPOT = QuotaCode("L-7212CCBC", "All P Spot Instance Requests (formerly All P4, P3 and P2)")
_P5_SPOT = QuotaCode("L-C4BD4855", "All P5 Spot Instance Requests")

EC2_VCPU_QUOTAS: dict[tuple[str, str], QuotaCode] = {
    ("Standard", ON_DEMAND): _STANDARD_OD,
    ("Standard", SPOT): _STANDARD_SPOT,
    ("G and VT", ON_DEMAND): _G_OD,
    ("G and VT", SPOT): _G_SPOT,
    ("P", ON_DEMAND): _P_OD,
    ("P", SPOT): _P_SPOT,
    ("P5", ON_DEMAND): _P_OD,  # P5 on-demand counts against the shared P quota
    ("P5", SPOT): _P5_SPOT,
}
"""(family group, capacity type) -> EC2 vCPU quota."""

_QUOTA_FALLBACKS: dict[str, QuotaCode] = {_P5_SPOT.code: _P_SPOT}
"""Quota to read when a code does not exist at all (neither applied nor default)."""

_AUTH_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
    }
)

_PERMISSIONS_HINT = (
    "pre-flight needs valid AWS credentials with ec2:DescribeAvailabilityZones, "
    "ec2:DescribeInstanceTypeOfferings, servicequotas:GetServiceQuota and "
    "servicequotas:GetAWSDefaultServiceQuota"
)


def family_group(family: str) -> str | None:
    """The EC2 vCPU quota group of an instance family (``"g5"`` -> ``"G and VT"``), None if unmapped.

    Groups: ``"Standard"`` (A, C, D, H, I, M, R, T, Z), ``"G and VT"``, ``"P"`` and
    ``"P5"`` (p5, p5e, p5en: own spot quota). Inf, Trn, DL, F, X, U, HPC and Mac
    have their own quotas that the platform does not use; they return None.
    """
    match = re.match(r"[a-z]+", family.lower())
    letters = match.group(0) if match else ""
    if letters == "p":
        return "P5" if family.lower().startswith("p5") else "P"
    if letters in ("g", "vt"):
        return "G and VT"
    if letters in ("inf", "trn", "dl", "hpc", "mac"):
        return None
    if letters and letters[0] in "acdhimrtz":
        return "Standard"
    return None


def first_azs(zone_names: Iterable[str], az_count: int) -> list[str]:
    """The first ``az_count`` zone names in name order (the network layer's rule)."""
    return sorted(zone_names)[:az_count]


@dataclass(frozen=True)
class PoolDemand:
    """What one node pool may ask EC2 for."""

    name: str
    """Pool name, used in messages."""
    instance_types: list[str]
    """Instance types the pool may launch (must be listed in platform/instances.yaml)."""
    capacity_types: list[str]
    """Subset of ``"on-demand"`` and ``"spot"``."""
    gpu_limit: int
    """The pool's ``nvidia.com/gpu`` limit. 0 for CPU-only pools."""
    vcpu_limit: int | None = None
    """The pool's ``cpu`` limit, if any. Caps the vCPU need; required to check CPU-only types.
    Default None: GPU types are checked through ``gpu_limit`` only, CPU types not at all."""


@dataclass(frozen=True)
class QuotaCheck:
    """vCPUs a pool needs from one quota, against what the account has."""

    family_group: str
    """``"Standard"``, ``"G and VT"``, ``"P"`` or ``"P5"`` (for shared quotas: the first group)."""
    capacity_type: str
    quota_code: str
    quota_name: str
    needed_vcpus: int
    available_vcpus: float | None
    """The quota value; None if it could not be read."""
    source: str
    """``"applied"``, ``"default"`` (AWS default, no applied value) or ``"unavailable"``."""
    basis: str
    """How ``needed_vcpus`` was derived, e.g. ``"gpu_limit 16 on p5.48xlarge: 2 x 192 vCPUs"``."""

    @property
    def ok(self) -> bool:
        """True if the quota was read and covers the need."""
        return self.available_vcpus is not None and self.needed_vcpus <= self.available_vcpus


@dataclass
class PoolReport:
    """Pre-flight result for one pool."""

    name: str
    offerings: dict[str, list[str]] = field(default_factory=dict)
    """Instance type -> the selected AZs where EC2 offers it (empty list: offered in none)."""
    quotas: list[QuotaCheck] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if the pool has no failures (warnings allowed)."""
        return not self.failures


@dataclass
class PreflightReport:
    """Pre-flight result for all pools."""

    region: str | None
    availability_zones: list[str] = field(default_factory=list)
    pools: list[PoolReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Findings that span pools (e.g. pools that only together exceed a quota)."""
    failures: list[str] = field(default_factory=list)
    """Findings that stop the whole check (credentials, permissions, region, AZs)."""

    @property
    def ok(self) -> bool:
        """True if neither the run nor any pool has failures."""
        return not self.failures and all(p.ok for p in self.pools)


# --------------------------------------------------------------------------- AWS access


class _AwsError(Exception):
    """An AWS call failed; the message is ready for the report."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Unknown")
        text = f"{code}: {err.get('Message', '')}".rstrip(": ")
        if code in _AUTH_ERROR_CODES:
            text += f" ({_PERMISSIONS_HINT})"
        return text
    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials found ({_PERMISSIONS_HINT})"
    return f"{type(exc).__name__}: {exc}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client(session: boto3.Session, clients: Mapping[str, Any] | None, service: str) -> Any:
    if clients and service in clients:
        return clients[service]
    return session.client(service)  # type: ignore[call-overload]


def _zone_names(ec2: Any) -> list[str]:
    try:
        zones = ec2.describe_availability_zones()["AvailabilityZones"]
    except (ClientError, BotoCoreError) as exc:
        raise _AwsError(f"cannot list availability zones: {_describe(exc)}") from exc
    return sorted(
        z["ZoneName"]
        for z in zones
        if z.get("ZoneType", "availability-zone") == "availability-zone" and z.get("State", "available") == "available"
    )


def _offerings(ec2: Any, instance_types: Sequence[str], azs: Sequence[str]) -> dict[str, set[str]]:
    offered: dict[str, set[str]] = {t: set() for t in instance_types}
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    try:
        for start in range(0, len(instance_types), 100):  # keep filter value lists short
            chunk = list(instance_types[start : start + 100])
            pages = paginator.paginate(
                LocationType="availability-zone",
                Filters=[
                    {"Name": "instance-type", "Values": chunk},
                    {"Name": "location", "Values": list(azs)},
                ],
            )
            for page in pages:
                for offer in page.get("InstanceTypeOfferings", []):
                    if offer["InstanceType"] in offered and offer["Location"] in azs:
                        offered[offer["InstanceType"]].add(offer["Location"])
    except (ClientError, BotoCoreError) as exc:
        raise _AwsError(f"cannot read instance type offerings: {_describe(exc)}") from exc
    return offered


@dataclass(frozen=True)
class _QuotaValue:
    quota: QuotaCode
    value: float | None
    source: str  # applied | default | unavailable
    note: str | None = None


def _read_quota(sq: Any, quota: QuotaCode) -> _QuotaValue:
    """Applied value, else the AWS default, else (code unknown) None; errors become notes."""
    try:
        resp = sq.get_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
        return _QuotaValue(quota, float(resp["Quota"]["Value"]), "applied")
    except ClientError as exc:
        if _error_code(exc) != "NoSuchResourceException":
            return _QuotaValue(quota, None, "unavailable", _describe(exc))
    except BotoCoreError as exc:
        return _QuotaValue(quota, None, "unavailable", _describe(exc))
    try:
        resp = sq.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
        return _QuotaValue(quota, float(resp["Quota"]["Value"]), "default")
    except ClientError as exc:
        if _error_code(exc) == "NoSuchResourceException":
            return _QuotaValue(quota, None, "unavailable", f"quota {quota.code} does not exist in this region")
        return _QuotaValue(quota, None, "unavailable", _describe(exc))
    except BotoCoreError as exc:
        return _QuotaValue(quota, None, "unavailable", _describe(exc))


# --------------------------------------------------------------------------- the check


@dataclass
class _Need:
    group: str
    capacity_type: str
    quota: QuotaCode
    vcpus: int
    basis: str


def _pool_needs(pool: PoolDemand, facts: list[InstanceFacts], report: PoolReport) -> list[_Need]:
    """vCPU need per (capacity type, quota) for one pool; adds warnings for what it cannot check."""
    # group -> (vcpus, basis) with the worst instance type of that group
    by_group: dict[str, tuple[int, str]] = {}
    for f in facts:
        group = family_group(f.family)
        if group is None:
            report.warnings.append(
                f"pool {pool.name!r}: no EC2 vCPU quota mapping for family {f.family!r} ({f.instance_type}); quota not checked"
            )
            continue
        if f.gpus > 0:
            vcpus = math.ceil(pool.gpu_limit / f.gpus) * f.vcpu
            basis = f"gpu_limit {pool.gpu_limit} on {f.instance_type}: {math.ceil(pool.gpu_limit / f.gpus)} x {f.vcpu} vCPUs"
            if pool.vcpu_limit is not None and pool.vcpu_limit < vcpus:
                vcpus, basis = pool.vcpu_limit, f"vcpu_limit {pool.vcpu_limit}"
        elif pool.vcpu_limit is not None:
            vcpus, basis = pool.vcpu_limit, f"vcpu_limit {pool.vcpu_limit}"
        else:
            report.warnings.append(
                f"pool {pool.name!r}: {f.instance_type} has no GPUs and the pool sets no vcpu_limit; "
                f"its {group} vCPU quota is not checked"
            )
            continue
        if vcpus <= 0:  # limit 0: the pool can never launch this type
            continue
        if group not in by_group or vcpus > by_group[group][0]:
            by_group[group] = (vcpus, basis)

    needs: dict[tuple[str, str], _Need] = {}
    for capacity_type in pool.capacity_types:
        for group in sorted(by_group):
            vcpus, basis = by_group[group]
            quota = EC2_VCPU_QUOTAS[(group, capacity_type)]
            key = (capacity_type, quota.code)
            if key not in needs or vcpus > needs[key].vcpus:  # groups sharing a quota: worst one
                needs[key] = _Need(group, capacity_type, quota, vcpus, basis)
    return list(needs.values())


def _validate_pool(pool: PoolDemand, report: PoolReport) -> None:
    if not pool.instance_types:
        report.failures.append(f"pool {pool.name!r}: lists no instance types")
    bad = [c for c in pool.capacity_types if c not in CAPACITY_TYPES]
    if bad or not pool.capacity_types:
        report.failures.append(
            f"pool {pool.name!r}: capacity_types {list(pool.capacity_types)} must be a non-empty subset of {list(CAPACITY_TYPES)}"
        )
    if pool.gpu_limit < 0 or (pool.vcpu_limit is not None and pool.vcpu_limit < 0):
        report.failures.append(f"pool {pool.name!r}: gpu_limit and vcpu_limit must not be negative")


def _check_offerings(pool: PoolDemand, azs: list[str], offered: dict[str, set[str]], report: PoolReport) -> None:
    for t in pool.instance_types:
        where = [az for az in azs if az in offered.get(t, set())]
        report.offerings[t] = where
        missing = [az for az in azs if az not in where]
        if not where:
            report.failures.append(
                f"pool {pool.name!r}: {t} is not offered in any selected AZ ({', '.join(azs)})"
            )
        elif missing:
            report.warnings.append(
                f"pool {pool.name!r}: {t} is not offered in {', '.join(missing)}; "
                f"nodes of this type can only start in {', '.join(where)}"
            )
    if pool.instance_types:
        for az in azs:
            if not any(az in report.offerings[t] for t in pool.instance_types):
                report.warnings.append(f"pool {pool.name!r}: none of its instance types is offered in {az}")


def run_preflight(
    session: boto3.Session,
    pools: Sequence[PoolDemand],
    *,
    az_count: int | None = None,
    availability_zones: Sequence[str] | None = None,
    clients: Mapping[str, Any] | None = None,
) -> PreflightReport:
    """Check offerings and vCPU quotas for ``pools`` in the session's region.

    AZs: ``availability_zones`` if given (each must exist in the region), else the
    first ``az_count`` zone names in name order (the same zones the network layer
    picks), else every available zone. ``clients`` maps a service name (``"ec2"``,
    ``"service-quotas"``) to a ready client, for tests; others come from
    ``session.client``. Never raises for AWS errors: they become report failures.
    """
    if az_count is not None and availability_zones is not None:
        raise ValueError("pass either az_count or availability_zones, not both")
    if az_count is not None and az_count < 1:
        raise ValueError(f"az_count must be at least 1, got {az_count}")

    region = session.region_name
    report = PreflightReport(region=region)
    if not region:
        report.failures.append("no AWS region configured (set AWS_REGION or the profile's region)")
        return report

    try:
        ec2 = _client(session, clients, "ec2")
        zones = _zone_names(ec2)
        if availability_zones is not None:
            unknown = [az for az in availability_zones if az not in zones]
            if unknown:
                report.failures.append(f"AZs {unknown} do not exist (or are not available) in {region}: {zones}")
                return report
            azs = list(availability_zones)
        elif az_count is not None:
            if az_count > len(zones):
                report.failures.append(f"az_count {az_count} but {region} has only {len(zones)} AZs: {zones}")
                return report
            azs = first_azs(zones, az_count)
        else:
            azs = zones
        report.availability_zones = azs
        all_types = sorted({t for p in pools for t in p.instance_types})
        offered = _offerings(ec2, all_types, azs)
        sq = _client(session, clients, "service-quotas")
    except _AwsError as exc:
        report.failures.append(f"{region}: {exc}")
        return report
    except (ClientError, BotoCoreError) as exc:  # client creation (e.g. no region / bad profile)
        report.failures.append(f"{region}: {_describe(exc)}")
        return report

    # Pass 1: offerings and needs per pool.
    pool_needs: list[list[_Need]] = []
    for pool in pools:
        pr = PoolReport(name=pool.name)
        report.pools.append(pr)
        _validate_pool(pool, pr)
        _check_offerings(pool, azs, offered, pr)
        facts: list[InstanceFacts] = []
        for t in pool.instance_types:
            f = instance_facts(t)
            if f is None:
                pr.failures.append(
                    f"pool {pool.name!r}: unknown instance type {t!r} (not in platform/instances.yaml); "
                    "add its facts there or choose a listed type"
                )
            else:
                facts.append(f)
        valid_caps = [c for c in pool.capacity_types if c in CAPACITY_TYPES]
        checked = PoolDemand(pool.name, pool.instance_types, valid_caps, max(pool.gpu_limit, 0), pool.vcpu_limit)
        if pool.gpu_limit == 0 and any(f.gpus > 0 for f in facts):
            pr.warnings.append(f"pool {pool.name!r}: gpu_limit is 0, so it can never launch a GPU node")
        pool_needs.append(_pool_needs(checked, facts, pr))

    # Pass 2: read every quota once, in code order (deterministic for tests).
    values: dict[str, _QuotaValue] = {}
    for code in sorted({n.quota.code for needs in pool_needs for n in needs}):
        quota = next(n.quota for needs in pool_needs for n in needs if n.quota.code == code)
        value = _read_quota(sq, quota)
        fallback = _QUOTA_FALLBACKS.get(code)
        if value.value is None and fallback is not None and value.note and "does not exist" in value.note:
            alt = values.get(fallback.code) or _read_quota(sq, fallback)
            values[fallback.code] = alt
            value = _QuotaValue(
                alt.quota, alt.value, alt.source, f"{code} does not exist here; using {fallback.code} ({fallback.name})"
            )
        values[code] = value
        if value.note and value.value is not None:
            report.warnings.append(f"{region}: {value.note}")

    # Pass 3: compare, per pool and summed over pools.
    totals: dict[str, int] = {}
    any_pool_short: dict[str, bool] = {}
    for pool, pr, needs in zip(pools, report.pools, pool_needs, strict=True):
        for need in needs:
            qv = values[need.quota.code]
            check = QuotaCheck(
                family_group=need.group,
                capacity_type=need.capacity_type,
                quota_code=qv.quota.code,
                quota_name=qv.quota.name,
                needed_vcpus=need.vcpus,
                available_vcpus=qv.value,
                source=qv.source,
                basis=need.basis,
            )
            pr.quotas.append(check)
            totals[check.quota_code] = totals.get(check.quota_code, 0) + need.vcpus
            if qv.value is None:
                pr.failures.append(
                    f"pool {pool.name!r}: cannot read {need.group} {need.capacity_type} vCPU quota "
                    f"{need.quota.code} ({need.quota.name}): {qv.note}"
                )
            elif not check.ok:
                any_pool_short[check.quota_code] = True
                pr.failures.append(
                    f"pool {pool.name!r}: {need.group} {need.capacity_type} vCPU quota too low: needs "
                    f"{need.vcpus} vCPUs ({need.basis}) but {check.quota_code} ({check.quota_name}) is "
                    f"{qv.value:g} in {region}; request an increase in Service Quotas or lower the pool's limit"
                )
    for code, total in sorted(totals.items()):
        qv = values[code]
        if qv.value is not None and total > qv.value and not any_pool_short.get(code):
            report.warnings.append(
                f"pools together need {total} vCPUs from {code} ({qv.quota.name}) but it is {qv.value:g} "
                f"in {region}; they cannot all reach their limits at once"
            )
    return report


def format_report(report: PreflightReport) -> str:
    """Human-readable multi-line summary of ``report``."""
    azs = report.availability_zones
    lines = [f"Capacity pre-flight: region {report.region or '?'}, AZs {', '.join(azs) or '-'}"]
    lines += [f"FAIL  {msg}" for msg in report.failures]
    for pr in report.pools:
        lines.append("")
        lines.append(f"Pool {pr.name}: {'OK' if pr.ok else 'FAILED'}")
        if pr.offerings:
            width = max(len(t) for t in pr.offerings)
            lines.append("  offered in:")
            for t, where in pr.offerings.items():
                cells = "  ".join(az if az in where else "-" * len(az) for az in azs)
                lines.append(f"    {t:<{width}}  {cells}")
        if pr.quotas:
            lines.append("  vCPU quotas (needed / quota):")
            for q in pr.quotas:
                avail = "?" if q.available_vcpus is None else f"{q.available_vcpus:g}"
                status = "ok" if q.ok else "SHORT" if q.available_vcpus is not None else "UNREAD"
                lines.append(
                    f"    {q.family_group} {q.capacity_type:<9} {q.quota_code}  {q.needed_vcpus} / {avail} "
                    f"({q.source})  {status}  [{q.basis}]"
                )
        lines += [f"  FAIL  {msg}" for msg in pr.failures]
        lines += [f"  WARN  {msg}" for msg in pr.warnings]
    if report.warnings:
        lines.append("")
        lines += [f"WARN  {msg}" for msg in report.warnings]
    n_fail = len(report.failures) + sum(len(p.failures) for p in report.pools)
    n_warn = len(report.warnings) + sum(len(p.warnings) for p in report.pools)
    lines.append("")
    lines.append(f"Result: {'OK' if report.ok else 'FAILED'} ({n_fail} failures, {n_warn} warnings)")
    return "\n".join(lines)
