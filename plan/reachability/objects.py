"""The evaluator's inputs from a plan's objects (pods, NetworkPolicies, namespaces), the probes
standing for pods a namespace's users might add, and the helpers the tenancy layer's tests use."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from plan.admission.pod_security import pod_templates
from plan.reachability.cluster import Cluster
from plan.reachability.model import External, Pod, Policy, container_ports
from plan.reachability.sets import IPSet

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"


def pods_of(objects: list[Any]) -> list[Pod]:
    """One Pod per pod template of every object (Helm test hooks included: they run on the cluster)."""
    out = []
    for o in objects:
        for _path, meta, spec in pod_templates(o.manifest):
            out.append(Pod(namespace=o.namespace or "default", owner=f"{o.kind}/{o.name}",
                           labels={k: str(v) for k, v in (meta.get("labels") or {}).items()},
                           ports=container_ports(spec), host_network=bool(spec.get("hostNetwork")),
                           service_account=spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
                           source=o, dns_policy=str(spec.get("dnsPolicy") or "ClusterFirst"),
                           nameservers=tuple((spec.get("dnsConfig") or {}).get("nameservers") or ())))
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
