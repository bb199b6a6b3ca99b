"""`python -m plan STACK --preflight`: the capacity pre-flight with the caller's AWS credentials.

For every pool of the stack (GPU pools at their GPU limit, the CPU pool at its cpu limit): are its
instance types offered in the cluster's AZs, and do the account's on-demand/spot vCPU quotas cover
it? Read-only. Prints the per-pool report; exit 1 when a pool cannot be satisfied, else 0."""

from __future__ import annotations

import sys
from typing import Any

from components.config import PlatformConfig


def run(config: PlatformConfig, stack: Any, *, clients: dict[str, Any] | None = None) -> int:
    """`stack` is the plan's StackFile (its `aws:region` is the region checked). `clients` injects
    ready boto3 clients (tests)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from components.karpenter import pool_demands
    from components.preflight import format_report, run_preflight

    region = (getattr(stack, "config", None) or {}).get("aws:region")
    if not region:
        print(f"error: {getattr(stack, 'path', stack)}: no aws:region set; the pre-flight checks one region",
              file=sys.stderr)
        return 1
    try:
        session = boto3.Session(region_name=str(region))
        report = run_preflight(session, pool_demands(config.gpu_pools, config.cpu_pool),
                               az_count=config.network.availability_zones, clients=clients)
    except (BotoCoreError, ClientError) as err:  # e.g. a named profile that does not exist
        print(f"error: AWS session for {region}: {err}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0 if report.ok else 1
