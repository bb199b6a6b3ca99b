"""What the operator tests share (tests/test_operators.py, tests/test_operators_prometheus.py): an object
made from a manifest, lookups into what plan/operators/ creates, and its Pod Security violations."""

from __future__ import annotations

from typing import Any

from plan.admission.pod_security import check_pod, pod_templates
from plan.objects import K8sObject

RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 2000,
                  "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_DEFAULT = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def obj(manifest: dict[str, Any], source: str = "urn:test", release: str | None = None) -> K8sObject:
    return K8sObject(manifest, source, release=release)


def by_ref(out: list[K8sObject]) -> dict[str, K8sObject]:
    return {o.ref: o for o in out}


def pod_spec(o: K8sObject) -> dict[str, Any]:
    return o.manifest["spec"]["template"]["spec"]


def container(o: K8sObject, name: str, key: str = "containers") -> dict[str, Any]:
    return next(c for c in pod_spec(o)[key] if c["name"] == name)


def violations(o: K8sObject, level: str = "restricted") -> list[str]:
    return [v.check for _p, meta, spec in pod_templates(o.manifest) for v in check_pod(meta, spec, level)]

