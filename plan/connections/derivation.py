"""What the derivations record: every needed connection (Need) on the cluster the plan describes
(Derivation), with the address resolution they share (in-cluster names, AWS endpoints, the internet)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from plan.reachability import (
    PUBLIC,
    PUBLIC_DESC,
    Cluster,
    Endpoint,
    External,
    IPSet,
    Pod,
    as_int,
    selector_matches,
)

SVC_SUFFIXES = (".svc.cluster.local", ".svc")
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(?:[^@/\s,'\"]*@)?([A-Za-z0-9.$()_-]+)(?::(\d+))?")
HOST_PORT = re.compile(r"^([a-z0-9][a-z0-9.-]*[a-z0-9]):(\d+)$")
SCHEME_PORTS = {"http": 80, "https": 443, "grpc": 80, "redis": 6379, "rediss": 6379, "postgres": 5432,
                "postgresql": 5432, "clickhouse": 9000, "mysql": 3306, "mongodb": 27017}


@dataclass
class Need:
    """A connection the platform makes. `port`: what the destination's policies see (the container
    port, or the external port); `service`/`service_port`: the ClusterIP it goes through, if any."""
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: str
    why: list[str]
    service: dict[str, Any] | None = None
    service_port: int | None = None


@dataclass
class Derivation:
    cluster: Cluster
    vpc: IPSet
    objects: list[Any]
    resources: list[Any]
    needs: dict[tuple[str, str, int, str], Need] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    selectorless: dict[tuple[str, str], External] = field(default_factory=dict)  # Services whose endpoints are not pods
    api: External | None = None
    control_plane: IPSet | None = None    # the EKS cluster's subnets: the API server's own addresses
    vpc_resolver: External | None = None   # where a pod with dnsPolicy Default sends its queries
    # Indexes (every lookup a dict access, not a scan: the derivations stay linear in the plan's size)
    named: dict[tuple[str, str | None, str], list[Any]] = field(default_factory=dict)   # (kind, ns, name) -> objects
    by_urn: dict[str, Any] = field(default_factory=dict)                                # resources by URN

    def __post_init__(self) -> None:
        for o in self.objects:
            self.named.setdefault((o.kind, o.namespace, o.name), []).append(o)
        self.by_urn = {r.urn: r for r in self.resources}

    # --- recording
    def need(self, src: Endpoint, dst: Endpoint, port: int, protocol: str, why: str,
             service: dict[str, Any] | None = None, service_port: int | None = None) -> None:
        if src.ref == dst.ref:
            return
        key = (src.ref, dst.ref, port, protocol)
        if key not in self.needs:
            self.needs[key] = Need(src, dst, port, protocol, [why], service, service_port)
            return
        known = self.needs[key]
        if why not in known.why:
            known.why.append(why)
            known.why.sort()   # one connection, several reasons: the same text whatever order found them
        # Through a ClusterIP on some path: the VPC CNI judges that path (the first such Service by name).
        if service is not None and (known.service is None or _via(service, service_port) < _via(known.service, known.service_port)):
            known.service, known.service_port = service, service_port

    def to_service(self, srcs: list[Pod], svc: dict[str, Any] | None, port: int | str, why: str,
                   ref: str = "", direct: bool = False) -> None:
        """`srcs` connect to a Service port (number or name): its pods on the targetPort; through
        its ClusterIP unless `direct` (clients that read the endpoints: Prometheus, Envoy) or headless."""
        if svc is None:
            self.unresolved.append({"from": [p.ref for p in srcs], "to": ref, "why": why, "problem": "no such Service"})
            return
        if not srcs:
            return
        headless = direct or (svc.get("spec") or {}).get("clusterIP") == "None"
        external = self.selectorless.get(service_key(svc))
        if external is not None:
            for sp in (svc.get("spec") or {}).get("ports") or []:
                if port in (sp.get("name"), as_int(sp.get("port"))):
                    target = as_int(sp.get("targetPort", sp.get("port"))) or as_int(sp.get("port")) or 0
                    for s in srcs:
                        self.need(s, external, target, sp.get("protocol") or "TCP", why,
                                  None if headless else svc, as_int(sp.get("port")))
            return
        backends = self.cluster.backends(svc, port)
        if not backends:
            ns, name = service_key(svc)
            self.unresolved.append({"from": [p.ref for p in srcs], "to": f"{ns}/Service/{name}:{port}",
                                    "why": why, "problem": "no pod behind this Service port"})
        for pod, number, proto, sp in backends:
            for s in srcs:
                self.need(s, pod, number, proto, why, None if headless else svc, as_int(sp.get("port")))

    # --- lookups
    def pods_where(self, namespace: str | None = None, labels: dict[str, str] | None = None,
                   sa: str | None = None) -> list[Pod]:
        pods = self.cluster.pods if namespace is None else self.cluster.pods_in.get(namespace, [])
        return [p for p in pods if not p.wildcard
                and (labels is None or selector_matches({"matchLabels": labels}, p.labels))
                and (sa is None or p.service_account == sa)]

    def pods_of_object(self, obj: Any) -> list[Pod]:
        """The pods an operator made for `obj`: plan/operators.py gives them the `source` of the object
        they come from and sets `controller`. A rendered object shares its release's source, so
        there the pod must also carry the object's name (a label value or its own name)."""
        out = [p for p in self.cluster.pods_in.get(obj.namespace, []) if p.source is not None
               and getattr(p.source, "controller", None) and p.source.source == obj.source]
        if obj.release:
            out = [p for p in out if obj.name in p.labels.values() or obj.name in p.owner]
        return out

    def resolve(self, host: str, port: int | None, src_ns: str) -> tuple[str, Any]:
        """An address -> ("service", (svc, port)) | ("external", External) | ("skip", None)."""
        host = host.strip().rstrip(".").lower()
        if (not host or "$" in host or "_" in host or host in ("localhost",) or host.startswith("127.")
                or host == "0.0.0.0"):
            return "skip", None
        try:
            ip = ipaddress.ip_address(host)
            return "external", External(host, IPSet([ipaddress.ip_network(ip)]))
        except ValueError:
            pass
        for suffix in SVC_SUFFIXES:
            if host.endswith(suffix):
                parts = host[: -len(suffix)].split(".")
                if len(parts) >= 2:
                    return "service", (self.cluster.service(parts[-1], parts[-2]), port, f"{parts[-1]}/Service/{parts[-2]}")
        parts = host.split(".")
        if len(parts) == 1:
            return "service", (self.cluster.service(src_ns, host), port, f"{src_ns}/Service/{host}")
        if len(parts) == 2 and parts[1] in self.cluster.namespaces:
            return "service", (self.cluster.service(parts[1], parts[0]), port, f"{parts[1]}/Service/{parts[0]}")
        if host.endswith((".rds.amazonaws.com", ".cache.amazonaws.com")):
            return "external", External(f"AWS {host.split('.')[-3]} (private endpoint)", self.vpc)
        if host.endswith(".amazonaws.com") and (host.startswith("s3.") or ".s3." in host or ".s3-" in host):
            return "external", External("S3 (VPC gateway endpoint: public prefix-list addresses)", PUBLIC, PUBLIC_DESC)
        if host.endswith(".eks.amazonaws.com"):   # the cluster endpoint: private access resolves to its ENIs
            return "external", self.api
        return "external", External(f"internet ({host})", PUBLIC, PUBLIC_DESC)

    def to_address(self, srcs: list[Pod], host: str, port: int | None, why: str) -> None:
        if not srcs:
            return
        kind, target = self.resolve(host, port, srcs[0].namespace)
        if kind == "skip":
            return
        if kind == "external":
            if port is None:
                return
            for s in srcs:
                self.need(s, target, port, "TCP", why)
            return
        svc, p, ref = target
        if p is None:   # a Service by name without a port: its only port
            ports = ((svc or {}).get("spec") or {}).get("ports") or []
            if len(ports) != 1:
                self.unresolved.append({"from": [s.ref for s in srcs], "to": ref, "why": why, "problem": "no port"})
                return
            p = as_int(ports[0].get("port"))
        self.to_service(srcs, svc, p, why, ref)

    def to_url(self, srcs: list[Pod], url: str, why: str) -> None:
        for scheme, host, port in URL.findall(url):
            number = int(port) if port else SCHEME_PORTS.get(scheme.lower())
            self.to_address(srcs, host, number, why)


def _via(svc: dict[str, Any], port: int | None) -> tuple[str, str, int]:
    return (*service_key(svc), port or 0)


def service_key(svc: dict[str, Any]) -> tuple[str, str]:
    md = svc.get("metadata") or {}
    return (md.get("namespace") or "default", md.get("name") or "")


def backend_objects(d: Derivation, kind: str, ns: str, name: str) -> list[Any]:
    return d.named.get((kind, ns, name), [])
