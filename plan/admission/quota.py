"""ResourceQuota and LimitRange admission, as the `LimitRanger` and `ResourceQuota` admission plugins
do it (kubernetes/kubernetes plugin/pkg/admission/limitranger/admission.go and
pkg/quota/v1/evaluator/core/pods.go at release-1.34):

1. LimitRanger defaults each container: a missing limit gets the LimitRange's `default`, a missing
   request its `defaultRequest` (else the default limit); then min/max (and maxLimitRequestRatio) are
   enforced per container. The API server itself defaults a missing request to the limit
   (pkg/apis/core/v1/defaults.go SetDefaults_ResourceRequirements... for containers).
2. ResourceQuota rejects a pod that does not set a resource the quota constrains
   ("must specify limits.cpu for: ...") and any pod that would push usage over `hard`.
The quota is checked against every namespace's pods at their configured replicas and at their
autoscalers' maxima (HorizontalPodAutoscaler maxReplicas, KEDA ScaledObject maxReplicaCount, default
100 per keda.sh/v1alpha1 types), DaemonSets at the largest node count the pools allow."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from domain.units import quantity
from plan.admission.pod_security import pod_templates
from plan.objects import K8sObject

KEDA_DEFAULT_MAX = 100   # keda.sh/v1alpha1 ScaledObjectSpec.MaxReplicaCount default


@dataclass
class Workload:
    obj: K8sObject
    namespace: str
    path: str
    spec: dict[str, Any]
    replicas: int         # as configured
    max_replicas: int     # at the autoscaler's maximum (or replicas)


def _replicas(obj: K8sObject, max_nodes: int) -> int:
    spec = obj.manifest.get("spec") or {}
    if obj.kind == "DaemonSet":
        return max_nodes
    if obj.kind in ("Job",):
        return int(spec.get("parallelism", 1))
    if obj.kind == "CronJob":
        return int(((spec.get("jobTemplate") or {}).get("spec") or {}).get("parallelism", 1))
    if obj.kind in ("Pod", "PodTemplate"):
        return 1
    return int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)


def autoscaler_maxima(objects: list[K8sObject]) -> dict[tuple[str, str, str], int]:
    """(namespace, kind, name) of a scale target -> the most replicas its autoscaler may set."""
    out = {}
    for o in objects:
        spec = o.manifest.get("spec") or {}
        if o.kind == "HorizontalPodAutoscaler":
            target, most = spec.get("scaleTargetRef") or {}, int(spec.get("maxReplicas", 1))
        elif o.kind == "ScaledObject":
            target, most = spec.get("scaleTargetRef") or {}, int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX))
        else:
            continue
        key = (o.namespace or "", target.get("kind", "Deployment"), target.get("name", ""))
        out[key] = max(out.get(key, 0), most)
    return out


def workloads(objects: list[K8sObject], max_nodes: int) -> list[Workload]:
    """Every pod-making object that is created on install (hooks that run once are counted too:
    quota is checked when their pods are created)."""
    maxima = autoscaler_maxima(objects)
    out = []
    for o in objects:
        for path, _meta, spec in pod_templates(o.manifest):
            n = _replicas(o, max_nodes)
            most = max(n, maxima.get((o.namespace or "", o.kind, o.name), n))
            out.append(Workload(o, o.namespace or "default", path, spec, n, most))
    return out


def _limit_ranges(objects: list[K8sObject]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in objects:
        if o.kind == "LimitRange":
            out[o.namespace or "default"].extend((o.manifest.get("spec") or {}).get("limits") or [])
    return out


def _quotas(objects: list[K8sObject]) -> dict[str, list[K8sObject]]:
    out: dict[str, list[K8sObject]] = defaultdict(list)
    for o in objects:
        if o.kind == "ResourceQuota":
            out[o.namespace or "default"].append(o)
    return out


def effective_resources(container: dict[str, Any], limits: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """(requests, limits) of a container after LimitRanger defaulting and API defaulting."""
    res = container.get("resources") or {}
    req = {k: quantity(v) for k, v in (res.get("requests") or {}).items()}
    lim = {k: quantity(v) for k, v in (res.get("limits") or {}).items()}
    for item in limits:
        if item.get("type") != "Container":
            continue
        for k, v in (item.get("default") or {}).items():
            lim.setdefault(k, quantity(v))
        for k, v in (item.get("defaultRequest") or {}).items():
            req.setdefault(k, quantity(v))
    for k, v in lim.items():   # a missing request defaults to the limit
        req.setdefault(k, v)
    return req, lim


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def pod_usage(spec: dict[str, Any], limits: list[dict[str, Any]]) -> dict[str, float]:
    """What one pod charges a quota: requests.X / limits.X / X (= requests) per the pods evaluator
    (kubernetes pkg/quota/v1/evaluator/core/pods.go, through resourcehelper.PodRequests/PodLimits:
    the app containers and every sidecar -- an init container with restartPolicy Always, KEP-753,
    which keeps running -- summed; each other init container adds the sidecars started before it;
    the pod charges the larger of the two, per resource)."""
    usage: dict[str, float] = defaultdict(float)
    init: dict[str, float] = defaultdict(float)
    sidecars: dict[str, float] = defaultdict(float)   # the sidecars started so far, summed
    for c in spec.get("containers") or []:
        for k, v in _charges(c, limits).items():
            usage[k] += v
    for c in spec.get("initContainers") or []:
        charges = _charges(c, limits)
        if c.get("restartPolicy") == "Always":
            for k, v in charges.items():
                sidecars[k] += v
            for k, v in sidecars.items():
                init[k] = max(init[k], v)
        else:
            for k, v in charges.items():
                init[k] = max(init[k], v + sidecars[k])
    for k, v in sidecars.items():
        usage[k] += v
    for k, v in init.items():
        usage[k] = max(usage[k], v)
    for k in list(usage):
        if k.startswith("requests.") and k[len("requests."):] in ("cpu", "memory", "ephemeral-storage"):
            usage[k[len("requests."):]] = usage[k]
    usage["pods"] = 1
    return dict(usage)


def _charges(container: dict[str, Any], limits: list[dict[str, Any]]) -> dict[str, float]:
    req, lim = effective_resources(container, limits)
    return {**{f"requests.{k}": v for k, v in req.items()}, **{f"limits.{k}": v for k, v in lim.items()}}


def check(objects: list[K8sObject], max_nodes: int) -> list[tuple[K8sObject, str, str]]:
    """(object, check, problem): check is "limitRange" or "resourceQuota"."""
    ranges, quotas = _limit_ranges(objects), _quotas(objects)
    problems: list[tuple[K8sObject, str, str]] = []
    totals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for w in workloads(objects, max_nodes):
        limits = ranges.get(w.namespace, [])
        for c in _containers(w.spec):
            req, lim = effective_resources(c, limits)
            for item in (i for i in limits if i.get("type") == "Container"):
                for k, v in (item.get("min") or {}).items():
                    if k in req and req[k] < quantity(v):
                        problems.append((w.obj, "limitRange", f"container {c.get('name')!r}: minimum {k} usage per "
                                                              f"Container is {v}, but request is {req[k]:g}"))
                for k, v in (item.get("max") or {}).items():
                    if k not in lim:
                        problems.append((w.obj, "limitRange", f"container {c.get('name')!r}: {k} has no limit and "
                                                              f"the LimitRange sets a maximum ({v})"))
                    elif lim[k] > quantity(v):
                        problems.append((w.obj, "limitRange", f"container {c.get('name')!r}: maximum {k} usage per "
                                                              f"Container is {v}, but limit is {lim[k]:g}"))
        usage = pod_usage(w.spec, limits)
        for quota in quotas.get(w.namespace, []):
            problems += _unspecified(w, quota, limits)
        for k, v in usage.items():
            totals[w.namespace][k][0] += v * w.replicas
            totals[w.namespace][k][1] += v * w.max_replicas
    for ns, qs in quotas.items():
        for quota in qs:
            hard = ((quota.manifest.get("spec") or {}).get("hard")) or {}
            for k, v in hard.items():
                at_replicas, at_max = totals[ns].get(k, [0.0, 0.0])
                limit = quantity(v)
                if _exceeds(at_replicas, limit):
                    problems.append((quota, "resourceQuota", f"namespace {ns}: its pods at their configured replicas "
                                                             f"use {_fmt(k, at_replicas)} {k}, more than hard {v}"))
                elif _exceeds(at_max, limit):
                    problems.append((quota, "resourceQuota", f"namespace {ns}: its pods at their autoscalers' maxima "
                                                             f"use {_fmt(k, at_max)} {k}, more than hard {v}"))
    return problems


def _unspecified(w: Workload, quota: K8sObject, limits: list[dict[str, Any]]) -> list[tuple[K8sObject, str, str]]:
    """A quota on cpu/memory requests or limits rejects a pod any of whose containers (init
    containers included) leaves one unset after LimitRanger defaulting: "must specify limits.cpu for:
    <containers>" (pkg/quota/v1/evaluator/core/pods.go, enforcePodContainerConstraints)."""
    hard = ((quota.manifest.get("spec") or {}).get("hard")) or {}
    required = sorted({("requests." + k) if "." not in k else k for k in hard
                       if k in ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")})
    out = []
    for key in required:
        kind, resource = key.split(".", 1)
        names = []
        for c in _containers(w.spec):
            req, lim = effective_resources(c, limits)
            if resource not in (req if kind == "requests" else lim):
                names.append(c.get("name", "?"))
        if names:
            out.append((w.obj, "resourceQuota", f"{w.path}: must specify {key} for: {','.join(names)} "
                                                 f"(ResourceQuota {quota.name})"))
    return out


def _exceeds(usage: float, hard: float) -> bool:
    """usage > hard, as the quota controller compares resource.Quantity values (exactly): sums of
    floats like 0.1 + 0.2 must not exceed a hard limit they equal."""
    return usage - hard > 1e-9 * max(1.0, abs(hard))


def _fmt(key: str, value: float) -> str:
    if "memory" in key or "storage" in key:
        return f"{value / 2 ** 30:.1f}Gi"
    return f"{value:g}"
