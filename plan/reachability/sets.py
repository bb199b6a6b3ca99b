"""Address sets (networks, IPv4 and IPv6 apart) and port sets (ranges per protocol): what a
NetworkPolicy rule's ipBlock and ports denote."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache

PROTOCOLS = ("TCP", "UDP", "SCTP")
ANY = "any"
MAX_PORT = 65535
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class IPSet:
    """A set of addresses as non-overlapping networks (IPv4 and IPv6 kept apart)."""

    __slots__ = ("nets",)

    def __init__(self, nets: Iterable[Net] = ()):
        by_version: dict[int, list[Net]] = {}
        for n in nets:
            by_version.setdefault(n.version, []).append(n)
        self.nets: tuple[Net, ...] = tuple(m for v in sorted(by_version)
                                           for m in ipaddress.collapse_addresses(by_version[v]))  # type: ignore[type-var]

    @classmethod
    def of(cls, cidr: str, excepts: Iterable[str] = ()) -> IPSet:
        return _ipset_of(cidr, tuple(excepts))

    def minus(self, other: IPSet) -> IPSet:
        out = list(self.nets)
        for cut in other.nets:
            nxt: list[Net] = []
            for n in out:
                if n.version != cut.version or not n.overlaps(cut):
                    nxt.append(n)
                elif n.subnet_of(cut):  # type: ignore[arg-type]
                    continue
                else:                   # cut is inside n
                    nxt.extend(n.address_exclude(cut))  # type: ignore[arg-type]
            out = nxt
        return IPSet(out)

    def __or__(self, other: IPSet) -> IPSet:
        return IPSet((*self.nets, *other.nets))

    def __bool__(self) -> bool:
        return bool(self.nets)

    def subset_of(self, other: IPSet) -> bool:
        return not self.minus(other)

    def overlaps(self, other: IPSet) -> bool:
        return any(a.version == b.version and a.overlaps(b) for a in self.nets for b in other.nets)

    def __str__(self) -> str:
        return ",".join(str(n) for n in self.nets) or "(none)"


@cache
def _ipset_of(cidr: str, excepts: tuple[str, ...]) -> IPSet:
    """`cidr` minus `excepts`, once per distinct ipBlock (an IPSet is immutable: callers share it)."""
    return IPSet([ipaddress.ip_network(cidr, strict=False)]).minus(
        IPSet(ipaddress.ip_network(e, strict=False) for e in excepts))


@cache
def union_of(blocks: tuple[tuple[str, tuple[str, ...]], ...]) -> IPSet:
    """The union of ipBlocks given as (cidr, excepts), once per distinct tuple of them (shared, as above)."""
    out = IPSet()
    for cidr, excepts in blocks:
        out = out | _ipset_of(cidr, excepts)
    return out


PRIVATE = IPSet.of("10.0.0.0/8") | IPSet.of("172.16.0.0/12") | IPSet.of("192.168.0.0/16")
PUBLIC = IPSet.of("0.0.0.0/0").minus(PRIVATE)
PUBLIC_DESC = "0.0.0.0/0 except 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


# ------------------------------------------------------------------------------------ port sets

class PortSet:
    """Ports per protocol as merged closed ranges."""

    __slots__ = ("ranges",)

    def __init__(self, items: Iterable[tuple[str, int, int]] = ()):
        by: dict[str, list[tuple[int, int]]] = {}
        for proto, lo, hi in items:
            by.setdefault(proto, []).append((lo, hi))
        self.ranges: dict[str, tuple[tuple[int, int], ...]] = {}
        for proto, rs in by.items():
            merged: list[tuple[int, int]] = []
            for lo, hi in sorted(rs):
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
                else:
                    merged.append((lo, hi))
            self.ranges[proto] = tuple(merged)

    @classmethod
    def everything(cls) -> PortSet:
        return cls((p, 1, MAX_PORT) for p in PROTOCOLS)

    def items(self) -> list[tuple[str, int, int]]:
        return [(p, lo, hi) for p, rs in self.ranges.items() for lo, hi in rs]

    def __or__(self, other: PortSet) -> PortSet:
        return PortSet(self.items() + other.items())

    def __and__(self, other: PortSet) -> PortSet:
        out = []
        for proto, rs in self.ranges.items():
            for lo, hi in rs:
                for lo2, hi2 in other.ranges.get(proto, ()):
                    if max(lo, lo2) <= min(hi, hi2):
                        out.append((proto, max(lo, lo2), min(hi, hi2)))
        return PortSet(out)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __contains__(self, item: tuple[int, str]) -> bool:
        port, proto = item
        return any(lo <= port <= hi for lo, hi in self.ranges.get(proto, ()))

    def is_everything(self) -> bool:
        return all(self.ranges.get(p) == ((1, MAX_PORT),) for p in PROTOCOLS)

    def labels(self) -> list[str]:
        if self.is_everything():
            return [ANY]
        out = []
        for proto in PROTOCOLS:
            for lo, hi in self.ranges.get(proto, ()):
                if (lo, hi) == (1, MAX_PORT):
                    out.append(f"any/{proto}")
                else:
                    out.append(f"{lo}/{proto}" if lo == hi else f"{lo}-{hi}/{proto}")
        return sorted(out, key=_port_order)


def _port_order(label: str) -> tuple[int, str]:
    head = label.split("/")[0].split("-")[0]
    return (int(head) if head.isdigit() else 0, label)
