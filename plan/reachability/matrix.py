"""The namespace matrix: on which ports some pod of one namespace may reach some pod of another."""

from __future__ import annotations

from typing import Any

from plan.reachability.cluster import Cluster
from plan.reachability.model import Pod, Policy, as_int
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
    memo = _PairPorts(cluster, names)
    reaches = {id(p): memo.peer_namespaces(p, "Egress") for p in pods}
    reached_from = {id(p): memo.peer_namespaces(p, "Ingress") for p in pods}
    out = []
    for src in names:
        for dst in names:
            found: dict[int, PortSet] = {}   # the distinct port sets of the pairs (memo's objects, by id)
            sources = [a for a in by_ns[src] if _within(dst, reaches[id(a)])]
            targets = [b for b in by_ns[dst] if _within(src, reached_from[id(b)])] if sources else []
            for a in sources:
                for b in targets:
                    ports = memo.reachable_ports(a, b)
                    found[id(ports)] = ports
                    if ports.is_everything():
                        break
            ports = PortSet([x for s in found.values() for x in s.items()])
            if ports:
                out.append({"from": src, "to": dst, "ports": ports.labels()})
    return out


class _PairPorts:
    """Cluster.reachable_ports for the pairs of one matrix, each policy judged once per kind of peer
    rather than once per pair. Valid because a policy's ports towards a peer are a function of
    (policy, direction, peer, destination) alone (Cluster.policy_ports), through no more than
    `_Selection.peer_key` and `_Selection.dst_key` name: the peer's namespace (its labels) and
    hostNetwork (its addresses), its own identity when a podSelector reads its labels or it is the
    destination of a named port; the destination's identity when it resolves a named port (for
    ingress the selected pod). Pods are keyed by identity: they are the matrix's, alive while it runs,
    and every cached object is held here, so no id is reused while this lives."""

    def __init__(self, cluster: Cluster, names: list[str]):
        self.cluster, self.names = cluster, names
        self._selection: dict[tuple[int, str], _Selection] = {}      # (pod, kind) -> the policies isolating it
        self._selections: dict[tuple[str, tuple[int, ...]], _Selection] = {}   # one per distinct set of policies
        self._peer_namespaces: dict[tuple[int, str], set[str] | None] = {}
        self._ranges: dict[tuple[int, str, Any, int], tuple[tuple[str, int, int], ...]] = {}
        self._sides: dict[tuple[int, Any, int], PortSet] = {}
        self._port_sets: dict[tuple[int, ...], PortSet] = {}       # by the policies' ranges (objects of _ranges)
        self._pairs: dict[tuple[int, int], PortSet] = {}
        self._everything = PortSet.everything()

    def reachable_ports(self, src: Pod, dst: Pod) -> PortSet:
        out = self._side(src, dst, "Egress")
        if not out:
            return out
        ingress = self._side(dst, src, "Ingress")
        key = (id(out), id(ingress))
        if key not in self._pairs:
            self._pairs[key] = out & ingress
        return self._pairs[key]

    def peer_namespaces(self, pod: Pod, kind: str) -> set[str] | None:
        """Cluster.peer_namespaces(pod, kind, names), each policy's namespaces found once."""
        policies = self._selected(pod, kind).policies
        if not policies:
            return None
        out: set[str] = set()
        for pol in policies:
            key = (id(pol), kind)
            if key not in self._peer_namespaces:
                self._peer_namespaces[key] = self.cluster.policy_peer_namespaces(pol, kind, self.names)
            if self._peer_namespaces[key] is None:
                return None
            out |= self._peer_namespaces[key]
        return out

    def _side(self, subject: Pod, other: Pod, kind: str) -> PortSet:
        """Cluster._direction_ports(subject, other, kind)."""
        sel = self._selected(subject, kind)
        if not sel.policies:
            return self._everything
        peer, dst_key = sel.peer_key(other), sel.dst_key(subject)
        key = (id(sel), peer, dst_key)
        if key not in self._sides:
            dst = other if kind == "Egress" else subject
            parts = []
            for pol in sel.policies:
                pkey = (id(pol), kind, peer, dst_key)
                if pkey not in self._ranges:
                    self._ranges[pkey] = tuple(self.cluster.policy_ports(pol, kind, other, dst))
                parts.append(self._ranges[pkey])
            ids = tuple(id(p) for p in parts)
            if ids not in self._port_sets:
                self._port_sets[ids] = PortSet([x for p in parts for x in p])
            self._sides[key] = self._port_sets[ids]
        return self._sides[key]

    def _selected(self, pod: Pod, kind: str) -> _Selection:
        key = (id(pod), kind)
        if key not in self._selection:
            policies = tuple(self.cluster.selecting(pod, kind))
            group = (kind, tuple(id(p) for p in policies))
            if group not in self._selections:
                self._selections[group] = _Selection(kind, policies)
            self._selection[key] = self._selections[group]
        return self._selection[key]


class _Selection:
    """The policies that isolate a pod in one direction (shared by the pods they all select), and what
    of a peer and of the destination their ports depend on (Cluster.policy_ports, _selector_peer,
    _ports_entry_set)."""

    def __init__(self, kind: str, policies: tuple[Policy, ...]):
        self.kind, self.policies = kind, policies
        key = "to" if kind == "Egress" else "from"
        rules = [rule for pol in policies for rule in pol.rules(kind)]
        # a port by name: resolved against the destination's container ports (and its being a probe)
        self.names_ports = any(e.get("port") is not None and as_int(e.get("port")) is None
                               for rule in rules for e in rule.get("ports") or [])
        # a peer's podSelector that not every label set satisfies: the peer's labels (and its being
        # a probe, which every selector matches) decide; None and {} match every pod alike
        self.reads_labels = any(_reads_labels(peer.get("podSelector")) for rule in rules
                                for peer in rule.get(key) or [] if not peer.get("ipBlock"))

    def peer_key(self, other: Pod) -> Any:
        """What of the peer the ports depend on: its namespace (a namespaceSelector reads its labels,
        a bare podSelector compares its name) and hostNetwork (ipBlocks: its addresses, Cluster.ips_of);
        the pod itself when a podSelector reads its labels or it resolves a named port (egress)."""
        if self.reads_labels or (self.names_ports and self.kind == "Egress"):
            return id(other)
        return (other.namespace, other.host_network)

    def dst_key(self, subject: Pod) -> int:
        """The selected pod, for ingress ports by name (it is their destination); else nothing."""
        return id(subject) if self.names_ports and self.kind == "Ingress" else 0


def _reads_labels(selector: dict[str, Any] | None) -> bool:
    return selector is not None and bool(selector.get("matchLabels") or selector.get("matchExpressions"))


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
