"""The pods and Services no object of the plan describes: the EKS add-ons' (ADDON_PODS), the
`default/kubernetes` Service, the kubelet Service prometheus-operator maintains and the pods it
makes for a Prometheus or Alertmanager; the VPC, subnet and service CIDRs."""

from __future__ import annotations

import ipaddress
from typing import Any

from plan.admission.pod_security import pod_templates
from plan.objects import EKS_ADDON, EKS_CLUSTER, EKS_CONTROL_PLANE, EKS_NODE_GROUP
from plan.reachability import (
    ContainerPort,
    Pod,
)

ADDON = EKS_ADDON
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
EKS_CLUSTERS = (EKS_CLUSTER, EKS_CONTROL_PLANE)
NODE_GROUP = EKS_NODE_GROUP

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


def addon_names(resources: list[Any]) -> list[str]:
    return [r.inputs.get("addonName") for r in resources if r.type == ADDON]


def synthetic_pod(ns: str, spec: dict[str, Any], source: str) -> Pod:
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


def _of_type(plan: Any, *types: str) -> list[Any]:
    return [r for r in plan.resources if r.type in types]


def _input_urns(r: Any, *keys: str) -> list[str]:
    """The resources the inputs `keys` of `r` came from (its options' inputDependencies)."""
    deps = (getattr(r, "options", None) or {}).get("inputDependencies") or {}
    return [u for k in keys for u in deps.get(k, [])]


def _subnet_cidrs(plan: Any, urns: list[str]) -> list[str]:
    by_urn = {r.urn: r for r in _of_type(plan, SUBNET)}
    return [by_urn[u].inputs["cidrBlock"] for u in urns if u in by_urn and by_urn[u].inputs.get("cidrBlock")]


def control_plane_cidrs_of(plan: Any) -> list[str]:
    """The CIDRs of the EKS cluster's subnets (its vpcConfig.subnetIds, pulumi-eks `subnetIds` or
    `privateSubnetIds`/`publicSubnetIds`), where EKS puts the control plane's network interfaces:
    the Kubernetes API's addresses in the VPC. The subnets are the ones the id inputs came from
    (the resource's input dependencies). No cluster in the plan: the VPC CIDR."""
    for c in _of_type(plan, *EKS_CLUSTERS):
        cidrs = _subnet_cidrs(plan, _input_urns(c, "subnetIds", "privateSubnetIds", "publicSubnetIds", "vpcConfig"))
        if cidrs:
            return cidrs
    return [vpc_cidr_of(plan)]


def node_cidrs_of(plan: Any, objects: list[Any]) -> list[str]:
    """The CIDRs nodes (and so pods: the VPC CNI gives them addresses of their node's subnet) get:
    the managed node groups' subnets and those Karpenter's EC2NodeClasses select by tag
    (spec.subnetSelectorTerms[].tags: every tag must match; "*" any value). None found: the VPC."""
    out = _subnet_cidrs(plan, [u for g in _of_type(plan, NODE_GROUP) for u in _input_urns(g, "subnetIds")])
    terms = [t.get("tags") or {} for o in objects if o.kind == "EC2NodeClass"
             for t in (o.manifest.get("spec") or {}).get("subnetSelectorTerms") or [] if t.get("tags")]
    for s in _of_type(plan, SUBNET):
        tags = s.inputs.get("tags") or {}
        if any(all(k in tags and v in ("*", tags[k]) for k, v in term.items()) for term in terms):
            out.append(s.inputs["cidrBlock"])
    return sorted(set(out)) or [vpc_cidr_of(plan)]
