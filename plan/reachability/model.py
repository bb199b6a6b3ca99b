"""The endpoints and policies the evaluator judges: pods (one per pod template), addresses outside
the pod network, NetworkPolicies (label selectors: domain/selectors.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plan.reachability.sets import IPSet

NS_NAME_LABEL = "kubernetes.io/metadata.name"
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


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
    dns_policy: str = "ClusterFirst"   # spec.dnsPolicy (the API server's default is ClusterFirst)
    nameservers: tuple[str, ...] = ()  # spec.dnsConfig.nameservers (what dnsPolicy None asks)

    @property
    def resolver(self) -> str:
        """Where the pod's DNS queries go (Kubernetes "DNS for Services and Pods", Pod's DNS Policy):
        `cluster` (CoreDNS, the kube-dns Service) for ClusterFirst and ClusterFirstWithHostNet;
        `node` (the node's resolv.conf) for Default, and for a hostNetwork pod left at ClusterFirst
        ("Pods running with hostNetwork and ClusterFirst will fallback to the behavior of the
        Default policy"); `none` for None (only dnsConfig.nameservers)."""
        if self.dns_policy == "Default" or (self.host_network and self.dns_policy == "ClusterFirst"):
            return "node"
        return "none" if self.dns_policy == "None" else "cluster"

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


def as_int(value: Any) -> int | None:
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
            number = as_int(p.get("containerPort"))
            if number is not None:
                out.append(ContainerPort(p.get("name"), number, p.get("protocol") or "TCP"))
    return tuple(out)
