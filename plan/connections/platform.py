"""Connections every cluster has: DNS, Pod Identity credentials, the API server (RBAC subjects)
and the API server's calls to webhooks."""

from __future__ import annotations

from typing import Any

from plan.connections.addons import ADDON
from plan.connections.derivation import Derivation
from plan.reachability import (
    External,
    IPSet,
    as_int,
)

ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
POD_IDENTITY_AGENT = IPSet.of("169.254.170.23/32")


def dns(d: Derivation) -> None:
    """Every pod's DNS, to the resolver its dnsPolicy names (Pod.resolver). hostNetwork pods send
    from the node (no policy applies); a pod with dnsPolicy Default asks the VPC's Route 53 Resolver
    from its own address, so its egress policy must allow that, not CoreDNS."""
    pods = [p for p in d.cluster.pods if not p.wildcard and not p.host_network and p.labels.get("k8s-app") != "kube-dns"]
    for p in pods:
        if p.resolver == "node" and d.vpc_resolver is None:   # no VPC CIDR known: say so, allow nothing
            d.unresolved.append({"from": [p.ref], "to": "the VPC's Route 53 Resolver", "why": f"DNS (dnsPolicy {p.dns_policy})",
                                 "problem": "the VPC's CIDR (hence its resolver's address) is unknown"})
            continue
        servers = ([d.vpc_resolver] if p.resolver == "node" else
                   [External(f"nameserver {ip} (dnsConfig)", IPSet.of(f"{ip}/32")) for ip in p.nameservers]
                   if p.resolver == "none" else [])
        for server in servers:
            for proto in ("UDP", "TCP"):
                d.need(p, server, 53, proto, f"DNS (dnsPolicy {p.dns_policy})")
    svc = d.cluster.service("kube-system", "kube-dns")
    srcs = [p for p in pods if p.resolver == "cluster"]
    if svc is None:
        d.unresolved.append({"from": ["every pod"], "to": "kube-system/Service/kube-dns", "why": "DNS",
                             "problem": "no CoreDNS (coredns add-on) in the plan"})
        return
    for port in ("dns", "dns-tcp"):
        d.to_service(srcs, svc, port, "DNS")


def pod_identity(d: Derivation) -> None:
    agent = External("EKS Pod Identity agent (link-local, on the node)", POD_IDENTITY_AGENT)
    bound: set[tuple[str, str]] = set()
    for r in d.resources:
        if r.type == ASSOCIATION:
            bound.add((r.inputs.get("namespace"), r.inputs.get("serviceAccount")))
        if r.type == ADDON:
            for a in r.inputs.get("podIdentityAssociations") or []:
                bound.add(("kube-system", a.get("serviceAccount")))
    for p in d.cluster.pods:
        if not p.wildcard and (p.namespace, p.service_account) in bound:
            d.need(p, agent, 80, "TCP", f"Pod Identity credentials (service account {p.service_account})")


def _rbac_subjects(objects: list[Any]) -> tuple[set[tuple[str, str]], set[str]]:
    accounts, groups = set(), set()
    for o in objects:
        if o.kind not in ("RoleBinding", "ClusterRoleBinding") or o.group != "rbac.authorization.k8s.io":
            continue
        for s in o.manifest.get("subjects") or []:
            if s.get("kind") == "ServiceAccount":
                accounts.add((s.get("namespace") or o.namespace or "default", s.get("name")))
            elif s.get("kind") == "Group":
                groups.add(s.get("name"))
    return accounts, groups


def api_server(d: Derivation, api: External, extra: set[tuple[str, str]]) -> None:
    accounts, groups = _rbac_subjects(d.objects)
    accounts |= extra
    kube = d.cluster.service("default", "kubernetes")
    for p in d.cluster.pods:
        if p.wildcard:
            continue
        if ((p.namespace, p.service_account) in accounts or "system:serviceaccounts" in groups
                or f"system:serviceaccounts:{p.namespace}" in groups):
            d.need(p, api, 443, "TCP", f"Kubernetes API (RBAC of service account {p.service_account})", kube, 443)


def webhooks(d: Derivation) -> None:
    src = External("kube-apiserver (EKS control plane ENIs in the control-plane subnets)", d.control_plane or d.vpc)

    def call(service: dict[str, Any] | None, why: str) -> None:
        if not service:
            return
        ns, name = service.get("namespace") or "default", service.get("name")
        port = as_int(service.get("port")) or 443
        svc = d.cluster.service(ns, name)
        if svc is None:
            d.unresolved.append({"from": [src.ref], "to": f"{ns}/Service/{name}", "why": why, "problem": "no such Service"})
            return
        backends = d.cluster.backends(svc, port)
        if not backends:
            d.unresolved.append({"from": [src.ref], "to": f"{ns}/Service/{name}:{port}", "why": why,
                                 "problem": "no pod behind this Service port"})
        for pod, number, proto, _sp in backends:
            d.need(src, pod, number, proto, why)

    for o in d.objects:
        if o.kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            for w in o.manifest.get("webhooks") or []:
                call((w.get("clientConfig") or {}).get("service"), f"API server -> webhook {w.get('name')}")
        elif o.kind == "CustomResourceDefinition":
            conv = (o.manifest.get("spec") or {}).get("conversion") or {}
            if conv.get("strategy") == "Webhook":
                call(((conv.get("webhook") or {}).get("clientConfig") or {}).get("service"),
                     f"API server -> conversion webhook of {o.name}")
        elif o.kind == "APIService":
            call((o.manifest.get("spec") or {}).get("service"), f"API server -> aggregated API {o.name}")
