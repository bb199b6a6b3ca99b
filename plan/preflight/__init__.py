"""The capacity pre-flight, with the caller's AWS credentials, before anything is built.

- `python -m plan STACK --preflight`: `run` prints the per-pool report; exit 1 when a pool cannot
  be satisfied, else 0.
- `cluster.preflight: true`: `__main__.py` calls `stop_unless_capacity` before it builds the
  platform; each problem is a Pulumi error and the run stops with nothing declared.

Every NodePool the platform declares is checked (GPU pools at their GPU limit, node-isolated
tenants' pools at the tenant's GPU quota, the CPU pool at its cpu limit): its types offered in the
cluster's AZs, the on-demand/spot vCPU quotas, its capacity reservations (plan/preflight/check.py).
Read-only; nothing here runs under the mock engine (offline plan, tests)."""

from __future__ import annotations

import sys
from typing import Any

import pulumi
from botocore.exceptions import BotoCoreError, ClientError
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockMonitor

from components.agentic_platform import tenant_placements
from components.config import PlatformConfig
from components.node_pools import pool_definitions
from plan.preflight.check import PoolDemand, PreflightReport, run_preflight
from plan.preflight.report import format_report

__all__ = ["PoolDemand", "format_report", "pool_demands", "run", "run_preflight", "stop_unless_capacity"]


def pool_demands(config: PlatformConfig) -> list[PoolDemand]:
    """What the pre-flight checks: every NodePool of the stack at its limits, a GPU pool's warm nodes
    (its static NodePool, gpuPools[].warmNodes) on top."""
    return [PoolDemand(pool.name, list(pool.instance_types), list(pool.capacity_types), gpu_limit or 0,
                       pool.cpu_limit, [t.selector_term() for t in pool.capacity_reservations],
                       getattr(pool, "warm_nodes", 0))
            for pool, gpu_limit, _labels, _taints in pool_definitions(config.gpu_pools, config.cpu_pool,
                                                                        tenant_placements(config))]


def check(config: PlatformConfig, region: str, clients: dict[str, Any] | None = None) -> PreflightReport:
    import boto3  # here, not at the top: every offline plan imports this module, boto3 costs 0.1 s

    session = boto3.Session(region_name=region)
    return run_preflight(session, pool_demands(config), az_count=config.network.availability_zones, clients=clients)


def run(config: PlatformConfig, stack: Any, *, clients: dict[str, Any] | None = None) -> int:
    """`stack` is the plan's StackFile (its `aws:region` is the region checked). `clients` injects
    ready boto3 clients (tests: a recorded account)."""
    region = (getattr(stack, "config", None) or {}).get("aws:region")
    if not region:
        print(f"error: {getattr(stack, 'path', stack)}: no aws:region set; the pre-flight checks one region",
              file=sys.stderr)
        return 1
    try:
        report = check(config, str(region), clients)
    except (BotoCoreError, ClientError) as err:  # e.g. a named profile that does not exist
        print(f"error: AWS session for {region}: {err}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0 if report.ok else 1


def under_mocks() -> bool:
    """True under Pulumi's mock monitor (offline plan, unit tests): nothing there may reach AWS."""
    return isinstance(settings.get_monitor(), MockMonitor)


def stop_unless_capacity(config: PlatformConfig, region: str | None) -> None:
    """`cluster.preflight: true` in `pulumi preview/up`: the pre-flight before the platform is
    built. Each problem becomes a Pulumi error; any problem stops the program."""
    if not config.cluster.preflight or under_mocks():
        return
    try:
        report = check(config, region or "")
    except (BotoCoreError, ClientError) as err:
        raise pulumi.RunError(f"capacity pre-flight: AWS session for {region}: {err}") from None
    if report.ok:
        pulumi.log.info(format_report(report))
        return
    for msg in report.failures + [f for p in report.pools for f in p.failures]:
        pulumi.log.error(f"capacity pre-flight: {msg}")
    raise pulumi.RunError("capacity pre-flight failed (cluster.preflight is on); see the errors above")
