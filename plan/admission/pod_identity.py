"""Pod Identity: an association binds an IAM role to (namespace, service account). EKS accepts an
association for a service account that does not exist, and nothing tells you: the pods that should
use it run as another account and get no AWS credentials (the node role is out of reach, IMDS hop
limit 1). So every association's service account must exist and some pod must run as it
(docs.aws.amazon.com/eks/latest/userguide/pod-id-association.html)."""

from __future__ import annotations

from typing import Any

from plan.admission.pod_security import pod_templates
from plan.objects import K8sObject

ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def check(objects: list[K8sObject], resources: list[Any], addons: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(association URN, problem). `addons`: (namespace, account) the EKS add-ons create and run as."""
    accounts = {(o.namespace, o.name) for o in objects if o.kind == "ServiceAccount"} | set(addons)
    used = set(addons)
    for o in objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            used.add((o.namespace, spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"))
    problems = []
    for r in resources:
        if r.type != ASSOCIATION:
            continue
        key = (r.inputs.get("namespace"), r.inputs.get("serviceAccount"))
        if key not in accounts:
            problems.append((r.urn, f"service account {key[0]}/{key[1]} does not exist: no pod gets this role"))
        elif key not in used:
            problems.append((r.urn, f"no pod runs as service account {key[0]}/{key[1]}: the role is bound to nothing"))
    return problems
