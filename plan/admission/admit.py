"""Runs every admission check over every object of a plan (declared and rendered) and returns the
findings the plan JSON lists under `admission`. Any finding is a rejection: the plan exits 1."""

from __future__ import annotations

from collections import Counter
from typing import Any

from domain.instances import instance_facts
from plan.admission import images, node_pools, pod_dns, pod_identity, quota, references, schema
from plan.admission.pod_security import check_pod, enforce_level, pod_templates
from plan.objects import EKS_ADDON, EKS_NODE_GROUP, K8sObject

NODE_GROUP = EKS_NODE_GROUP
ADDON = EKS_ADDON
# What each EKS add-on runs in kube-system: (kind, name) of its workloads' ServiceAccounts
# (docs.aws.amazon.com/eks/latest/userguide/workloads-add-ons-available-eks.html; the add-ons'
# manifests: aws-node, kube-proxy, coredns, eks-pod-identity-agent, ebs-csi-controller-sa/-node-sa).
ADDON_SERVICE_ACCOUNTS = {
    "vpc-cni": ("aws-node",),
    "kube-proxy": ("kube-proxy",),
    "coredns": ("coredns",),
    "eks-pod-identity-agent": ("eks-pod-identity-agent",),
    "aws-ebs-csi-driver": ("ebs-csi-controller-sa", "ebs-csi-node-sa"),
    "eks-node-monitoring-agent": ("eks-node-monitoring-agent",),
}
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


def _finding(obj: K8sObject | None, check: str, message: str, source: str | None = None) -> dict[str, Any]:
    return {"object": obj.ref if obj else None, "source": source or (obj.source if obj else None),
            "release": obj.release if obj else None, "check": check, "message": message}


def namespace_levels(objects: list[K8sObject]) -> dict[str, str]:
    """namespace -> Pod Security enforce level of the namespaces the platform creates. Others
    (kube-system, default) carry no label on EKS: `privileged` (the plugin's default)."""
    return {o.name: enforce_level(o.metadata.get("labels") or {}) for o in objects if o.kind == "Namespace"}


def max_nodes(objects: list[K8sObject], resources: list[Any]) -> int:
    """The most nodes the cluster may have: the system node groups' maxSize plus, per NodePool, the
    nodes its `limits` allow with its smallest instance type (each limit caps the sum over nodes)."""
    total = sum(int(((r.inputs.get("scalingConfig") or {}).get("maxSize")) or 0) for r in resources if r.type == NODE_GROUP)
    for o in objects:
        if o.kind != "NodePool":
            continue
        spec = o.manifest.get("spec") or {}
        limits = spec.get("limits") or {}
        reqs = ((spec.get("template") or {}).get("spec") or {}).get("requirements") or []
        types = [v for r in reqs if r.get("key") == INSTANCE_TYPE_LABEL and r.get("operator") == "In"
                 for v in r.get("values") or []]
        facts = [f for f in (instance_facts(t) for t in types) if f]
        if "nodes" in limits:   # a static NodePool (warm nodes): limits.nodes caps it, whatever its types
            total += int(quota.quantity(limits["nodes"]))
            continue
        if not facts or not limits:
            total += 1000   # unbounded: Karpenter's own safety net is the account's quotas
            continue
        caps = []
        if "cpu" in limits:
            caps.append(quota.quantity(limits["cpu"]) // min(f.vcpu for f in facts))
        if "memory" in limits:
            caps.append(quota.quantity(limits["memory"]) // (min(f.memory_gib for f in facts) * 2 ** 30))
        if "nvidia.com/gpu" in limits and all(f.gpus for f in facts):
            caps.append(quota.quantity(limits["nvidia.com/gpu"]) // min(f.gpus for f in facts))
        total += int(min(caps)) if caps else 1000
    return total


def pod_security(objects: list[K8sObject]) -> list[dict[str, Any]]:
    levels = namespace_levels(objects)
    out = []
    for o in objects:
        templates = pod_templates(o.manifest)
        if not templates:
            continue
        level = levels.get(o.namespace or "default", "privileged")
        for path, meta, spec in templates:
            for v in check_pod(meta, spec, level):
                out.append(_finding(o, "podSecurity", f"{path}: violates PodSecurity \"{level}:latest\": {v.message}"))
    return out


def addon_accounts(resources: list[Any]) -> list[tuple[str, str]]:
    """(namespace, service account) that the declared EKS add-ons create and run pods as."""
    names = [r.inputs.get("addonName") for r in resources if r.type == ADDON]
    return [("kube-system", sa) for n in names for sa in ADDON_SERVICE_ACCOUNTS.get(n, ())]


def conflicts(objects: list[K8sObject]) -> list[dict[str, Any]]:
    """Two objects of one group, kind, namespace and name: the second create fails ("already exists";
    Helm: "rendered manifests contain a resource that already exists")."""
    seen: dict[tuple[str, str, str, str], K8sObject] = {}
    out = []
    for o in objects:
        key = (o.group, o.kind, o.namespace or "", o.name)
        if key in seen:
            out.append(_finding(o, "conflict", f"also declared by {seen[key].release or seen[key].source}"))
        else:
            seen[key] = o
    return out


def admit(objects: list[K8sObject], resources: list[Any], *, kube_version: str) -> list[dict[str, Any]]:
    """Every admission finding, in a stable order."""
    findings = conflicts(objects)
    findings += [_finding(o, "schema", msg) for o, msg in schema.check(objects, kube_version)]
    findings += pod_security(objects)
    findings += [_finding(o, check, msg) for o, check, msg in quota.check(objects, max_nodes(objects, resources))]
    findings += [_finding(o, "reference", msg) for o, msg in references.check(objects)]
    findings += [_finding(o, "nodePool", msg) for o, msg in node_pools.check(objects)]
    findings += [_finding(o, "image", msg) for o, msg in images.check(objects)]
    findings += [_finding(o, "podDNS", msg) for o, msg in pod_dns.check(objects)]
    findings += [_finding(None, "podIdentity", msg, urn)
                 for urn, msg in pod_identity.check(objects, resources, addon_accounts(resources))]
    return findings


def summary_lines(findings: list[dict[str, Any]], objects: list[K8sObject]) -> list[str]:
    by_check = Counter(f["check"] for f in findings)
    lines = [f"{len(objects)} objects admitted against Kubernetes schemas, Pod Security, quotas, references, "
             f"static NodePools, images, pod DNS and Pod Identity: {len(findings)} rejection(s)" +
             (" (" + ", ".join(f"{k} {n}" for k, n in sorted(by_check.items())) + ")" if findings else "")]
    for f in findings:
        lines.append(f"  [{f['check']}] {f['object'] or f['source']}: {f['message']}")
    return lines
