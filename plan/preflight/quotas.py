"""EC2 vCPU Service Quotas: which quota an instance family counts against, how many vCPUs a pool
can reach at its limits, and reading a quota (applied value, else the AWS default).

The vCPU rule (conservative): Karpenter never launches a node once the pool is past its
``nvidia.com/gpu`` limit, so at most ``gpu_limit`` GPUs run (plus the last node's). For each
instance type ``t`` the pool may pick, filling the limit with ``t`` alone needs
``ceil(gpu_limit / gpus(t)) * vcpu(t)`` vCPUs. The need of a quota is the maximum of that over
the pool's types that count against it: an upper bound for any mix of types. A pool's ``cpu``
limit (``vcpu_limit``) caps it; CPU-only types are checked only through ``vcpu_limit``. A GPU
pool's warm nodes (``warm_nodes``: its static NodePool, which its limits do not cover) add
``warm_nodes * vcpu(t)`` for the same type.

The quota value is compared as a whole: current usage is not subtracted (that needs CloudWatch
usage metrics), so "ok" means "fits in an otherwise empty account"."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domain.instances import InstanceFacts
from plan.preflight.aws import describe, error_code

ON_DEMAND = "on-demand"
SPOT = "spot"
QUOTA_CAPACITY_TYPES = (ON_DEMAND, SPOT)
"""Capacity types with a vCPU quota (``reserved`` capacity is already bought: no quota question)."""


@dataclass(frozen=True)
class QuotaCode:
    """One EC2 Service Quotas entry (service code ``ec2``; value in vCPUs, per region)."""

    code: str
    name: str


# EC2 vCPU quotas by (family group, capacity type). Codes checked 2026-11-25 against the EC2 User
# Guide quota pages (On-Demand and Spot quota lists) and AWS's "GPU instance quota assistant" page.
# - On-Demand, all P families (P2..P6, incl. P5/P5e/P5en) share "Running On-Demand P instances";
#   there is no separate on-demand P5 vCPU quota (L-5480EFD2 is "Running Dedicated inf Hosts").
# - Spot, P5/P5e/P5en have their own "All P5 Spot Instance Requests" (L-C4BD4855); P2/P3/P4 use
#   L-7212CCBC. If L-C4BD4855 does not exist in the region, P5 spot falls back to L-7212CCBC.
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

QUOTA_FALLBACKS: dict[str, QuotaCode] = {_P5_SPOT.code: _P_SPOT}
"""Quota to read when a code does not exist at all (neither applied nor default)."""


def family_group(family: str) -> str | None:
    """The EC2 vCPU quota group of an instance family (``"g5"`` -> ``"G and VT"``), None if unmapped.

    Groups: ``"Standard"`` (A, C, D, H, I, M, R, T, Z), ``"G and VT"``, ``"P"`` and ``"P5"``
    (p5, p5e, p5en: own spot quota). Inf, Trn, DL, F, X, U, HPC and Mac have their own quotas that
    the platform does not use; they return None."""
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


@dataclass(frozen=True)
class QuotaValue:
    quota: QuotaCode
    value: float | None
    source: str  # applied | default | unavailable
    note: str | None = None


def read_quota(sq: Any, quota: QuotaCode) -> QuotaValue:
    """Applied value, else the AWS default, else (code unknown) None; errors become notes."""
    try:
        resp = sq.get_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
        return QuotaValue(quota, float(resp["Quota"]["Value"]), "applied")
    except ClientError as exc:
        if error_code(exc) != "NoSuchResourceException":
            return QuotaValue(quota, None, "unavailable", describe(exc))
    except BotoCoreError as exc:
        return QuotaValue(quota, None, "unavailable", describe(exc))
    try:
        resp = sq.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=quota.code)
        return QuotaValue(quota, float(resp["Quota"]["Value"]), "default")
    except ClientError as exc:
        if error_code(exc) == "NoSuchResourceException":
            return QuotaValue(quota, None, "unavailable", f"quota {quota.code} does not exist in this region")
        return QuotaValue(quota, None, "unavailable", describe(exc))
    except BotoCoreError as exc:
        return QuotaValue(quota, None, "unavailable", describe(exc))


def read_quotas(sq: Any, quotas: list[QuotaCode]) -> tuple[dict[str, QuotaValue], list[str]]:
    """Every quota read once, in code order (deterministic for recorded tests), P5 spot falling
    back to P spot where the region has no P5 quota. Returns code -> value, and notes."""
    values: dict[str, QuotaValue] = {}
    notes: list[str] = []
    for quota in sorted({q.code: q for q in quotas}.values(), key=lambda q: q.code):
        value = read_quota(sq, quota)
        fallback = QUOTA_FALLBACKS.get(quota.code)
        if value.value is None and fallback is not None and value.note and "does not exist" in value.note:
            alt = values.get(fallback.code) or read_quota(sq, fallback)
            values[fallback.code] = alt
            value = QuotaValue(alt.quota, alt.value, alt.source,
                               f"{quota.code} does not exist here; using {fallback.code} ({fallback.name})")
        values[quota.code] = value
        if value.note and value.value is not None:
            notes.append(value.note)
    return values, notes


@dataclass
class Need:
    """vCPUs one pool may need from one quota."""

    group: str
    capacity_type: str
    quota: QuotaCode
    vcpus: int
    basis: str


def _group_need(f: InstanceFacts, gpu_limit: int, vcpu_limit: int | None) -> tuple[int, str] | None:
    if f.gpus > 0:
        nodes = math.ceil(gpu_limit / f.gpus)
        vcpus, basis = nodes * f.vcpu, f"gpu_limit {gpu_limit} on {f.instance_type}: {nodes} x {f.vcpu} vCPUs"
        if vcpu_limit is not None and vcpu_limit < vcpus:
            return vcpu_limit, f"vcpu_limit {vcpu_limit}"
        return vcpus, basis
    if vcpu_limit is not None:
        return vcpu_limit, f"vcpu_limit {vcpu_limit}"
    return None


def _with_warm(need: tuple[int, str] | None, f: InstanceFacts, warm_nodes: int) -> tuple[int, str] | None:
    """Plus the pool's warm nodes (its static NodePool, outside its limits), each as this type."""
    if not warm_nodes or need is None:
        return need
    return need[0] + warm_nodes * f.vcpu, f"{need[1]} + {warm_nodes} warm node(s) x {f.vcpu} vCPUs"


def pool_needs(name: str, facts: list[InstanceFacts], capacity_types: list[str], gpu_limit: int,
               vcpu_limit: int | None, warnings: list[str], warm_nodes: int = 0) -> list[Need]:
    """vCPU need per (capacity type, quota) for one pool; appends warnings for what it cannot check."""
    by_group: dict[str, tuple[int, str]] = {}  # group -> the worst type's (vcpus, basis)
    for f in facts:
        group = family_group(f.family)
        if group is None:
            warnings.append(f"pool {name!r}: no EC2 vCPU quota mapping for family {f.family!r} "
                            f"({f.instance_type}); quota not checked")
            continue
        need = _with_warm(_group_need(f, gpu_limit, vcpu_limit), f, warm_nodes)
        if need is None:
            warnings.append(f"pool {name!r}: {f.instance_type} has no GPUs and the pool sets no vcpu_limit; "
                            f"its {group} vCPU quota is not checked")
            continue
        if need[0] > 0 and (group not in by_group or need[0] > by_group[group][0]):
            by_group[group] = need
    needs: dict[tuple[str, str], Need] = {}
    for capacity_type in capacity_types:
        if capacity_type not in QUOTA_CAPACITY_TYPES:
            continue
        for group in sorted(by_group):
            vcpus, basis = by_group[group]
            quota = EC2_VCPU_QUOTAS[(group, capacity_type)]
            key = (capacity_type, quota.code)
            if key not in needs or vcpus > needs[key].vcpus:  # groups sharing a quota: the worst one
                needs[key] = Need(group, capacity_type, quota, vcpus, basis)
    return list(needs.values())
