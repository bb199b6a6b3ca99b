"""Pod-level NetworkPolicy evaluation: may this pod open a connection to that pod (or address) on
this port? Kubernetes semantics (k8s.io/api networking/v1 and
kubernetes.io/docs/concepts/services-networking/network-policies), over every pod template of every
object of the plan (declared, rendered by Helm, created by operators).

The rules, as implemented below:

- A policy selects the pods of its own namespace that its `podSelector` matches (matchLabels and
  matchExpressions In / NotIn / Exists / DoesNotExist; `{}` selects every pod).
- A pod is isolated for a direction when some policy that selects it has that direction in its
  `policyTypes`. `policyTypes` defaults to ["Ingress"], plus "Egress" when the policy has at least
  one egress rule (SetDefaults_NetworkPolicySpec). A pod no policy isolates allows everything in
  that direction; an isolated one allows the union of the rules of the policies that select it.
- A connection (source, destination, port, protocol) is allowed iff the source's egress allows it
  AND the destination's ingress allows it. Addresses outside the cluster have no policy of their own.
- A rule applies when its ports match (none listed: every port and protocol; an entry without a
  port: every port of its protocol, TCP by default; `port`..`endPort` a range; a named port is
  resolved against the destination pod's container ports of that name and protocol — for egress
  too) and one of its peers matches (no peers: everything). A peer is an `ipBlock` (cidr minus
  `except`), a `namespaceSelector` (pods of the namespaces whose labels match; `{}` every
  namespace), a `podSelector` (pods of the policy's namespace), or both selectors (AND).
- Namespace labels are those of the Namespace objects plus `kubernetes.io/metadata.name` (set by the
  API server); kube-system, default, kube-public and kube-node-lease exist without objects.
- hostNetwork pods are not isolated by any policy (they share the node's network namespace) and
  have the node's IP. Whether a selector peer matches a hostNetwork pod is undefined upstream; the
  evaluator never relies on it for a needed connection (`must`) and assumes it for isolation
  questions (`may`).
- With the VPC CNI, pods and nodes have VPC addresses, so an ipBlock containing the pod range
  matches pods too (`ipblock_matches_pods`, on by default; upstream leaves ipBlock for
  cluster-external addresses, and some plugins never match pods with it).
- Services: connecting to a Service port means connecting to the pods its selector selects, on its
  targetPort (a number, or a name resolved per pod; pods without that named port are no endpoint).

Pod IPs are ranges (the VPC CIDR), so ipBlock matching has two readings: `must` (every address
the pod may have is covered: a needed connection works wherever the pod lands) and `may` (some
address is covered: an isolation question).

The VPC CNI network policy agent (aws/aws-network-policy-agent, with
aws/amazon-network-policy-controller-k8s) deviates in ways that matter here:
- It enforces only when the vpc-cni add-on runs with `enableNetworkPolicy: "true"`; otherwise every
  policy is accepted and ignored (`enforced()`).
- Its egress eBPF program sees the packet before kube-proxy's DNAT: a connection to a ClusterIP
  is matched against the Service's ClusterIP and service port, not the pod. The controller adds a
  Service's ClusterIP to an egress rule only for a non-ipBlock peer whose podSelector (absent: `{}`)
  matches the Service's selector as a label set, in a namespace the peer selects, with the rule's
  ports mapped to service ports through the targetPort (endpoints.go getMatchingServiceClusterIPs);
  headless Services and selector-less ones (the `kubernetes` Service) are never added, so their
  ClusterIP is reachable only through an ipBlock covering the service CIDR. `Cluster.vpc_cni_egress`
  evaluates that path; connections through a ClusterIP carry its verdict.
- It never applies policies to hostNetwork pods (as above), and traffic from a pod's own node is
  admitted (kubelet probes); neither is relied on for a needed connection.
- In its default (`standard`) mode a new pod is unrestricted until its policies are programmed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

NS_NAME_LABEL = "kubernetes.io/metadata.name"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTOCOLS = ("TCP", "UDP", "SCTP")
ANY = "any"
MAX_PORT = 65535
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


# ------------------------------------------------------------------------------------ label selectors

def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (LabelSelectorAsSelector): every matchLabels pair and every
    expression must hold; `{}` matches everything. `None` matches nothing (callers say what an
    absent selector means where it means something else)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown label selector operator {op!r}")
        if not ok:
            return False
    return True


# ------------------------------------------------------------------------------------ address sets

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


# ------------------------------------------------------------------------------------ the cluster

@dataclass(frozen=True)
class ContainerPort:
    name: str | None
    number: int
    protocol: str = "TCP"


@dataclass(eq=False)
class Pod:
    """One pod template (its replicas behave alike). `wildcard`: a probe standing for any pod a
    namespace's users might create — every selector matches it, every named port resolves."""
    namespace: str
    owner: str                         # "Kind/name" of the object whose template it is
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[ContainerPort, ...] = ()
    host_network: bool = False
    service_account: str = "default"
    source: Any = None                 # the K8sObject, when there is one
    wildcard: bool = False

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.owner}"

    def named_port(self, name: str, protocol: str) -> list[int]:
        return [p.number for p in self.ports if p.name == name and p.protocol == protocol]


@dataclass(frozen=True, eq=False)
class External:
    """Addresses outside the pod network: the API server's ENIs, S3, the internet, a link-local agent."""
    name: str
    ips: IPSet
    desc: str | None = None     # how to print the addresses (else every network)

    @property
    def ref(self) -> str:
        return self.desc or str(self.ips)


Endpoint = Pod | External


@dataclass
class Policy:
    namespace: str
    name: str
    spec: dict[str, Any]

    @property
    def types(self) -> tuple[str, ...]:
        types = self.spec.get("policyTypes")
        if types:
            return tuple(types)
        return ("Ingress", "Egress") if self.spec.get("egress") else ("Ingress",)

    def rules(self, kind: str) -> list[dict[str, Any]]:
        return list(self.spec.get("ingress" if kind == "Ingress" else "egress") or [])


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def container_ports(spec: dict[str, Any]) -> tuple[ContainerPort, ...]:
    """Ports of a pod's containers (and of restartable init containers: sidecars)."""
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    out = []
    for c in containers:
        for p in c.get("ports") or []:
            number = _int(p.get("containerPort"))
            if number is not None:
                out.append(ContainerPort(p.get("name"), number, p.get("protocol") or "TCP"))
    return tuple(out)


class Cluster:
    """Pods, namespaces, policies and Services, and the verdicts between them."""

    def __init__(self, pods: list[Pod], policies: list[Policy], namespaces: dict[str, dict[str, str]],
                 services: list[dict[str, Any]] = (), *, pod_ips: IPSet | None = None, node_ips: IPSet | None = None,
                 ipblock_matches_pods: bool = True, service_ips: IPSet | None = None):
        self.pods = pods
        self.policies = policies
        self.namespaces = {ns: {**labels, NS_NAME_LABEL: ns} for ns, labels in namespaces.items()}
        for ns in BUILTIN_NAMESPACES:
            self.namespaces.setdefault(ns, {NS_NAME_LABEL: ns})
        for p in pods:
            self.namespaces.setdefault(p.namespace, {NS_NAME_LABEL: p.namespace})
        self.services = {((s.get("metadata") or {}).get("namespace") or "default", (s.get("metadata") or {}).get("name")): s
                         for s in services}
        self.pod_ips = pod_ips or IPSet.of("10.0.0.0/8")
        self.node_ips = node_ips or self.pod_ips
        self.service_ips = service_ips or IPSet.of("172.20.0.0/16")
        self.ipblock_matches_pods = ipblock_matches_pods
        self._by_ns: dict[str, list[Policy]] = {}
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
        number = _int(port)
        if number is None:   # a named port: the destination pod's container port of that name
            if isinstance(dst, Pod):
                if dst.wildcard:
                    return [(proto, 1, MAX_PORT)]
                return [(proto, n, n) for n in dst.named_port(str(port), proto)]
            return []
        end = _int(entry.get("endPort"))
        return [(proto, number, end if end is not None and end >= number else number)]

    def rule_ports(self, rule: dict[str, Any], dst: Endpoint) -> PortSet:
        ports = rule.get("ports")
        if not ports:
            return PortSet.everything()
        return PortSet(x for e in ports for x in self._ports_entry_set(e, dst))

    # --- one direction
    def _direction(self, subject: Endpoint, other: Endpoint, kind: str, port: int, protocol: str, must: bool) -> bool:
        if isinstance(subject, External):
            return True
        policies = self.selecting(subject, kind)
        if not policies:
            return True
        dst = other if kind == "Egress" else subject
        key = "to" if kind == "Egress" else "from"
        covered = IPSet()
        for pol in policies:
            for rule in pol.rules(kind):
                if (port, protocol) not in self.rule_ports(rule, dst):
                    continue
                peers = rule.get(key)
                if not peers:
                    return True
                for peer in peers:
                    block = peer.get("ipBlock")
                    if block:
                        covered = covered | IPSet.of(block["cidr"], block.get("except") or ())
                    elif self._selector_peer(peer, pol.namespace, other, must):
                        return True
        ips = self.ips_of(other)
        if not ips or not covered:
            return False
        return ips.subset_of(covered) if must else ips.overlaps(covered)

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
        key = "to" if kind == "Egress" else "from"
        ips = self.ips_of(other)
        out = PortSet()
        for pol in policies:
            for rule in pol.rules(kind):
                peers = rule.get(key)
                hit = not peers
                for peer in peers or []:
                    if hit:
                        break
                    block = peer.get("ipBlock")
                    if block:
                        hit = bool(ips) and ips.overlaps(IPSet.of(block["cidr"], block.get("except") or ()))  # type: ignore[union-attr]
                    else:
                        hit = self._selector_peer(peer, pol.namespace, other, must=False)
                if hit:
                    out = out | self.rule_ports(rule, dst)
        return out

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
            if port not in (sp.get("name"), _int(sp.get("port"))):
                continue
            proto = sp.get("protocol") or "TCP"
            target = sp.get("targetPort", sp.get("port"))
            for pod in self.pods:
                if pod.namespace != ns or pod.wildcard or not selector_matches({"matchLabels": selector}, pod.labels):
                    continue
                number = _int(target)
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
        ports = [p for p in spec.get("ports") or [] if _int(p.get("port")) == service_port]
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
                        n = _int(e.get("port"))
                        if n is not None and (n == _int(target_ref) or (_int(target_ref) is None and n == target)):
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
        n = _int(entry.get("port"))
        if n is None:
            return False   # named ports never apply to CIDRs (convertToPolicyInfoPortForCIDRs)
        end = _int(entry.get("endPort")) or n
        return n <= port <= end


# ------------------------------------------------------------------------------------ from a plan

def pods_of(objects: list[Any]) -> list[Pod]:
    """One Pod per pod template of every object (Helm test hooks included: they run on the cluster)."""
    from plan.admission.pod_security import pod_templates

    out = []
    for o in objects:
        for _path, meta, spec in pod_templates(o.manifest):
            out.append(Pod(namespace=o.namespace or "default", owner=f"{o.kind}/{o.name}",
                           labels={k: str(v) for k, v in (meta.get("labels") or {}).items()},
                           ports=container_ports(spec), host_network=bool(spec.get("hostNetwork")),
                           service_account=spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
                           source=o))
    return out


def policies_of(objects: list[Any]) -> list[Policy]:
    return [Policy(o.namespace or "default", o.name, o.manifest.get("spec") or {})
            for o in objects if o.kind == "NetworkPolicy" and o.group == "networking.k8s.io"]


def namespaces_of(objects: list[Any]) -> dict[str, dict[str, str]]:
    return {o.name: {k: str(v) for k, v in (o.metadata.get("labels") or {}).items()}
            for o in objects if o.kind == "Namespace" and not o.group}


def probes(namespaces: Iterable[str]) -> list[Pod]:
    """Per namespace, the pods its users might add: one matched by every selector (`wildcard`)
    and one without labels (selected only by selectors that match no labels)."""
    out = []
    for ns in namespaces:
        out.append(Pod(ns, "probe/any-labels", wildcard=True))
        out.append(Pod(ns, "probe/no-labels"))
    return out


def namespace_matrix(cluster: Cluster, pods: list[Pod] | None = None) -> list[dict[str, Any]]:
    """[{"from": ns, "to": ns, "ports": [...]}]: the ports on which some pod of one namespace may
    reach some pod of the other (the `may` reading), ports ["any"] when every port is open."""
    pods = cluster.pods if pods is None else pods
    by_ns: dict[str, list[Pod]] = {}
    for p in pods:
        by_ns.setdefault(p.namespace, []).append(p)
    names = sorted(by_ns)
    out = []
    for src in names:
        for dst in names:
            ports = PortSet()
            for a in by_ns[src]:
                for b in by_ns[dst]:
                    if ports.is_everything():
                        break
                    ports = ports | cluster.reachable_ports(a, b)
            if ports:
                out.append({"from": src, "to": dst, "ports": ports.labels()})
    return out


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


# ------------------------------------------------------------------------------------ compatibility

def policies_by_namespace(resources: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """namespace -> specs of its declared NetworkPolicies (plan resources' inputs)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        if r.type == NETWORK_POLICY:
            out.setdefault(r.inputs["metadata"]["namespace"], []).append(r.inputs.get("spec") or {})
    return out


def egress_allows_ip(policies: list[dict[str, Any]], address: str, port: int, protocol: str = "TCP") -> bool:
    """May a pod that every one of these policies selects open a connection to `address` (outside
    the pod network) on `port`? The destination has no policy to agree."""
    pod = Pod("ns", "probe/any-labels", wildcard=True)
    cluster = Cluster([pod], [Policy("ns", f"p{i}", spec) for i, spec in enumerate(policies)], {})
    net = ipaddress.ip_network(address)
    return cluster.egress(pod, External(address, IPSet([net])), port, protocol)

