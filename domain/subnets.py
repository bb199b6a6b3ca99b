"""The VPC's subnet plan: which CIDR each subnet gets. One home for the carving, used by the network
config's validation (does it fit?) and the network layer (the subnets it creates)."""

from __future__ import annotations

import ipaddress
from typing import NamedTuple


class SubnetPlan(NamedTuple):
    private: list[str]        # one per AZ: nodes, pods, internal load balancers
    public: list[str]         # one per AZ: NAT gateways, internet-facing load balancers
    control_plane: list[str]  # one per AZ: only the EKS control plane's network interfaces


class SubnetsDoNotFitError(ValueError):
    """Some subnets of the plan fall outside the VPC."""


def _carve(cidr: ipaddress.IPv4Network, cursor: int, blocks: list[tuple[str, int, int]], kind: str,
           out: dict[tuple[str, int], str]) -> int:
    for name, i, prefix in blocks:
        size = 2 ** (32 - prefix)
        cursor = -(-cursor // size) * size  # align up
        if cursor + size > int(cidr.broadcast_address) + 1:
            raise SubnetsDoNotFitError(f"the {kind} subnets (/{prefix}) do not fit {cidr} after the blocks before them")
        out[(name, i)] = str(ipaddress.IPv4Network((cursor, prefix)))
        cursor += size
    return cursor


def plan_subnets(cidr: ipaddress.IPv4Network, azs: int, private_prefix: int, public_prefix: int,
                 control_plane_prefix: int) -> SubnetPlan:
    """One private and one public subnet per AZ, largest blocks first so every block stays aligned,
    then one control-plane subnet per AZ AFTER them: adding the control-plane subnets to an existing
    VPC leaves every existing subnet's CIDR where it was."""
    out: dict[tuple[str, int], str] = {}
    first = sorted([("private", i, private_prefix) for i in range(azs)] +
                   [("public", i, public_prefix) for i in range(azs)], key=lambda b: b[2])
    cursor = _carve(cidr, int(cidr.network_address), first, "private/public", out)
    _carve(cidr, cursor, [("control-plane", i, control_plane_prefix) for i in range(azs)], "control-plane", out)
    return SubnetPlan([out[("private", i)] for i in range(azs)], [out[("public", i)] for i in range(azs)],
                      [out[("control-plane", i)] for i in range(azs)])
