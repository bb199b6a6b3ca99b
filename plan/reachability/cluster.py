"""The cluster as the evaluator sees it: pods, namespaces, policies and Services, and the verdicts
between them (Kubernetes semantics, and the VPC CNI's ClusterIP path; see plan/reachability)."""

from __future__ import annotations

from typing import Any

from domain.selectors import selector_matches
from plan.reachability.model import (
    BUILTIN_NAMESPACES,
    NS_NAME_LABEL,
    Endpoint,
    External,
    Pod,
    Policy,
    as_int,
)
from plan.reachability.sets import MAX_PORT, PROTOCOLS, IPSet, PortSet, union_of


class Cluster:
    """Pods, namespaces, policies and Services, and the verdicts between them."""

    def __init__(self, pods: list[Pod], policies: list[Policy], namespaces: dict[str, dict[str, str]],
                 services: list[dict[str, Any]] = (), *, pod_ips: IPSet | None = None, node_ips: IPSet | None = None,
                 ipblock_matches_pods: bool = True, service_ips: IPSet | None = None):
        self.pods = pods
        self.pods_in: dict[str, list[Pod]] = {}   # by namespace: lookups stay linear in pods
        for p in pods:
            self.pods_in.setdefault(p.namespace, []).append(p)
        self.policies = policies
        self.namespaces = {ns: {**labels, NS_NAME_LABEL: ns} for ns, labels in namespaces.items()}
        for ns in BUILTIN_NAMESPACES:
            self.namespaces.setdefault(ns, {NS_NAME_LABEL: ns})
        for p in pods:
            self.namespaces.setdefault(p.namespace, {NS_NAME_LABEL: p.namespace})
        self.services = {((s.get("metadata") or {}).get("namespace") or "default", (s.get("metadata") or {}).get("name")): s
                         for s in services}
        self.services_in: dict[str, list[dict[str, Any]]] = {}
        for (ns, _name), svc in self.services.items():
            self.services_in.setdefault(ns, []).append(svc)
        self.pod_ips = pod_ips or IPSet.of("10.0.0.0/8")
        self.node_ips = node_ips or self.pod_ips
        self.service_ips = service_ips or IPSet.of("172.20.0.0/16")
        self.ipblock_matches_pods = ipblock_matches_pods
        self._by_ns: dict[str, list[Policy]] = {}
        # _block_overlaps' memo: (id of an address set, cidr, excepts) -> (that set, verdict); the entry
        # holds the set, so no other set can take its id while the cluster lives.
        self._overlapping: dict[tuple[int, str, tuple[str, ...]], tuple[IPSet, bool]] = {}
        self._covering: dict[tuple[int, int, bool], tuple[IPSet, IPSet, bool]] = {}   # _covers' memo
        for pol in policies:
            self._by_ns.setdefault(pol.namespace, []).append(pol)

    # --- selection
    def namespace_labels(self, ns: str) -> dict[str, str]:
        return self.namespaces.get(ns) or {NS_NAME_LABEL: ns}

    def selecting(self, pod: Pod, kind: str) -> list[Policy]:
        """The policies that isolate `pod` for `kind` ("Ingress" / "Egress"); [] = not isolated."""
        if pod.host_network:
            return []
        return [p for p in self._by_ns.get(pod.namespace, [])
                if kind in p.types and (pod.wildcard or selector_matches(p.spec.get("podSelector") or {}, pod.labels))]

    def ips_of(self, ep: Endpoint) -> IPSet | None:
        if isinstance(ep, External):
            return ep.ips
        if not self.ipblock_matches_pods:
            return None
        return self.node_ips if ep.host_network else self.pod_ips

    def _selector_peer(self, peer: dict[str, Any], policy_ns: str, other: Endpoint, must: bool) -> bool:
        if not isinstance(other, Pod) or (other.host_network and must):
            return False
        if "namespaceSelector" in peer and peer["namespaceSelector"] is not None:
            if not selector_matches(peer["namespaceSelector"], self.namespace_labels(other.namespace)):
                return False
        elif other.namespace != policy_ns:
            return False
        pod_sel = peer.get("podSelector")
        return pod_sel is None or other.wildcard or selector_matches(pod_sel, other.labels)

    @staticmethod
    def _ports_entry_set(entry: dict[str, Any], dst: Endpoint) -> list[tuple[str, int, int]]:
        proto = entry.get("protocol") or "TCP"
        port = entry.get("port")
        if port is None:
            return [(proto, 1, MAX_PORT)]
        number = as_int(port)
        if number is None:   # a named port: the destination pod's container port of that name
            if isinstance(dst, Pod):
                if dst.wildcard:
                    return [(proto, 1, MAX_PORT)]
                return [(proto, n, n) for n in dst.named_port(str(port), proto)]
            return []
        end = as_int(entry.get("endPort"))
        return [(proto, number, end if end is not None and end >= number else number)]

    def _rule_has_port(self, rule: dict[str, Any], dst: Endpoint, port: int, protocol: str) -> bool:
        """Is `port`/`protocol` one of the rule's ports (no PortSet built: judge asks it per need and rule)?"""
        return any(p == protocol and lo <= port <= hi for p, lo, hi in self._rule_port_ranges(rule, dst))

    def _rule_port_ranges(self, rule: dict[str, Any], dst: Endpoint) -> list[tuple[str, int, int]]:
        ports = rule.get("ports")
        if not ports:
            return [(p, 1, MAX_PORT) for p in PROTOCOLS]
        return [x for e in ports for x in self._ports_entry_set(e, dst)]

    # --- one direction
    def _direction(self, subject: Endpoint, other: Endpoint, kind: str, port: int, protocol: str, must: bool) -> bool:
        if isinstance(subject, External):
            return True
        policies = self.selecting(subject, kind)
        if not policies:
            return True
        dst = other if kind == "Egress" else subject
        key = "to" if kind == "Egress" else "from"
        blocks: list[tuple[str, tuple[str, ...]]] = []   # the ipBlocks of the rules that apply
        for pol in policies:
            for rule in pol.rules(kind):
                if not self._rule_has_port(rule, dst, port, protocol):
                    continue
                peers = rule.get(key)
                if not peers:
                    return True
                for peer in peers:
                    block = peer.get("ipBlock")
                    if block:
                        blocks.append((block["cidr"], tuple(block.get("except") or ())))
                    elif self._selector_peer(peer, pol.namespace, other, must):
                        return True
        ips = self.ips_of(other)
        covered = union_of(tuple(blocks))
        if not ips or not covered:
            return False
        return self._covers(ips, covered, must)

    def _covers(self, ips: IPSet, covered: IPSet, must: bool) -> bool:
        """`ips` within `covered` (must) or meeting it (may), once per pair of sets: judge asks it per
        need against a handful of each. The entry holds both sets, so neither id is reused meanwhile."""
        key = (id(ips), id(covered), must)
        if key not in self._covering:
            self._covering[key] = (ips, covered, ips.subset_of(covered) if must else ips.overlaps(covered))
        return self._covering[key][2]

    def egress(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP", must: bool = True) -> bool:
        return self._direction(src, dst, "Egress", port, protocol, must)

    def ingress(self, dst: Endpoint, src: Endpoint, port: int, protocol: str = "TCP", must: bool = True) -> bool:
        return self._direction(dst, src, "Ingress", port, protocol, must)

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP", must: bool = True) -> bool:
        """May `src` open a connection to `dst` on `port`/`protocol` (dst's container port)?"""
        return self.egress(src, dst, port, protocol, must) and self.ingress(dst, src, port, protocol, must)

    # --- port sets (the `may` reading), for matrices
    def _direction_ports(self, subject: Endpoint, other: Endpoint, kind: str) -> PortSet:
        if isinstance(subject, External):
            return PortSet.everything()
        policies = self.selecting(subject, kind)
        if not policies:
            return PortSet.everything()
        dst = other if kind == "Egress" else subject
        # the union of the policies' ports, merged once at the end
        return PortSet([x for pol in policies for x in self.policy_ports(pol, kind, other, dst)])

    def policy_ports(self, pol: Policy, kind: str, other: Endpoint, dst: Endpoint) -> list[tuple[str, int, int]]:
        """The port ranges of `pol`'s rules of direction `kind` whose peers may match `other` (the `may`
        reading), named ports resolved against `dst`. A function of (pol, kind, other, dst) alone: the pod
        the policy selects enters only as `dst` (Ingress), through its named ports."""
        key = "to" if kind == "Egress" else "from"
        ips = self.ips_of(other)
        out: list[tuple[str, int, int]] = []
        for rule in pol.rules(kind):
            peers = rule.get(key)
            hit = not peers
            for peer in peers or []:
                if hit:
                    break
                block = peer.get("ipBlock")
                if block:
                    hit = ips is not None and self._block_overlaps(ips, block)
                else:
                    hit = self._selector_peer(peer, pol.namespace, other, must=False)
            if hit:
                out += self._rule_port_ranges(rule, dst)
        return out

    def _block_overlaps(self, ips: IPSet, block: dict[str, Any]) -> bool:
        """Does an ipBlock overlap `ips`? Once per (address set, ipBlock): the namespace matrix asks
        it for every pair of pods, against a handful of sets and blocks."""
        excepts = tuple(block.get("except") or ())
        key = (id(ips), block["cidr"], excepts)
        if key not in self._overlapping:
            self._overlapping[key] = (ips, bool(ips) and ips.overlaps(IPSet.of(block["cidr"], excepts)))
        return self._overlapping[key][1]

    def peer_namespaces(self, subject: Pod, kind: str, namespaces: list[str]) -> set[str] | None:
        """The namespaces (of `namespaces`) whose pods `subject` may have as a peer in direction `kind`
        ("Egress": destinations, "Ingress": sources) in the `may` reading; None: any namespace. A
        superset of what _direction_ports finds a port for, so the matrix judges only those pairs."""
        policies = self.selecting(subject, kind)
        if not policies:
            return None
        out: set[str] = set()
        for pol in policies:
            some = self.policy_peer_namespaces(pol, kind, namespaces)
            if some is None:
                return None
            out |= some
        return out

    def policy_peer_namespaces(self, pol: Policy, kind: str, namespaces: list[str]) -> set[str] | None:
        """peer_namespaces for the pods `pol` selects, from its rules of direction `kind` alone."""
        key = "to" if kind == "Egress" else "from"
        out: set[str] = set()
        for rule in pol.rules(kind):
            peers = rule.get(key)
            if not peers:
                return None
            for peer in peers:
                block = peer.get("ipBlock")
                if block:
                    cidr = IPSet.of(block["cidr"], block.get("except") or ())
                    if self.ipblock_matches_pods and (cidr.overlaps(self.pod_ips) or cidr.overlaps(self.node_ips)):
                        return None
                elif peer.get("namespaceSelector") is not None:
                    out |= self._namespaces_selected(peer["namespaceSelector"], namespaces)
                else:
                    out.add(pol.namespace)
        return out

    def _namespaces_selected(self, selector: dict[str, Any], namespaces: list[str]) -> set[str]:
        """The namespaces (of `namespaces`) a policy peer's namespaceSelector matches. One that asks for
        kubernetes.io/metadata.name alone names a namespace: every namespace's value of that label is
        its own name (set in __init__, as the API server does, and by namespace_labels), so no scan."""
        labels = selector.get("matchLabels") or {}
        if not selector.get("matchExpressions") and len(labels) == 1 and NS_NAME_LABEL in labels:
            name = str(labels[NS_NAME_LABEL])
            return {name} if name in namespaces else set()
        return {ns for ns in namespaces if selector_matches(selector, self.namespace_labels(ns))}

    def reachable_ports(self, src: Endpoint, dst: Endpoint) -> PortSet:
        """Every port/protocol on which `src` may reach `dst` (the `may` reading)."""
        return self._direction_ports(src, dst, "Egress") & self._direction_ports(dst, src, "Ingress")

    # --- Services
    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.get((namespace, name))

    def backends(self, svc: dict[str, Any], port: int | str) -> list[tuple[Pod, int, str, dict[str, Any]]]:
        """(pod, container port, protocol, service port entry) behind a Service port, given by
        number or by name. Selector-less Services have no pods here."""
        ns = (svc.get("metadata") or {}).get("namespace") or "default"
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector:
            return []
        out = []
        for sp in spec.get("ports") or []:
            if port not in (sp.get("name"), as_int(sp.get("port"))):
                continue
            proto = sp.get("protocol") or "TCP"
            target = sp.get("targetPort", sp.get("port"))
            for pod in self.pods_in.get(ns, []):
                if pod.wildcard or not selector_matches({"matchLabels": selector}, pod.labels):
                    continue
                number = as_int(target)
                numbers = [number] if number is not None else pod.named_port(str(target), proto)
                for n in numbers[:1]:
                    out.append((pod, n, proto, sp))
        return out

    def vpc_cni_egress(self, src: Pod, svc: dict[str, Any], service_port: int, protocol: str, target: int) -> bool:
        """The VPC CNI's verdict on `src` connecting to a Service's ClusterIP on `service_port`
        (DNATed to container port `target`): see the module docstring."""
        policies = self.selecting(src, "Egress")
        if not policies:
            return True
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        svc_ns, selector = meta.get("namespace") or "default", spec.get("selector") or {}
        headless = spec.get("clusterIP") in ("None",) or not selector
        ports = [p for p in spec.get("ports") or [] if as_int(p.get("port")) == service_port]
        target_ref = ports[0].get("targetPort", service_port) if ports else service_port
        try:   # its ClusterIP when the object says, else anywhere in the service CIDR
            cluster_ip = IPSet.of(f"{spec['clusterIP']}/32")
        except (KeyError, ValueError):
            cluster_ip = self.service_ips
        for pol in policies:
            for rule in pol.rules("Egress"):
                entries = rule.get("ports") or []
                peers = rule.get("to")
                if not peers:   # 0.0.0.0/0 with the rule's ports as given (numeric ones only)
                    if not entries or any(self._cidr_port(e, service_port, protocol) for e in entries):
                        return True
                    continue
                for peer in peers:
                    block = peer.get("ipBlock")
                    if block:
                        if cluster_ip.subset_of(IPSet.of(block["cidr"], block.get("except") or ())) and (
                                not entries or any(self._cidr_port(e, service_port, protocol) for e in entries)):
                            return True
                        continue
                    if headless:
                        continue
                    ns_sel = peer.get("namespaceSelector")
                    if ns_sel is not None:
                        if not selector_matches(ns_sel, self.namespace_labels(svc_ns)):
                            continue
                    elif svc_ns != pol.namespace:
                        continue
                    if not selector_matches(peer.get("podSelector") or {}, {k: str(v) for k, v in selector.items()}):
                        continue
                    if not entries:
                        return True
                    for e in entries:
                        if (e.get("protocol") or "TCP") != protocol:
                            continue
                        if e.get("port") is None:
                            return True
                        n = as_int(e.get("port"))
                        if n is not None and (n == as_int(target_ref) or (as_int(target_ref) is None and n == target)):
                            return True
                        if n is None and str(e.get("port")) == str(target_ref):
                            return True
        return False

    @staticmethod
    def _cidr_port(entry: dict[str, Any], port: int, protocol: str) -> bool:
        if (entry.get("protocol") or "TCP") != protocol:
            return False
        if entry.get("port") is None:
            return True
        n = as_int(entry.get("port"))
        if n is None:
            return False   # named ports never apply to CIDRs (convertToPolicyInfoPortForCIDRs)
        end = as_int(entry.get("endPort")) or n
        return n <= port <= end
