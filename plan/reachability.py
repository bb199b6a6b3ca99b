"""Namespace reachability from the declared NetworkPolicies: which namespace may open a
connection to which namespace, on which ports. A connection needs the destination's ingress AND
the source's egress to allow it; a namespace no policy selects allows everything (Kubernetes
semantics). Pod selectors inside a namespace are ignored (a namespace reaches another if some pod
may), so the answer over-approximates, which is the safe side for an isolation check.

Peers count when they select namespaces: `namespaceSelector` (by `kubernetes.io/metadata.name`,
matchLabels or `In` expressions; `{}` is every namespace) or a bare `podSelector` (the policy's
own namespace). ipBlock-only peers do not count as namespace reachability, unless `pod_cidr` is
given: then an ipBlock covering it (minus its excepts) matches every namespace, which is what
the VPC CNI does (pods have VPC addresses)."""

from __future__ import annotations

import ipaddress
from typing import Any

NS_NAME_LABEL = "kubernetes.io/metadata.name"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
ANY = "any"          # every port
Ports = frozenset[str] | None   # None: every port; else {"8000/TCP", ...}


def _selects(selector: dict[str, Any] | None, namespace: str) -> bool:
    """Does a namespaceSelector select `namespace` (judged by its metadata.name label only)?"""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if key != NS_NAME_LABEL or value != namespace:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if key != NS_NAME_LABEL:
            return False   # other labels: not provable, treat as not selecting
        if op == "In" and namespace not in values:
            return False
        if op == "NotIn" and namespace in values:
            return False
        if op == "DoesNotExist":
            return False
    return True


def _ip_covers(block: dict[str, Any], pod_cidr: str | None) -> bool:
    if not pod_cidr:
        return False
    net, pods = ipaddress.ip_network(block["cidr"], strict=False), ipaddress.ip_network(pod_cidr, strict=False)
    if pods.version != net.version or not pods.subnet_of(net):  # type: ignore[arg-type]
        return False
    return not any(pods.overlaps(ipaddress.ip_network(e, strict=False)) for e in block.get("except") or [])


def _peer_matches(peer: dict[str, Any], own_ns: str, other: str, pod_cidr: str | None) -> bool:
    if "ipBlock" in peer:
        return _ip_covers(peer["ipBlock"], pod_cidr)
    if "namespaceSelector" in peer:
        return _selects(peer["namespaceSelector"], other)
    if "podSelector" in peer:
        return other == own_ns
    return False


def _rule_ports(rule: dict[str, Any]) -> Ports:
    ports = rule.get("ports")
    if not ports:
        return None
    out = set()
    for p in ports:
        if "port" not in p:
            return None   # a protocol with no port: every port of it; treat as every port
        port = p["port"]
        port = int(port) if isinstance(port, (int, float)) else port
        out.add(f"{port}/{p.get('protocol', 'TCP')}")
    return frozenset(out)


def _union(a: Ports | bool, b: Ports) -> Ports | bool:
    """False: nothing yet; None: every port; else a set."""
    if a is False:
        return b
    if a is None or b is None:
        return None
    return a | b


def _allowed(policies: list[dict[str, Any]], direction: str, own_ns: str, other: str,
             pod_cidr: str | None) -> Ports | bool:
    """Ports on which `own_ns` admits (ingress) or sends (egress) to `other`; False: none."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    mine = [p for p in policies if kind in (p.get("policyTypes") or ["Ingress"])]
    if not mine:
        return None   # not isolated in this direction
    key = "from" if direction == "ingress" else "to"
    result: Ports | bool = False
    for p in mine:
        for rule in p.get(direction) or []:
            peers = rule.get(key)
            if not peers or any(_peer_matches(peer, own_ns, other, pod_cidr) for peer in peers):
                result = _union(result, _rule_ports(rule))
    return result


def _intersect(a: Ports | bool, b: Ports | bool) -> Ports | bool:
    if a is False or b is False:
        return False
    if a is None:
        return b
    if b is None:
        return a
    both = a & b
    return both if both else False


def _port_order(port: str) -> tuple[int, str]:
    number = port.split("/")[0]
    return (int(number) if number.isdigit() else 0, port)


def policies_by_namespace(resources: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """namespace -> specs of its NetworkPolicies, from plan resources (their inputs)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        if r.type == NETWORK_POLICY:
            out.setdefault(r.inputs["metadata"]["namespace"], []).append(r.inputs.get("spec") or {})
    return out


def compute(policies: dict[str, list[dict[str, Any]]], namespaces: list[str],
            pod_cidr: str | None = None) -> list[dict[str, Any]]:
    """[{"from": ns, "to": ns, "ports": [...]}] for every pair that may connect (incl. a namespace
    to itself); ports ["any"] when every port is open."""
    out = []
    for src in namespaces:
        for dst in namespaces:
            egress = _allowed(policies.get(src, []), "egress", src, dst, pod_cidr)
            ingress = _allowed(policies.get(dst, []), "ingress", dst, src, pod_cidr)
            ports = _intersect(egress, ingress)
            if ports is False:
                continue
            listed = [ANY] if ports is None else sorted(ports, key=_port_order)
            out.append({"from": src, "to": dst, "ports": listed})
    return out


def of_plan(plan: Any, extra_namespaces: tuple[str, ...] = ("kube-system",),
            pod_cidr: str | None = None) -> list[dict[str, Any]]:
    """Reachability among the plan's declared namespaces (plus kube-system, unmanaged)."""
    declared = sorted(r.inputs["metadata"]["name"] for r in plan.resources if r.type == NAMESPACE)
    namespaces = declared + [n for n in extra_namespaces if n not in declared]
    return compute(policies_by_namespace(plan.resources), namespaces, pod_cidr)


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


def egress_allows_ip(policies: list[dict[str, Any]], address: str, port: int, protocol: str = "TCP") -> bool:
    """May a namespace with these NetworkPolicies open a connection to an address outside the
    cluster (a VPC endpoint, the internet) on `port`? Only ipBlock peers (and rules without peers)
    match such an address; the destination has no NetworkPolicy to agree."""
    egress = [p for p in policies if "Egress" in (p.get("policyTypes") or ["Ingress"])]
    if not egress:
        return True
    ip = ipaddress.ip_address(address)
    for p in egress:
        for rule in p.get("egress") or []:
            ports = _rule_ports(rule)
            if ports is not None and f"{port}/{protocol}" not in ports:
                continue
            peers = rule.get("to")
            if not peers:
                return True
            for peer in peers:
                block = peer.get("ipBlock")
                if block and ip in ipaddress.ip_network(block["cidr"], strict=False) and not any(
                        ip in ipaddress.ip_network(e, strict=False) for e in block.get("except") or []):
                    return True
    return False
