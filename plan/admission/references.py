"""References: a pod whose Secret, ConfigMap, ServiceAccount or PVC does not exist is created but
never starts (the kubelet waits on the volume; a missing ServiceAccount is rejected at admission by
the `ServiceAccount` plugin, plugin/pkg/admission/serviceaccount/admission.go); a PVC whose
StorageClass does not exist stays Pending. Each reference must be declared, rendered by a chart, or
created at run time by a named controller (RUNTIME below, each with the controller that makes it)."""

from __future__ import annotations

import re
from typing import Any

from plan.admission.pod_security import pod_templates
from plan.objects import K8sObject

# Objects that exist without anyone declaring them: (kind, name pattern) -> who creates them.
RUNTIME: dict[tuple[str, str], str] = {
    # kube-controller-manager: serviceaccount controller (pkg/controller/serviceaccount) and
    # root-ca-cert-publisher (pkg/controller/certificates/rootcacertpublisher), in every namespace.
    ("ServiceAccount", "default"): "kube-controller-manager (serviceaccount controller)",
    ("ConfigMap", "kube-root-ca.crt"): "kube-controller-manager (root-ca-cert-publisher)",
}


def _runtime(kind: str, name: str) -> str | None:
    for (k, pattern), who in RUNTIME.items():
        if k == kind and re.fullmatch(pattern, name):
            return who
    return None


def _flag(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def created_at_run_time(objects: list[K8sObject]) -> dict[tuple[str, str, str], str]:
    """(namespace, kind, name) -> who creates it, for objects the platform's controllers and hook
    jobs make while they run, read from their real arguments:
    - kube-webhook-certgen `create --secret-name=X` (the certificate Job kube-prometheus-stack runs
      as a pre-install hook; jet/kube-webhook-certgen cmd/create.go) writes Secret X;
    - the KEDA operator with `--enable-cert-rotation=true` writes `--cert-secret-name`
      (kedacore/keda cmd/operator/main.go, pkg/certificates)."""
    out = {}
    for o in objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
                args = [str(a) for a in (c.get("args") or []) + (c.get("command") or [])]
                if "create" in args and (secret := _flag(args, "--secret-name")) and "certgen" in str(c.get("image")):
                    out[(o.namespace or "", "Secret", secret)] = f"{o.kind} {o.name} (kube-webhook-certgen create)"
                if _flag(args, "--enable-cert-rotation") == "true" and (secret := _flag(args, "--cert-secret-name")):
                    out[(o.namespace or "", "Secret", secret)] = f"{o.kind} {o.name} (KEDA certificate rotation)"
    return out


def pod_references(spec: dict[str, Any], *, optional: bool = False) -> list[tuple[str, str]]:
    """(kind, name) of every object a pod spec needs to start; optional references only with
    `optional` (a pod that starts without them still reads them when they exist)."""
    refs: list[tuple[str, str]] = [("ServiceAccount", spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")]
    for v in spec.get("volumes") or []:
        if "secret" in v and (optional or not v["secret"].get("optional")):
            refs.append(("Secret", v["secret"].get("secretName", "")))
        if "configMap" in v and (optional or not v["configMap"].get("optional")):
            refs.append(("ConfigMap", v["configMap"].get("name", "")))
        if "persistentVolumeClaim" in v:
            refs.append(("PersistentVolumeClaim", v["persistentVolumeClaim"].get("claimName", "")))
        for src in (v.get("projected") or {}).get("sources") or []:
            if "secret" in src and (optional or not src["secret"].get("optional")):
                refs.append(("Secret", src["secret"].get("name", "")))
            if "configMap" in src and (optional or not src["configMap"].get("optional")):
                refs.append(("ConfigMap", src["configMap"].get("name", "")))
    for s in spec.get("imagePullSecrets") or []:
        refs.append(("Secret", s.get("name", "")))
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        for env in c.get("env") or []:
            src = env.get("valueFrom") or {}
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in src and (optional or not src[key].get("optional")):
                    refs.append((kind, src[key].get("name", "")))
        for env in c.get("envFrom") or []:
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in env and (optional or not env[key].get("optional")):
                    refs.append((kind, env[key].get("name", "")))
    return refs


def _claim_templates(obj: K8sObject) -> list[str]:
    """Names of the PVCs a StatefulSet creates for its pods (<template>-<set>-<ordinal>)."""
    if obj.kind != "StatefulSet":
        return []
    return [(t.get("metadata") or {}).get("name", "") for t in (obj.manifest.get("spec") or {}).get("volumeClaimTemplates") or []]


def _storage_classes(objects: list[K8sObject]) -> tuple[set[str], bool]:
    names, has_default = set(), False
    for o in objects:
        if o.kind == "StorageClass":
            names.add(o.name)
            if (o.metadata.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                has_default = True
    return names, has_default


def check(objects: list[K8sObject]) -> list[tuple[K8sObject, str]]:
    """(object, problem) for every reference nothing provides."""
    have = {(o.namespace or "", o.kind, o.name) for o in objects} | set(created_at_run_time(objects))
    classes, has_default = _storage_classes(objects)
    problems = []
    for o in objects:
        templates = set(_claim_templates(o))
        for path, _meta, spec in pod_templates(o.manifest):
            for kind, name in pod_references(spec):
                if kind == "PersistentVolumeClaim" and name in templates:
                    continue
                if (o.namespace or "default", kind, name) in have or _runtime(kind, name):
                    continue
                problems.append((o, f"{path}: {kind} {o.namespace}/{name} does not exist (not declared, not rendered "
                                    "by a chart, not created by a known controller)"))
        claims = []
        if o.kind == "PersistentVolumeClaim":
            claims.append(o.manifest.get("spec") or {})
        for t in (o.manifest.get("spec") or {}).get("volumeClaimTemplates") or [] if o.kind == "StatefulSet" else []:
            claims.append(t.get("spec") or {})
        for claim in claims:
            sc = claim.get("storageClassName")
            if sc is None and not has_default:
                problems.append((o, "a PVC without storageClassName needs a default StorageClass; none is declared"))
            elif sc and sc not in classes:
                problems.append((o, f"StorageClass {sc!r} does not exist"))
    return problems
