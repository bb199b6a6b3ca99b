"""The connections the platform really makes, derived from the plan's objects and resources, each
judged by the NetworkPolicy evaluator (plan/reachability.py):

- DNS: every pod (hostNetwork ones resolve through the node) -> CoreDNS (the kube-dns Service) UDP/TCP 53.
- Pod Identity: every pod whose service account has a PodIdentityAssociation (a resource, or an EKS
  add-on's `podIdentityAssociations`) -> the node's Pod Identity agent, 169.254.170.23 TCP 80.
- The API server: every pod whose service account is a subject of a RoleBinding/ClusterRoleBinding
  -> the cluster endpoint's ENIs (inside the VPC CIDR) TCP 443; and the API server, from the
  control plane's ENIs in the VPC, -> every webhook's Service (Validating/MutatingWebhookConfiguration
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
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from plan.admission.references import pod_references
from plan.reachability import (
    NS_NAME_LABEL,
    PUBLIC,
    PUBLIC_DESC,
    Cluster,
    ContainerPort,
    Endpoint,
    External,
    IPSet,
    Pod,
    as_int,
    container_ports,
    namespace_matrix,
    namespaces_of,
    pods_of,
    policies_of,
    probes,
    selector_matches,
)

ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
ADDON = "aws:eks/addon:Addon"
VPC = "aws:ec2/vpc:Vpc"
RDS = "aws:rds/instance:Instance"
ELASTICACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
POD_IDENTITY_AGENT = IPSet.of("169.254.170.23/32")
SVC_SUFFIXES = (".svc.cluster.local", ".svc")
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(?:[^@/\s,'\"]*@)?([A-Za-z0-9.$()_-]+)(?::(\d+))?")
HOST_PORT = re.compile(r"^([a-z0-9][a-z0-9.-]*[a-z0-9]):(\d+)$")
SCHEME_PORTS = {"http": 80, "https": 443, "grpc": 80, "redis": 6379, "rediss": 6379, "postgres": 5432,
                "postgresql": 5432, "clickhouse": 9000, "mysql": 3306, "mongodb": 27017}
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when present: the same documents, 10x faster
HOST_PORT_DEFAULTS = {"DATABASE": 5432, "POSTGRES": 5432, "REDIS": 6379, "CLICKHOUSE": 8123}

# What each EKS add-on runs (its manifests as EKS installs them: labels, ports, hostNetwork, service
# account): the add-ons are EKS-managed, so no object of the plan describes their pods.
ADDON_PODS: dict[str, list[dict[str, Any]]] = {
    "coredns": [{"kind": "Deployment", "name": "coredns", "sa": "coredns", "rbac": True,
                 "labels": {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"},
                 "ports": [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]}],
    "kube-proxy": [{"kind": "DaemonSet", "name": "kube-proxy", "sa": "kube-proxy", "host": True, "rbac": True,
                    "labels": {"k8s-app": "kube-proxy"}, "ports": []}],
    "vpc-cni": [{"kind": "DaemonSet", "name": "aws-node", "sa": "aws-node", "host": True, "rbac": True,
                 "labels": {"k8s-app": "aws-node"}, "ports": [("metrics", 61678, "TCP")]}],
    "eks-pod-identity-agent": [{"kind": "DaemonSet", "name": "eks-pod-identity-agent", "sa": "eks-pod-identity-agent",
                                "host": True, "labels": {"app.kubernetes.io/name": "eks-pod-identity-agent"},
                                "ports": [("proxy", 80, "TCP"), ("health", 2703, "TCP")]}],
    "aws-ebs-csi-driver": [
        {"kind": "Deployment", "name": "ebs-csi-controller", "sa": "ebs-csi-controller-sa", "rbac": True,
         "labels": {"app": "ebs-csi-controller", "app.kubernetes.io/name": "aws-ebs-csi-driver"},
         "ports": [("healthz", 9808, "TCP")]},
        {"kind": "DaemonSet", "name": "ebs-csi-node", "sa": "ebs-csi-node-sa", "rbac": True,
         "labels": {"app": "ebs-csi-node", "app.kubernetes.io/name": "aws-ebs-csi-driver"},
         "ports": [("healthz", 9808, "TCP")]}],
}
ADDON_SERVICES: dict[str, list[dict[str, Any]]] = {
    "coredns": [{"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "kube-dns", "namespace": "kube-system",
                              "labels": {"k8s-app": "kube-dns", "eks.amazonaws.com/component": "kube-dns"}},
                 "spec": {"selector": {"k8s-app": "kube-dns"}, "clusterIP": "172.20.0.10",
                          "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}],
}
KUBERNETES_SERVICE = {"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "kubernetes", "namespace": "default",
                                   "labels": {"component": "apiserver", "provider": "kubernetes"}},
                      "spec": {"clusterIP": "172.20.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 443}]}}
KUBELET_PORTS = [{"name": "https-metrics", "port": 10250}, {"name": "http-metrics", "port": 10255},
                 {"name": "cadvisor", "port": 4194}]


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
        external = self.selectorless.get(_key(svc))
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
            self.unresolved.append({"from": [p.ref for p in srcs], "to": f"{_key(svc)[0]}/Service/{_key(svc)[1]}:{port}",
                                    "why": why, "problem": "no pod behind this Service port"})
        for pod, number, proto, sp in backends:
            for s in srcs:
                self.need(s, pod, number, proto, why, None if headless else svc, as_int(sp.get("port")))

    # --- lookups
    def pods_where(self, namespace: str | None = None, labels: dict[str, str] | None = None,
                   sa: str | None = None) -> list[Pod]:
        return [p for p in self.cluster.pods if not p.wildcard
                and (namespace is None or p.namespace == namespace)
                and (labels is None or selector_matches({"matchLabels": labels}, p.labels))
                and (sa is None or p.service_account == sa)]

    def pods_of_object(self, obj: Any) -> list[Pod]:
        """The pods an operator made for `obj`: plan/operators.py gives them the `source` of the object
        they come from and sets `controller`. A rendered object shares its release's source, so
        there the pod must also carry the object's name (a label value or its own name)."""
        out = [p for p in self.cluster.pods if p.source is not None and getattr(p.source, "controller", None)
               and p.source.source == obj.source and p.namespace == obj.namespace]
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
    return (*_key(svc), port or 0)


def _key(svc: dict[str, Any]) -> tuple[str, str]:
    md = svc.get("metadata") or {}
    return (md.get("namespace") or "default", md.get("name") or "")


# ------------------------------------------------------------------------------------ building

def addon_names(resources: list[Any]) -> list[str]:
    return [r.inputs.get("addonName") for r in resources if r.type == ADDON]


def _synthetic_pod(ns: str, spec: dict[str, Any], source: str) -> Pod:
    return Pod(ns, f"{spec['kind']}/{spec['name']}", dict(spec["labels"]),
               tuple(ContainerPort(n, p, proto) for n, p, proto in spec["ports"]),
               host_network=bool(spec.get("host")), service_account=spec["sa"], source=None)


def operator_pods(objects: list[Any], existing: list[Pod]) -> list[Pod]:
    """The pods prometheus-operator makes for a Prometheus / Alertmanager that has none among the
    objects (prometheus-operator pkg/prometheus/statefulset.go, pkg/alertmanager/statefulset.go:
    selector labels and the web port)."""
    out = []
    for o in objects:
        if o.group != "monitoring.coreos.com" or o.kind not in ("Prometheus", "Alertmanager"):
            continue
        spec = o.manifest.get("spec") or {}
        ns, name = o.namespace or "default", o.name
        kind_label = "prometheus" if o.kind == "Prometheus" else "alertmanager"
        if any(p.namespace == ns and p.labels.get("app.kubernetes.io/name") == kind_label
               and name in (p.labels.get("operator.prometheus.io/name"), p.labels.get(kind_label),
                            p.labels.get("app.kubernetes.io/instance")) for p in existing):
            continue
        labels = {**{k: str(v) for k, v in ((spec.get("podMetadata") or {}).get("labels") or {}).items()},
                  "app.kubernetes.io/name": kind_label, "app.kubernetes.io/instance": name,
                  "app.kubernetes.io/managed-by": "prometheus-operator", kind_label: name}
        if o.kind == "Prometheus":
            labels.update({"operator.prometheus.io/name": name, "operator.prometheus.io/shard": "0"})
            ports = (ContainerPort(spec.get("portName") or "web", 9090), ContainerPort("reloader-web", 8080))
        else:
            ports = (ContainerPort(spec.get("portName") or "web", 9093), ContainerPort("reloader-web", 8080),
                     ContainerPort("mesh-tcp", 9094), ContainerPort("mesh-udp", 9094, "UDP"))
        out.append(Pod(ns, f"StatefulSet/{kind_label}-{name}", labels, ports,
                       service_account=spec.get("serviceAccountName") or "default", source=None))
    return out


def kubelet_services(objects: list[Any]) -> list[dict[str, Any]]:
    """The kubelet Service prometheus-operator maintains (`--kubelet-service=ns/name`): its endpoints
    are the nodes."""
    from plan.admission.pod_security import pod_templates

    out = []
    for o in objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            for c in spec.get("containers") or []:
                for arg in c.get("args") or []:
                    if isinstance(arg, str) and arg.startswith("--kubelet-service="):
                        ns, _, name = arg.split("=", 1)[1].partition("/")
                        out.append({"apiVersion": "v1", "kind": "Service",
                                    "metadata": {"name": name, "namespace": ns, "labels": {
                                        "app.kubernetes.io/name": "kubelet", "k8s-app": "kubelet",
                                        "app.kubernetes.io/managed-by": "prometheus-operator"}},
                                    "spec": {"clusterIP": "None", "ports": [dict(p, targetPort=p["port"]) for p in KUBELET_PORTS]}})
    return out


def vpc_cidr_of(plan: Any) -> str:
    vpcs = [r for r in plan.resources if r.type == VPC]
    return vpcs[0].inputs["cidrBlock"] if vpcs else "10.0.0.0/8"


def service_cidr_of(plan: Any, vpc_cidr: str) -> str:
    """The cluster's service CIDR: EKS picks 172.20.0.0/16 when the VPC is in 10.0.0.0/8, else
    10.100.0.0/16, unless kubernetesNetworkConfig.serviceIpv4Cidr says otherwise."""
    for r in plan.resources:
        cfg = r.inputs.get("kubernetesNetworkConfig") if isinstance(r.inputs, dict) else None
        if isinstance(cfg, dict) and cfg.get("serviceIpv4Cidr"):
            return cfg["serviceIpv4Cidr"]
    return "172.20.0.0/16" if ipaddress.ip_network(vpc_cidr).subnet_of(ipaddress.ip_network("10.0.0.0/8")) else "10.100.0.0/16"


def build(plan: Any, vpc_cidr: str | None = None) -> Derivation:
    """The cluster of the plan (its objects, the EKS add-ons' pods, operator pods) and every need."""
    from plan.objects import declared

    objects = list(plan.objects or declared(plan))
    vpc_cidr = vpc_cidr or vpc_cidr_of(plan)
    vpc = IPSet.of(vpc_cidr)
    pods = pods_of(objects)
    addons = addon_names(plan.resources)
    addon_rbac: set[tuple[str, str]] = set()
    for a in addons:
        for spec in ADDON_PODS.get(a, []):
            pods.append(_synthetic_pod("kube-system", spec, f"eks-addon:{a}"))
            if spec.get("rbac"):
                addon_rbac.add(("kube-system", spec["sa"]))
    pods += operator_pods(objects, pods)
    services = [o.manifest for o in objects if o.kind == "Service" and not o.group]
    services += [s for a in addons for s in ADDON_SERVICES.get(a, [])]
    services += [KUBERNETES_SERVICE] + kubelet_services(objects)
    cluster = Cluster(pods, policies_of(objects), namespaces_of(objects), services, pod_ips=vpc,
                      service_ips=IPSet.of(service_cidr_of(plan, vpc_cidr)))
    d = Derivation(cluster, vpc, objects, list(plan.resources))
    api = External("kube-apiserver (EKS endpoint ENIs in the VPC)", vpc)
    d.api = api
    d.selectorless[("default", "kubernetes")] = api
    for s in kubelet_services(objects):
        d.selectorless[_key(s)] = External("kubelets (node IPs in the VPC)", vpc)
    dns(d)
    pod_identity(d)
    api_server(d, api, addon_rbac)
    webhooks(d)
    monitoring(d)
    routes(d)
    gateway_extensions(d)
    addresses(d)
    custom_resources(d)
    connection_secrets(d)
    load_balancers(d)
    return d


# ------------------------------------------------------------------------------------ derivations

def dns(d: Derivation) -> None:
    svc = d.cluster.service("kube-system", "kube-dns")
    srcs = [p for p in d.cluster.pods if not p.wildcard and not p.host_network and p.labels.get("k8s-app") != "kube-dns"]
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
    src = External("kube-apiserver (EKS control plane ENIs in the VPC)", d.vpc)

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


def _monitor_namespaces(d: Derivation, sel: dict[str, Any] | None, own: str) -> list[str]:
    """A ServiceMonitor/PodMonitor namespaceSelector: {any: true}, {matchNames: [...]}, absent = own."""
    sel = sel or {}
    if sel.get("any"):
        return sorted(d.cluster.namespaces)
    return list(sel.get("matchNames") or [own])


def _selected_by(d: Derivation, prom: Any, monitor: Any, kind: str) -> bool:
    """Does Prometheus `prom` pick `monitor` (a ServiceMonitor or PodMonitor)? nil selector: none;
    nil namespace selector: the Prometheus's own namespace only (prometheus-operator semantics)."""
    spec = prom.manifest.get("spec") or {}
    sel, ns_sel = spec.get(f"{kind}Selector"), spec.get(f"{kind}NamespaceSelector")
    if sel is None or not selector_matches(sel, monitor.metadata.get("labels") or {}):
        return False
    if ns_sel is None:
        return monitor.namespace == prom.namespace
    return selector_matches(ns_sel, d.cluster.namespace_labels(monitor.namespace or "default"))


def _finding(obj: Any, message: str) -> dict[str, Any]:
    return {"object": obj.ref, "source": obj.source, "release": obj.release, "check": "reachability",
            "message": message}


def monitoring(d: Derivation) -> None:
    proms = [o for o in d.objects if o.group == "monitoring.coreos.com" and o.kind == "Prometheus"]
    prom_pods = {o.ref: (d.pods_of_object(o) or d.pods_where(o.namespace, {"app.kubernetes.io/name": "prometheus",
                                                                          "operator.prometheus.io/name": o.name}))
                 for o in proms}
    for sm in (o for o in d.objects if o.group == "monitoring.coreos.com" and o.kind == "ServiceMonitor"):
        spec = sm.manifest.get("spec") or {}
        scrapers = [p for prom in proms if _selected_by(d, prom, sm, "serviceMonitor") for p in prom_pods[prom.ref]]
        if proms and not any(_selected_by(d, prom, sm, "serviceMonitor") for prom in proms):
            d.findings.append(_finding(sm, "no Prometheus selects this ServiceMonitor (serviceMonitorSelector / "
                                           "serviceMonitorNamespaceSelector): its targets are never scraped"))
        namespaces = _monitor_namespaces(d, spec.get("namespaceSelector"), sm.namespace or "default")
        services = [s for (ns, _n), s in d.cluster.services.items() if ns in namespaces
                    and selector_matches(spec.get("selector") or {}, {k: str(v) for k, v in
                                                                      ((s.get("metadata") or {}).get("labels") or {}).items()})]
        if not services:
            d.findings.append(_finding(sm, f"selects no Service (selector {spec.get('selector')} in "
                                           f"{', '.join(namespaces) if len(namespaces) < 5 else 'any namespace'})"))
            continue
        for ep in spec.get("endpoints") or []:
            name, target = ep.get("port"), ep.get("targetPort")
            if name is not None:
                having = [s for s in services if any(sp.get("name") == name for sp in (s.get("spec") or {}).get("ports") or [])]
                if not having:
                    names = sorted({str(sp.get("name")) for s in services for sp in (s.get("spec") or {}).get("ports") or []})
                    d.findings.append(_finding(sm, f"endpoint port {name!r} is not a port name of the Services it selects "
                                                   f"({', '.join(f'{_key(s)[0]}/{_key(s)[1]}' for s in services)}: "
                                                   f"{', '.join(names)}): nothing is scraped"))
                for s in having:
                    d.to_service(scrapers, s, name, f"Prometheus scrape (ServiceMonitor {sm.namespace}/{sm.name})",
                                 direct=True)
            elif target is not None:   # a port of the pods behind the Services
                for s in services:
                    for pod in _service_pods(d, s):
                        number = as_int(target)
                        numbers = [number] if number is not None else pod.named_port(str(target), "TCP")
                        for n in numbers:
                            for src in scrapers:
                                d.need(src, pod, n, "TCP", f"Prometheus scrape (ServiceMonitor {sm.namespace}/{sm.name})")
    for pm in (o for o in d.objects if o.group == "monitoring.coreos.com" and o.kind == "PodMonitor"):
        spec = pm.manifest.get("spec") or {}
        scrapers = [p for prom in proms if _selected_by(d, prom, pm, "podMonitor") for p in prom_pods[prom.ref]]
        if proms and not scrapers:
            d.findings.append(_finding(pm, "no Prometheus selects this PodMonitor: its targets are never scraped"))
        namespaces = _monitor_namespaces(d, spec.get("namespaceSelector"), pm.namespace or "default")
        pods = [p for p in d.cluster.pods if not p.wildcard and p.namespace in namespaces
                and selector_matches(spec.get("selector") or {}, p.labels)]
        if not pods:
            d.findings.append(_finding(pm, f"selects no pod (selector {spec.get('selector')})"))
        for ep in spec.get("podMetricsEndpoints") or []:
            name = ep.get("port")
            number = as_int(ep.get("portNumber")) or as_int(ep.get("targetPort"))
            for pod in pods:
                numbers = [number] if number is not None else pod.named_port(str(name), "TCP")
                for n in numbers:
                    for src in scrapers:
                        d.need(src, pod, n, "TCP", f"Prometheus scrape (PodMonitor {pm.namespace}/{pm.name})")
            if name is not None and pods and not any(p.named_port(str(name), "TCP") for p in pods):
                d.findings.append(_finding(pm, f"endpoint port {name!r} is not a container port name of the pods it selects"))
    for prom in proms:
        for am in (((prom.manifest.get("spec") or {}).get("alerting") or {}).get("alertmanagers") or []):
            svc = d.cluster.service(am.get("namespace") or prom.namespace, am.get("name"))
            d.to_service(prom_pods[prom.ref], svc, am.get("port"), "Prometheus -> Alertmanager",
                         f"{am.get('namespace')}/Service/{am.get('name')}", direct=True)


def _service_pods(d: Derivation, svc: dict[str, Any]) -> list[Pod]:
    sel = (svc.get("spec") or {}).get("selector") or {}
    ns = _key(svc)[0]
    return [p for p in d.cluster.pods if sel and not p.wildcard and p.namespace == ns
            and selector_matches({"matchLabels": sel}, p.labels)]


def _gateway_pods(d: Derivation, gw: Any) -> list[Pod]:
    return d.pods_of_object(gw) or d.pods_where(gw.namespace, {"gateway.networking.k8s.io/gateway-name": gw.name})


def _backend_objects(d: Derivation, kind: str, ns: str, name: str) -> list[Any]:
    return [o for o in d.objects if o.kind == kind and o.namespace == ns and o.name == name]


def _route_backend(d: Derivation, srcs: list[Pod], ref: dict[str, Any], route_ns: str, why: str, depth: int = 0) -> None:
    kind, group = ref.get("kind", "Service"), ref.get("group", "")
    ns, name = ref.get("namespace") or route_ns, ref.get("name")
    if kind == "Service" and group in ("", "core"):
        d.to_service(srcs, d.cluster.service(ns, name), as_int(ref.get("port")) or ref.get("port"), why,
                     f"{ns}/Service/{name}", direct=True)
    elif kind == "Backend" and depth < 4:   # kgateway Backend: static hosts, priority groups of Backends
        for b in _backend_objects(d, "Backend", ns, name):
            spec = b.manifest.get("spec") or {}
            for h in ((spec.get("static") or {}).get("hosts") or []):
                d.to_address(srcs, str(h.get("host")), as_int(h.get("port")), why)
            for group_ in spec.get("priorityGroups") or []:
                for inner in group_.get("backendRefs") or []:
                    _route_backend(d, srcs, {"kind": "Backend", **inner}, ns, why, depth + 1)
    elif kind == "InferencePool":
        for pool in _backend_objects(d, "InferencePool", ns, name):
            spec = pool.manifest.get("spec") or {}
            sel = spec.get("selector") or {}
            sel = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
            ports = [as_int(p.get("number")) for p in spec.get("targetPorts") or []] or [as_int(spec.get("targetPortNumber"))]
            for pod in d.pods_where(ns, {k: str(v) for k, v in sel.items()}):
                for n in ports:
                    if n:
                        for s in srcs:
                            d.need(s, pod, n, "TCP", f"{why} (InferencePool {name})")
            epp = spec.get("endpointPickerRef") or spec.get("extensionRef") or {}
            if epp.get("name"):
                port = as_int((epp.get("port") or {}).get("number")) or as_int(epp.get("portNumber")) or 9002
                d.to_service(srcs, d.cluster.service(ns, epp["name"]), port, f"{why} (endpoint picker of {name})",
                             f"{ns}/Service/{epp['name']}")


def routes(d: Derivation) -> None:
    gateways = {(o.namespace, o.name): o for o in d.objects if o.kind == "Gateway" and o.group == "gateway.networking.k8s.io"}
    for route in (o for o in d.objects if o.kind in ("HTTPRoute", "GRPCRoute") and o.group == "gateway.networking.k8s.io"):
        spec = route.manifest.get("spec") or {}
        for parent in spec.get("parentRefs") or []:
            if parent.get("kind", "Gateway") != "Gateway":
                continue
            gw = gateways.get((parent.get("namespace") or route.namespace, parent.get("name")))
            if gw is None:
                continue
            srcs = _gateway_pods(d, gw)
            if not srcs:
                d.unresolved.append({"from": f"{gw.namespace}/Gateway/{gw.name}", "to": route.ref,
                                     "why": "gateway -> route backends", "problem": "no proxy pods of this Gateway"})
                continue
            for rule in spec.get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    _route_backend(d, srcs, ref, route.namespace, f"gateway -> {route.kind} {route.namespace}/{route.name}")


def gateway_extensions(d: Derivation) -> None:
    """The proxies of a namespace's Gateways -> the addresses in its gateway extensions and policies
    (e.g. a JWT provider's remote JWKS, by URL or by a Backend)."""
    kinds = {"GatewayExtension", "TrafficPolicy", "AgentgatewayPolicy", "BackendConfigPolicy"}
    for o in d.objects:
        if o.kind not in kinds:
            continue
        srcs = [p for gw in d.objects if gw.kind == "Gateway" and gw.group == "gateway.networking.k8s.io"
                and gw.namespace == o.namespace for p in _gateway_pods(d, gw)]
        if not srcs:
            continue
        stack: list[Any] = [o.manifest.get("spec") or {}]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("backendRef")
                if isinstance(ref, dict) and ref.get("kind") == "Backend":
                    _route_backend(d, srcs, ref, o.namespace, f"gateway -> {o.kind} {o.namespace}/{o.name}")
                    continue   # the Backend is where it connects (the URL is what it asks for)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str) and "://" in node:
                d.to_url(srcs, node, f"gateway -> {o.kind} {o.namespace}/{o.name}")


def _mounted_configmaps(spec: dict[str, Any]) -> set[str]:
    """ConfigMaps a pod reads (volumes, projected, envFrom, env; optional ones too)."""
    return {name for kind, name in pod_references(spec, optional=True) if kind == "ConfigMap" and name}


def _milvus_config(d: Derivation, srcs: list[Pod], text: str, why: str) -> None:
    """Milvus' config (milvus.yaml): etcd.endpoints ("host:port") and minio.address/port (S3)."""
    try:
        doc = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        return
    if not isinstance(doc, dict):
        return
    for ep in ((doc.get("etcd") or {}).get("endpoints") or []) if isinstance(doc.get("etcd"), dict) else []:
        m = HOST_PORT.match(str(ep))
        if m:
            d.to_address(srcs, m[1], int(m[2]), f"{why}: etcd")
    minio = doc.get("minio")
    if isinstance(minio, dict) and minio.get("address"):
        port = as_int(minio.get("port")) or (443 if minio.get("useSSL") else 9000)
        d.to_address(srcs, str(minio["address"]), port, f"{why}: object storage")


def _config_strings(text: str) -> list[str]:
    """The string values of a config file: its YAML/JSON scalars (comments are not config), else
    its lines without `#` comments."""
    try:
        doc = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, (dict, list)):
        out: list[str] = []
        stack: list[Any] = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str):
                out.append(node)
        return out
    return [line.split("#", 1)[0] for line in text.splitlines() if not line.lstrip().startswith(("#", "//"))]


def addresses(d: Derivation) -> None:
    """URLs and host/port pairs in container env and in the ConfigMaps each pod mounts."""
    from plan.admission.pod_security import pod_templates

    configmaps = {(o.namespace, o.name): o for o in d.objects if o.kind == "ConfigMap" and not o.group}
    by_source: dict[int, list[Pod]] = {}
    for p in d.cluster.pods:
        if p.source is not None:
            by_source.setdefault(id(p.source), []).append(p)
    for o in d.objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            srcs = by_source.get(id(o), [])
            if not srcs:
                continue
            for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
                env = {e.get("name"): e.get("value") for e in c.get("env") or [] if isinstance(e.get("value"), str)}
                for name, value in env.items():
                    why = f"{o.kind}/{o.name} env {name}"
                    if "://" in value:
                        d.to_url(srcs, value, why)
                    elif name.endswith("_HOST") and value:
                        prefix = name[: -len("_HOST")]
                        port = as_int(env.get(f"{prefix}_PORT")) or HOST_PORT_DEFAULTS.get(prefix.split("_")[-1])
                        d.to_address(srcs, value, port, why)
                    elif HOST_PORT.match(value) and "." in value.split(":")[0]:
                        m = HOST_PORT.match(value)
                        d.to_address(srcs, m[1], int(m[2]), why)   # type: ignore[index]
            for cm_name in sorted(_mounted_configmaps(spec)):
                cm = configmaps.get((o.namespace, cm_name))
                if cm is None:
                    continue
                for key, text in (cm.manifest.get("data") or {}).items():
                    if not isinstance(text, str):
                        continue
                    why = f"{o.kind}/{o.name} config {cm_name}/{key}"
                    for value in _config_strings(text):
                        if "://" in value:
                            d.to_url(srcs, value, why)
                    if "etcd" in text and "minio" in text:
                        _milvus_config(d, srcs, text, why)


def custom_resources(d: Derivation) -> None:
    """ModelConfig / RemoteMCPServer URLs (agents, the kagent controller), Agent env, KEDA triggers."""
    agents = [o for o in d.objects if o.kind == "Agent" and o.group == "kagent.dev"]
    agent_pods = {a.ref: d.pods_of_object(a) for a in agents}
    kagent_controller = d.pods_where(None, {"app.kubernetes.io/name": "kagent", "app.kubernetes.io/component": "controller"})
    for a in agents:
        if not agent_pods[a.ref]:
            d.unresolved.append({"from": a.ref, "to": "its model, tools and telemetry", "why": "kagent agent",
                                 "problem": "no pods for this Agent among the objects (plan/operators.py)"})
    for o in d.objects:
        spec = o.manifest.get("spec") or {}
        if o.kind == "ModelConfig" and o.group == "kagent.dev":
            users = [p for a in agents if ((a.manifest.get("spec") or {}).get("declarative") or {}).get("modelConfig") == o.name
                     and a.namespace == o.namespace for p in agent_pods[a.ref]]
            for provider in spec.values():
                if isinstance(provider, dict) and isinstance(provider.get("baseUrl"), str):
                    d.to_url(users, provider["baseUrl"], f"agent -> model (ModelConfig {o.name})")
        elif o.kind == "RemoteMCPServer" and o.group == "kagent.dev" and isinstance(spec.get("url"), str):
            users = [p for a in agents if a.namespace == o.namespace and any(
                ((t.get("mcpServer") or {}).get("name") == o.name)
                for t in ((a.manifest.get("spec") or {}).get("declarative") or {}).get("tools") or [])
                for p in agent_pods[a.ref]]
            d.to_url(users + kagent_controller, spec["url"], f"tool {o.name} (RemoteMCPServer)")
        elif o.kind == "Agent" and o.group == "kagent.dev":
            for e in (((spec.get("declarative") or {}).get("deployment") or {}).get("env") or []):
                if isinstance(e.get("value"), str) and "://" in e["value"]:
                    d.to_url(agent_pods[o.ref], e["value"], f"agent env {e.get('name')}")
        elif o.kind == "ScaledObject" and o.group == "keda.sh":
            keda = d.pods_where(None, {"app": "keda-operator"})
            for t in spec.get("triggers") or []:
                md = t.get("metadata") or {}
                why = f"KEDA {t.get('type')} trigger ({o.namespace}/{o.name})"
                if isinstance(md.get("serverAddress"), str):
                    d.to_url(keda, md["serverAddress"], why)
                if isinstance(md.get("address"), str):
                    m = HOST_PORT.match(md["address"])
                    if m:
                        d.to_address(keda, m[1], int(m[2]), why)
                auth = (t.get("authenticationRef") or {}).get("name")
                for ta in _backend_objects(d, "TriggerAuthentication", o.namespace, auth) if auth else []:
                    for ref in (ta.manifest.get("spec") or {}).get("secretTargetRef") or []:
                        if ref.get("parameter") in ("host", "address", "addresses"):
                            _secret_target(d, keda, o.namespace, ref.get("name"), why)


def _secret_deps(d: Derivation, secret: Any) -> list[Any]:
    by = {r.urn: r for r in d.resources}
    res = by.get(secret.source)
    return [by[u] for u in (res.dependencies if res is not None else []) if u in by]


def _secret_target(d: Derivation, srcs: list[Pod], ns: str, name: str | None, why: str) -> None:
    """Where a connection Secret points: an RDS instance or ElastiCache group it is built from (the
    VPC), or the data layer's in-cluster Valkey / Milvus."""
    from components import data, names

    if not name or not srcs:
        return
    secrets = [o for o in d.objects if o.kind == "Secret" and not o.group and o.namespace == ns and o.name == name]
    for s in secrets:
        for dep in _secret_deps(d, s):
            if dep.type == RDS:
                port = as_int(dep.inputs.get("port")) or 5432
                for p in srcs:
                    d.need(p, External("RDS PostgreSQL (in the VPC)", d.vpc), port, "TCP", f"{why} (Secret {name})")
                return
            if dep.type == ELASTICACHE:
                port = as_int(dep.inputs.get("port")) or names.PORT_REDIS
                for p in srcs:
                    d.need(p, External("ElastiCache (in the VPC)", d.vpc), port, "TCP", f"{why} (Secret {name})")
                return
        if name == data.REDIS_SECRET:
            d.to_service(srcs, d.cluster.service(names.NS_DATA, data.VALKEY_RELEASE), names.PORT_REDIS,
                         f"{why} (Secret {name})", f"{names.NS_DATA}/Service/{data.VALKEY_RELEASE}")
        elif name == data.MILVUS_SECRET:
            d.to_service(srcs, d.cluster.service(names.NS_DATA, data.MILVUS_RELEASE), names.PORT_MILVUS,
                         f"{why} (Secret {name})", f"{names.NS_DATA}/Service/{data.MILVUS_RELEASE}")


def _secret_refs(spec: dict[str, Any]) -> set[str]:
    """Secrets a pod reads (volumes, projected, env, envFrom, image pull; optional ones too)."""
    return {name for kind, name in pod_references(spec, optional=True) if kind == "Secret" and name}


def connection_secrets(d: Derivation) -> None:
    from plan.admission.pod_security import pod_templates

    by_source: dict[int, list[Pod]] = {}
    for p in d.cluster.pods:
        if p.source is not None:
            by_source.setdefault(id(p.source), []).append(p)
    for o in d.objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            for name in sorted(_secret_refs(spec)):
                _secret_target(d, by_source.get(id(o), []), o.namespace or "default", name, f"{o.kind}/{o.name} reads")


def load_balancers(d: Derivation) -> None:
    nlb = External("NLB (its ENIs in the VPC; IP targets)", d.vpc)
    for (ns, name), svc in d.cluster.services.items():
        spec = svc.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            continue
        for sp in spec.get("ports") or []:
            for pod, number, proto, _ in d.cluster.backends(svc, as_int(sp.get("port")) or 0):
                d.need(nlb, pod, number, proto, f"load balancer -> {ns}/Service/{name}:{sp.get('port')}")


# ------------------------------------------------------------------------------------ verdicts

def enforced(resources: list[Any]) -> bool | None:
    """Does the VPC CNI enforce NetworkPolicies? Only with the vpc-cni add-on's configuration value
    `enableNetworkPolicy: "true"` (EKS: network policy is off by default). None: no vpc-cni add-on
    in the plan (another CNI; not judged)."""
    import json

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
            entry["via"] = f"{_key(n.service)[0]}/Service/{_key(n.service)[1]}:{n.service_port}"
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
    from plan.reachability import matrix_lines

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
