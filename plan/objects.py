"""Every Kubernetes object a plan puts on the cluster, in one list: the objects the program
declares itself (typed resources and CustomResources) and every object its Helm releases render
(plan/render.py). Admission, reachability, the policies and the manifests all read this list, so
a chart's pods are checked exactly like the program's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# The EKS types the analyses read: pulumi-eks' cluster component, the control plane it creates, an
# add-on, a managed node group.
EKS_CLUSTER = "eks:index:Cluster"
EKS_CONTROL_PLANE = "aws:eks/cluster:Cluster"
EKS_ADDON = "aws:eks/addon:Addon"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
HEAD = ("apiVersion", "kind", "metadata")

# Built-in kinds that are not namespaced (kubectl api-resources --namespaced=false, Kubernetes 1.34);
# a custom kind's scope comes from its CRD.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass", "CSIDriver",
    "CSINode", "VolumeAttachment", "PriorityClass", "RuntimeClass", "CustomResourceDefinition", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
    "IngressClass", "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration", "ComponentStatus",
    "DeviceClass", "ResourceSlice", "VolumeAttributesClass", "IPAddress", "ServiceCIDR",
})


@dataclass
class K8sObject:
    """One object as the API server would receive it."""
    manifest: dict[str, Any]
    source: str                 # URN of the declaring resource; for a rendered object, its Helm release
    release: str | None = None  # the Helm release name that renders it
    hook: str | None = None     # its `helm.sh/hook` annotation (e.g. "pre-install", "test")
    template: str | None = None  # the chart template it came from ("# Source:" of helm template)
    controller: str | None = None  # for an object an operator creates from a platform object (plan/operators.py)

    @property
    def api_version(self) -> str:
        return str(self.manifest.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        return self.manifest.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        return self.metadata.get("namespace")

    @property
    def ref(self) -> str:
        """`namespace/Kind/name` (`_cluster` for cluster-scoped objects): how findings name it."""
        return f"{self.namespace or '_cluster'}/{self.kind}/{self.name}"

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""


def manifest_of(resource: Any) -> dict[str, Any]:
    """A declared Kubernetes object as a plain manifest, from the resource's inputs (apiVersion,
    kind and metadata first, as people write them)."""
    body = {k: v for k, v in resource.inputs.items() if not k.startswith("__")}
    return {**{k: body[k] for k in HEAD if k in body}, **{k: v for k, v in body.items() if k not in HEAD}}


def is_declared_object(resource: Any) -> bool:
    return (resource.custom and resource.type.startswith("kubernetes:") and resource.type != HELM_RELEASE
            and not resource.type.startswith("pulumi:providers:"))


def declared(plan: Any) -> list[K8sObject]:
    """The program's own Kubernetes objects."""
    return [K8sObject(manifest_of(r), r.urn) for r in plan.resources if is_declared_object(r)]


def crd_scopes(objects: list[K8sObject]) -> dict[tuple[str, str], str]:
    """(group, kind) -> "Namespaced" | "Cluster" for every CRD among the objects."""
    out = {}
    for o in objects:
        if o.kind == "CustomResourceDefinition":
            spec = o.manifest.get("spec") or {}
            out[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))] = spec.get("scope", "Namespaced")
    return out


def namespaced(obj: K8sObject, scopes: dict[tuple[str, str], str]) -> bool:
    if (obj.group, obj.kind) in scopes:
        return scopes[(obj.group, obj.kind)] == "Namespaced"
    return obj.kind not in CLUSTER_SCOPED
