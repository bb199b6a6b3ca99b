"""The tenancy tests' readers: resource type tokens and the namespaces of a plan with what they hold."""

from __future__ import annotations

NS = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMITS = "kubernetes:core/v1:LimitRange"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
PSA = "pod-security.kubernetes.io/"   # the Pod Security Admission label prefix


def namespaces(plan) -> dict[str, dict]:
    """Every Namespace the program declares, with its labels."""
    return {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"] for r in plan.by_type(NS)}


def in_ns(plan, typ: str, ns: str) -> list[dict]:
    """The inputs of every resource of type `typ` in namespace `ns`."""
    return [r.inputs for r in plan.by_type(typ) if r.inputs["metadata"].get("namespace") == ns]
