"""The namespace matrix: on which ports some pod of one namespace may reach some pod of another."""

from __future__ import annotations

from typing import Any

from plan.reachability.cluster import Cluster
from plan.reachability.model import Pod
from plan.reachability.sets import ANY, PortSet


def namespace_matrix(cluster: Cluster, pods: list[Pod] | None = None) -> list[dict[str, Any]]:
    """[{"from": ns, "to": ns, "ports": [...]}]: the ports on which some pod of one namespace may
    reach some pod of the other (the `may` reading), ports ["any"] when every port is open."""
    pods = cluster.pods if pods is None else pods
    by_ns: dict[str, list[Pod]] = {}
    for p in pods:
        by_ns.setdefault(p.namespace, []).append(p)
    names = sorted(by_ns)
    # Which namespaces each pod may reach (egress) and be reached from (ingress): a pair of pods
    # outside each other's is never judged (its ports are empty), which keeps the matrix linear in
    # pods when namespaces isolate each other (tenants) instead of all pairs of pods.
    reaches = {id(p): cluster.peer_namespaces(p, "Egress", names) for p in pods}
    reached_from = {id(p): cluster.peer_namespaces(p, "Ingress", names) for p in pods}
    out = []
    for src in names:
        for dst in names:
            ports = PortSet()
            sources = [a for a in by_ns[src] if _within(dst, reaches[id(a)])]
            targets = [b for b in by_ns[dst] if _within(src, reached_from[id(b)])] if sources else []
            for a in sources:
                for b in targets:
                    if ports.is_everything():
                        break
                    ports = ports | cluster.reachable_ports(a, b)
            if ports:
                out.append({"from": src, "to": dst, "ports": ports.labels()})
    return out


def _within(namespace: str, namespaces: set[str] | None) -> bool:
    return namespaces is None or namespace in namespaces


def matrix_lines(reach: list[dict[str, Any]]) -> list[str]:
    """A small matrix (rows: from, columns: to; '*' any port, '+' some ports, '.' none), then
    the port lists of connections between different namespaces."""
    names = list(dict.fromkeys([e["from"] for e in reach] + [e["to"] for e in reach]))
    cell = {(e["from"], e["to"]): ("*" if e["ports"] == [ANY] else "+") for e in reach}
    width = max((len(n) for n in names), default=4)
    lines = ["from \\ to".ljust(width) + "  " + " ".join(f"{i:>2}" for i in range(1, len(names) + 1))]
    for i, src in enumerate(names, 1):
        lines.append(f"{src.ljust(width)}  " + " ".join(f"{cell.get((src, dst), '.'):>2}" for dst in names)
                     + f"   ({i})")
    for e in reach:
        if e["from"] != e["to"]:
            lines.append(f"{e['from']} -> {e['to']}: {', '.join(e['ports'])}")
    return lines
