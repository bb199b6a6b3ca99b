"""Shared by the translations: the operators' pins (platform/operators.yaml), Go's omitempty,
semver, strategic merge patch, sprig's merge, lookups among the rendered objects.

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from domain.yamlfile import read_yaml
from plan.objects import K8sObject

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "platform" / "operators.yaml"
GATEWAY_GROUP = "gateway.networking.k8s.io"

Obj = dict[str, Any]


@cache
def pins() -> dict[str, Any]:
    """platform/operators.yaml."""
    return read_yaml(DATA)


def controller_label(operator: str) -> str:
    return f"{operator} {pins()[operator]['version']}"


# ---------------------------------------------------------------------------------------------
# Small helpers: Go's omitempty, semver, strategic merge patch, sprig's merge.
# ---------------------------------------------------------------------------------------------


def _put(d: Obj, key: str, value: Any) -> Obj:
    """Set `key` unless the value is Go-empty (omitempty: nil, "", empty slice or map)."""
    if value is not None and value != "" and value != [] and value != {}:
        d[key] = value
    return d


def _compact(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v is not None and v != "" and v != [] and v != {}}


def _meta(name: str, namespace: str, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> Obj:
    return _compact({"name": name, "namespace": namespace, "labels": dict(labels or {}) or None,
                     "annotations": dict(annotations or {}) or None})


def _data_object(kind: str, name: str, namespace: str, keys: Iterable[str], labels: dict[str, str] | None = None) -> Obj:
    """A Secret or ConfigMap the operator creates: its keys, not its generated content."""
    out: Obj = {"apiVersion": "v1", "kind": kind, "metadata": _meta(name, namespace, labels)}
    if kind == "Secret":
        out["type"] = "Opaque"
    out["data"] = {k: "" for k in keys}
    return out


def semver(version: str) -> tuple[int, int, int]:
    """blang/semver ParseTolerant, as a comparable (major, minor, patch)."""
    core = re.split(r"[-+]", version.strip().lstrip("v"), maxsplit=1)[0]
    parts = [int(p) for p in (core.split(".") + ["0", "0"])[:3]]
    return parts[0], parts[1], parts[2]


def semver_string(version: str) -> str:
    """blang/semver ParseTolerant(v).String(): no leading `v`, missing minor/patch padded."""
    v = version.strip().lstrip("v")
    m = re.match(r"^([0-9.]+)(.*)$", v)
    if not m:
        return v
    core = (m.group(1).split(".") + ["0", "0"])[:3]
    return ".".join(core) + m.group(2)


# k8s.io/apimachinery strategic merge patch: the patchMergeKey of the core/v1 and apps/v1 lists the
# operators patch (k8s.io/api core/v1 types.go `patchStrategy:"merge" patchMergeKey:...`).
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey", "hostAliases": "ip", "resourceClaims": "name",
}


def _merge_key(key: str, base: list[Any], patch: list[Any]) -> str | None:
    if key == "ports":  # ContainerPort by containerPort, ServicePort by port
        items = [i for i in base + patch if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return _MERGE_KEYS.get(key)


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge(base: Any, patch: Any) -> Any:
    """StrategicMergePatch(base, patch) for the Kubernetes types the operators patch: maps merge
    (null deletes), lists with a patchMergeKey merge by it (`$patch: delete` removes an item),
    other lists and scalars are replaced; `$patch: replace` replaces a map."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return _strip_directives(copy.deepcopy(patch))
    if patch.get("$patch") == "replace":
        return _strip_directives(copy.deepcopy(patch))
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = strategic_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and (mk := _merge_key(key, out[key], value)):
            out[key] = _merge_list(out[key], value, mk)
        else:
            out[key] = _strip_directives(copy.deepcopy(value))
    return out


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict):
            out.append(item)
            continue
        idx = next((i for i, b in enumerate(out) if isinstance(b, dict) and b.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip_directives(copy.deepcopy(item)))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def merge_patch_containers(base: list[Obj], patches: list[Obj]) -> list[Obj]:
    """prometheus-operator pkg/k8s/merge.go MergePatchContainers (v0.93.0): each patch container
    strategic-merged into the base container of its name (then sanitizeProbeHandlers: a probe
    handler the patch sets replaces the base's), the others appended in order."""
    by_name = {c.get("name"): c for c in patches or []}
    out = []
    for c in base:
        p = by_name.pop(c.get("name"), None)
        if p is None:
            out.append(c)
            continue
        merged = strategic_merge(c, p)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            set_by_patch = [h for h in _PROBE_HANDLERS if h in (p.get(probe) or {})]
            if set_by_patch and isinstance(merged.get(probe), dict):
                for h in _PROBE_HANDLERS:
                    if h not in set_by_patch:
                        merged[probe].pop(h, None)
        out.append(merged)
    out += [c for c in patches or [] if c.get("name") in by_name]
    return out


def sprig_merge(*dicts: dict[str, Any] | None) -> dict[str, Any]:
    """Sprig's `merge $dst $src...`: keys already present win (leftmost first), maps merge deeply."""
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in (d or {}).items():
            if k not in out:
                out[k] = copy.deepcopy(v)
            elif isinstance(out[k], dict) and isinstance(v, dict):
                out[k] = sprig_merge(out[k], v)
    return out


def _find(objects: list[K8sObject], kind: str, namespace: str | None, name: str) -> K8sObject | None:
    return next((o for o in objects if o.kind == kind and o.name == name and (o.namespace or None) == namespace), None)


def _containers_of(obj: K8sObject) -> list[Obj]:
    spec = ((obj.manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


def _controller_env(objects: list[K8sObject], marker: str) -> tuple[dict[str, str], str | None] | None:
    """The literal env of the (chart-rendered) controller Deployment whose container sets `marker`,
    and its namespace."""
    for o in objects:
        if o.kind != "Deployment":
            continue
        for c in _containers_of(o):
            env = {e.get("name"): e.get("value") for e in c.get("env") or [] if "value" in e}
            if marker in {e.get("name") for e in c.get("env") or []}:
                return {k: str(v) for k, v in env.items() if v is not None}, o.namespace
    return None
