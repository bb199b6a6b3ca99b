"""The connections the platform really makes, derived from the plan's objects and resources, each
judged by the NetworkPolicy evaluator (plan/reachability/):

- DNS: every pod -> the resolver its dnsPolicy names (Pod.resolver), UDP/TCP 53: CoreDNS (the kube-dns
  Service) for ClusterFirst; the VPC's Route 53 Resolver (base + 2) for Default (the node's
  resolv.conf); dnsConfig.nameservers for None. hostNetwork pods resolve through the node.
- Pod Identity: every pod whose service account has a PodIdentityAssociation (a resource, or an EKS
  add-on's `podIdentityAssociations`) -> the node's Pod Identity agent, 169.254.170.23 TCP 80.
- The API server: every pod whose service account is a subject of a RoleBinding/ClusterRoleBinding
  -> the cluster endpoint's ENIs (in the EKS cluster's own subnets, `control_plane_cidrs_of`) TCP
  443; and the API server, from those ENIs, -> every webhook's Service (Validating/MutatingWebhookConfiguration
  clientConfig.service, CRD conversion webhooks, APIService.spec.service).
- Prometheus -> every target of the ServiceMonitors and PodMonitors it selects (its
  serviceMonitorSelector/NamespaceSelector; the monitor's selector and namespaceSelector -> Services
  -> the endpoint's `port` name -> the Service port -> targetPort -> pods), and -> its Alertmanagers.
  A ServiceMonitor endpoint whose port name no selected Service has, a ServiceMonitor that selects
  no Service, a PodMonitor port no selected pod has, and a monitor no Prometheus selects are findings.
- The gateway proxies (pods of a Gateway) -> each backendRef of the HTTPRoutes attached to it
  (Services, kgateway Backends by host, InferencePools: their endpoint picker and pods).
- Addresses in the objects: URLs and host/port pairs in container env and in the ConfigMaps a pod
  mounts (LangFuse -> ClickHouse/PostgreSQL, OTel -> LangFuse, kagent -> its PostgreSQL, Milvus ->
  etcd and S3 from its config), ModelConfig base URLs (agents -> the gateway), RemoteMCPServer URLs
  (agents and the kagent controller -> tools), KEDA triggers (the KEDA operator -> Prometheus, Redis).
- Endpoints compiled into an image (`images.BUILT_IN_ENDPOINTS`: OpenCost -> the AWS price list and EC2).
- Connection Secrets: a pod that reads a Secret the program builds from an RDS instance or an
  ElastiCache group -> the VPC CIDR on its port; the data layer's redis/milvus connection Secrets ->
  the in-cluster Valkey / Milvus Service.
- The NLB -> the pods of LoadBalancer Services (IP targets: the NLB's ENIs in the VPC).

Addresses: an in-cluster name (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`, `pod.svc.ns.svc...`)
is the Service's pods on the resolved targetPort; `*.rds.amazonaws.com` / `*.cache.amazonaws.com`
the VPC CIDR; S3 (`s3.<region>.amazonaws.com`, `*.s3...`) the public range the policies use for it
(the VPC gateway endpoint's prefix list: public S3 addresses); any other name the public range.

EKS add-on pods (CoreDNS, kube-proxy, aws-node, the Pod Identity agent, the EBS CSI driver) are not
in the plan's objects: they are modelled from the add-ons the plan declares (ADDON_PODS), as are the
built-in `default/kubernetes` Service and the kubelet Service prometheus-operator maintains
(`--kubelet-service`). Operator-made pods come from plan/operators.py; a Prometheus or Alertmanager
without pods in the objects gets the pod prometheus-operator would create (its labels and ports).

The package: `derivation` (Need, Derivation, address resolution), `addons` (what no object
describes), one module per family of connections (`platform`, `monitoring`, `routes`, `addresses`),
and here the cluster they are judged on (`build`) and the verdicts.
"""

from __future__ import annotations

import json
from typing import Any

from components import names
from plan.connections.addons import (
    ADDON,
    ADDON_PODS,
    ADDON_SERVICES,
    KUBERNETES_SERVICE,
    addon_names,
    control_plane_cidrs_of,
    kubelet_services,
    node_cidrs_of,
    operator_pods,
    service_cidr_of,
    synthetic_pod,
    vpc_cidr_of,
)
from plan.connections.addresses import addresses, connection_secrets, custom_resources, load_balancers
from plan.connections.derivation import Derivation, Need, service_key
from plan.connections.images import built_in_endpoints
from plan.connections.monitoring import monitoring
from plan.connections.platform import api_server, dns, pod_identity, webhooks
from plan.connections.routes import gateway_extensions, routes
from plan.objects import declared
from plan.reachability import (
    NS_NAME_LABEL,
    Cluster,
    External,
    IPSet,
    Pod,
    container_ports,
    matrix_lines,
    namespace_matrix,
    namespaces_of,
    pods_of,
    policies_of,
    probes,
)


def build(plan: Any, vpc_cidr: str | None = None) -> Derivation:
    """The cluster of the plan (its objects, the EKS add-ons' pods, operator pods) and every need."""
    objects = list(plan.objects or declared(plan))
    vpc_cidr = vpc_cidr or vpc_cidr_of(plan)
    vpc = IPSet.of(vpc_cidr)
    nodes = _union(node_cidrs_of(plan, objects))   # pods have their node's subnet's addresses (VPC CNI)
    control_plane = _union(control_plane_cidrs_of(plan))
    pods = pods_of(objects)
    addons = addon_names(plan.resources)
    addon_rbac: set[tuple[str, str]] = set()
    for a in addons:
        for spec in ADDON_PODS.get(a, []):
            pods.append(synthetic_pod("kube-system", spec, f"eks-addon:{a}"))
            if spec.get("rbac"):
                addon_rbac.add(("kube-system", spec["sa"]))
    pods += operator_pods(objects, pods)
    services = [o.manifest for o in objects if o.kind == "Service" and not o.group]
    services += [s for a in addons for s in ADDON_SERVICES.get(a, [])]
    services += [KUBERNETES_SERVICE] + kubelet_services(objects)
    cluster = Cluster(pods, policies_of(objects), namespaces_of(objects), services, pod_ips=nodes,
                      service_ips=IPSet.of(service_cidr_of(plan, vpc_cidr)))
    d = Derivation(cluster, vpc, objects, list(plan.resources))
    d.control_plane = control_plane
    api = External("kube-apiserver (EKS endpoint ENIs in the control-plane subnets)", control_plane)
    d.api = api
    d.vpc_resolver = External("Route 53 Resolver (the VPC's base address + 2)",
                              IPSet.of(f"{names.vpc_resolver_ip(vpc_cidr)}/32"))
    d.selectorless[("default", "kubernetes")] = api
    for s in kubelet_services(objects):
        d.selectorless[service_key(s)] = External("kubelets (node IPs in the node subnets)", nodes)
    dns(d)
    pod_identity(d)
    api_server(d, api, addon_rbac)
    webhooks(d)
    monitoring(d)
    routes(d)
    gateway_extensions(d)
    addresses(d)
    built_in_endpoints(d, plan.region)
    custom_resources(d)
    connection_secrets(d)
    load_balancers(d)
    return d


def _union(cidrs: list[str]) -> IPSet:
    out = IPSet()
    for c in cidrs:
        out = out | IPSet.of(c)
    return out


# ------------------------------------------------------------------------------------ verdicts

def enforced(resources: list[Any]) -> bool | None:
    """Does the VPC CNI enforce NetworkPolicies? Only with the vpc-cni add-on's configuration value
    `enableNetworkPolicy: "true"` (EKS: network policy is off by default). None: no vpc-cni add-on
    in the plan (another CNI; not judged)."""
    for r in resources:
        if r.type == ADDON and r.inputs.get("addonName") == "vpc-cni":
            raw = r.inputs.get("configurationValues")
            try:
                values = json.loads(raw) if isinstance(raw, str) else (raw or {})
            except ValueError:
                return False
            return str(values.get("enableNetworkPolicy", "false")).lower() == "true"
    return None


def judge(d: Derivation) -> list[dict[str, Any]]:
    """Every need with its verdict: `allowed` (Kubernetes semantics) and, where it goes through a
    ClusterIP or to the API server's Service, `vpc_cni` (the VPC CNI's verdict on that path)."""
    out = []
    for n in sorted(d.needs.values(), key=lambda n: (n.src.ref, n.dst.ref, n.port, n.protocol)):
        allowed = d.cluster.allows(n.src, n.dst, n.port, n.protocol, must=True)
        entry: dict[str, Any] = {"from": n.src.ref, "to": n.dst.ref, "port": n.port, "protocol": n.protocol,
                                 "why": "; ".join(n.why), "allowed": allowed}
        if isinstance(n.src, External):
            entry["from_peer"] = n.src.name
        if isinstance(n.dst, External):
            entry["to_peer"] = n.dst.name
        if n.service is not None and isinstance(n.src, Pod) and not n.src.host_network:
            entry["via"] = f"{service_key(n.service)[0]}/Service/{service_key(n.service)[1]}:{n.service_port}"
            vpc_cni = d.cluster.vpc_cni_egress(n.src, n.service, n.service_port or n.port, n.protocol, n.port) and \
                d.cluster.ingress(n.dst, n.src, n.port, n.protocol, must=True)
            entry["vpc_cni"] = vpc_cni
        out.append(entry)
    return out


def reachability(plan: Any, vpc_cidr: str | None = None) -> dict[str, Any]:
    """The plan's `reachability`: connections, the denied ones, findings, the namespace matrix."""
    d = build(plan, vpc_cidr)
    connections = judge(d)
    findings = list(d.findings)
    on = enforced(plan.resources)
    if on is False:
        findings.append({"object": None, "source": next((r.urn for r in plan.resources if r.type == ADDON
                                                         and r.inputs.get("addonName") == "vpc-cni"), None),
                         "release": None, "check": "reachability",
                         "message": "the vpc-cni add-on does not enable network policy (configurationValues "
                                    "{\"enableNetworkPolicy\": \"true\"}): every NetworkPolicy is accepted and ignored"})
    matrix = namespace_matrix(d.cluster, d.cluster.pods + probes(
        [ns for ns in d.cluster.namespaces if ns not in ("kube-public", "kube-node-lease")]))
    return {
        "enforced": on,
        "connections": connections,
        "denied": [c for c in connections if not c["allowed"]],
        "vpc_cni_denied": [c for c in connections if c["allowed"] and c.get("vpc_cni") is False],
        "findings": findings,
        "unresolved": d.unresolved,
        "namespaces": matrix,
    }


def rejections(reach: dict[str, Any]) -> list[dict[str, Any]]:
    """Admission-style findings (check "reachability") that make the plan exit 1: every needed
    connection that is denied, every monitor finding, policies the CNI would not enforce."""
    out = []
    for c in reach.get("denied") or []:
        out.append({"object": c["from"], "source": None, "release": None, "check": "reachability",
                    "message": f"needed connection denied by NetworkPolicy: {c['from']} -> {c['to']} "
                               f"{c['port']}/{c['protocol']} ({c['why']})"})
    if reach.get("enforced"):   # the VPC CNI enforces: what its agent drops fails on the cluster too
        for c in reach.get("vpc_cni_denied") or []:
            out.append({"object": c["from"], "source": None, "release": None, "check": "reachability",
                        "message": f"needed connection dropped by the VPC CNI (it judges the ClusterIP before "
                                   f"translation): {c['from']} -> {c['to']} {c['port']}/{c['protocol']} ({c['why']})"})
    if reach.get("enforced") is False:
        out.append({"object": None, "source": None, "release": None, "check": "reachability",
                    "message": "NetworkPolicies are not enforced: the vpc-cni add-on lacks enableNetworkPolicy"})
    return out + list(reach.get("findings") or [])


def summary_lines(reach: dict[str, Any]) -> list[str]:
    conns = reach["connections"]
    lines = [f"{len(conns)} connections the platform makes, {len(reach['denied'])} denied by NetworkPolicy"
             + (f", {len(reach['vpc_cni_denied'])} more denied by the VPC CNI (ClusterIP)" if reach["vpc_cni_denied"] else "")
             + f"; {len(reach['findings'])} finding(s), {len(reach['unresolved'])} unresolved"]
    if reach.get("enforced") is False:
        lines.append("NetworkPolicies are NOT enforced: the vpc-cni add-on lacks enableNetworkPolicy")
    for c in reach["denied"]:
        lines.append(f"DENIED {c['from']} -> {c['to']} {c['port']}/{c['protocol']}: {c['why']}")
    for f in reach["findings"]:
        lines.append(f"FINDING {f['object'] or f['source']}: {f['message']}")
    return lines + matrix_lines(reach["namespaces"])


__all__ = ["Derivation", "Need", "build", "judge", "reachability", "rejections", "summary_lines", "enforced",
           "NS_NAME_LABEL", "container_ports"]
