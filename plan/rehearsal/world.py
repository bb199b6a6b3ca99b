"""Node sources, pod placement and what each step awaits: the world a rehearsal runs in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from components import names
from domain.durations import durations
from domain.instances import instance_facts
from plan.admission.pod_security import pod_templates
from plan.objects import HELM_RELEASE, K8sObject
from plan.rehearsal.facts import ADDON, GPU, NODEGROUP
from plan.rehearsal.graph import Graph

# ============================================================================ nodes and placement

@dataclass
class NodeSource:
    """Where pods can run: the system node group, or a Karpenter NodePool (the pool's resource and
    the Karpenter controller must exist first)."""
    name: str
    kind: str                                  # "nodeGroup" | "nodePool"
    needs: tuple[str, ...]                     # URNs that must be created before pods can land
    labels: dict[str, set[str] | None]         # label -> the values its nodes can carry (None: any)
    taints: list[dict[str, str]]
    max_gpus: int
    launch_s: int
    brings_device_plugin: bool = False         # Bottlerocket NVIDIA variants run their own


def tolerated(taint: dict[str, str], tolerations: list[dict[str, Any]]) -> bool:
    """core/v1 Toleration.ToleratesTaint: an empty key with Exists tolerates everything; an empty
    effect matches every effect; Exists ignores the value."""
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] != taint.get("key"):
            continue
        if op == "Exists" or str(t.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def _expr_holds(expr: dict[str, Any], labels: dict[str, set[str] | None]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), {str(v) for v in expr.get("values") or []}
    present = key in labels
    possible = labels.get(key)
    if op == "In":
        return present and (possible is None or bool(possible & values))
    if op == "NotIn":
        return not present or possible is None or bool(possible - values)
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or possible is None:
            return present
        bound = int(next(iter(values or {"0"})))
        return any(v.isdigit() and (int(v) > bound if op == "Gt" else int(v) < bound) for v in possible)
    return False


def pod_gpus(spec: dict[str, Any]) -> int:
    total = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        total += int(str((res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0))
    return total


def misfit(spec: dict[str, Any], nodes: NodeSource) -> str | None:
    """Why pods of `spec` cannot run on `nodes` (None: they can): an untolerated NoSchedule or
    NoExecute taint, a nodeSelector or required node affinity the nodes cannot satisfy, more GPUs
    than the largest instance has (kube-scheduler's TaintToleration, NodeAffinity, NodeResourcesFit)."""
    for t in nodes.taints:
        if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(t, spec.get("tolerations") or []):
            return f"taint {t.get('key')}={t.get('value', '')}:{t.get('effect')} not tolerated"
    for key, value in (spec.get("nodeSelector") or {}).items():
        if key not in nodes.labels:
            return f"nodeSelector {key}={value}: no such node label"
        if nodes.labels[key] is not None and str(value) not in nodes.labels[key]:
            return f"nodeSelector {key}={value}: its nodes carry {sorted(nodes.labels[key])}"
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    if required and not any(all(_expr_holds(e, nodes.labels) for e in term.get("matchExpressions") or [])
                            for term in required):
        return "required node affinity matches none of its nodes"
    gpus = pod_gpus(spec)
    if gpus and gpus > nodes.max_gpus:
        return f"{gpus} GPUs per pod, its largest instance has {nodes.max_gpus}"
    return None


def _instance_labels(types: Iterable[str]) -> tuple[dict[str, set[str]], int]:
    facts = [f for t in types if (f := instance_facts(t)) is not None]
    labels: dict[str, set[str]] = {"node.kubernetes.io/instance-type": set(types)}
    gpu_names = {f.gpu_model.lower() for f in facts if f.gpus and f.gpu_model}
    if gpu_names:
        labels["karpenter.k8s.aws/instance-gpu-name"] = gpu_names
    return labels, max((f.gpus for f in facts), default=0)


# Labels Karpenter puts on every node it launches (karpenter.sh v1 docs, "Well-Known Labels"),
# whatever the NodePool says; their values depend on the instance it picks.
KARPENTER_WELL_KNOWN = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region", "kubernetes.io/hostname",
                        "kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/instance-type",
                        "karpenter.sh/capacity-type", "karpenter.k8s.aws/instance-category",
                        "karpenter.k8s.aws/instance-family", "karpenter.k8s.aws/instance-generation",
                        "karpenter.k8s.aws/instance-size", "karpenter.k8s.aws/instance-cpu",
                        "karpenter.k8s.aws/instance-memory", "karpenter.k8s.aws/instance-gpu-name",
                        "karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-manufacturer")
EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


# ==================================================================================== the world

@dataclass
class PodSet:
    """Pods one resource's await waits for."""
    owner: str                   # the URN whose step waits (a Helm release or a declared workload)
    obj: K8sObject
    meta: dict[str, Any]
    spec: dict[str, Any]
    hook: str | None = None
    awaited: bool = True


@dataclass
class World:
    plan: Any
    config: Any
    graph: Graph
    objects_by_source: dict[str, list[K8sObject]] = field(default_factory=lambda: defaultdict(list))
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    namespace_owner: dict[str, str] = field(default_factory=dict)
    sources: list[NodeSource] = field(default_factory=list)
    controllers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    storage_classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_storage_class: str | None = None
    # (earlier, later): orders the rules need (a lever never drops these edges)
    required: set[tuple[str, str]] = field(default_factory=set)
    # namespace -> (workload, pod metadata, pod spec) of every pod template there (Services select from these)
    pods_by_namespace: dict[str | None, list[tuple[K8sObject, dict[str, Any], dict[str, Any]]]] = \
        field(default_factory=lambda: defaultdict(list))
    _awaited: dict[str, list[PodSet]] = field(default_factory=dict)


def chart_name(release: Any) -> str:
    """`platform/charts/karpenter-1.14.1.tgz` (version 1.14.1) -> karpenter."""
    base = str(release.inputs.get("chart") or release.name).rsplit("/", 1)[-1]
    version = str(release.inputs.get("version") or "")
    for suffix in (f"-{version}.tgz", ".tgz"):
        if base.endswith(suffix) and suffix != "-.tgz":
            return base[: -len(suffix)]
    return base


def images_of(spec: dict[str, Any]) -> list[str]:
    return [str(c.get("image") or "") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]


# Controllers the destroy checks need, by the images their pods run (or the EKS add-on).
CONTROLLER_IMAGES = {"karpenter": ("karpenter/controller",),
                     "aws-load-balancer-controller": ("aws-load-balancer-controller",),
                     "ebs-csi": ("ebs-csi-driver",),
                     "device-plugin": ("k8s-device-plugin", "gpu-operator")}
CONTROLLER_ADDONS = {"aws-ebs-csi-driver": "ebs-csi"}
# ... and by chart, when nothing was rendered (or the images moved)
CONTROLLER_CHARTS = {"karpenter": "karpenter", "aws-load-balancer-controller": "aws-load-balancer-controller",
                     "aws-ebs-csi-driver": "ebs-csi", "nvidia-device-plugin": "device-plugin",
                     "gpu-operator": "device-plugin"}


def build_world(plan: Any, config: Any) -> World:
    remote = {d for r in plan.resources for d in r.dependencies}
    remote |= {r.urn for r in plan.resources if r.type in durations()["resources"]}
    graph = Graph(plan.resources, remote)
    w = World(plan, config, graph)
    for o in plan.objects:
        w.objects_by_source[o.source].append(o)
        if o.kind != "DaemonSet":
            for _, meta, spec in pod_templates(o.manifest):
                w.pods_by_namespace[o.namespace].append((o, meta, spec))
    for o in plan.objects:
        if o.kind == "Namespace":
            w.namespace_labels[o.name] = {**(o.metadata.get("labels") or {}), "kubernetes.io/metadata.name": o.name}
            if not o.release and not o.controller:
                w.namespace_owner[o.name] = o.source
        elif o.kind == "StorageClass":
            w.storage_classes[o.name] = o.manifest
            ann = o.metadata.get("annotations") or {}
            if str(ann.get("storageclass.kubernetes.io/is-default-class")) == "true":
                w.default_storage_class = o.name
    # controllers: releases by the images their pods run; EKS add-ons by name
    for r in plan.resources:
        if r.type == ADDON and r.inputs.get("addonName") in CONTROLLER_ADDONS:
            w.controllers[CONTROLLER_ADDONS[r.inputs["addonName"]]].append(r.urn)
        if r.type != HELM_RELEASE:
            continue
        imgs = [i for o in w.objects_by_source[r.urn] for _, _, s in pod_templates(o.manifest) for i in images_of(s)]
        keys = {key for key, patterns in CONTROLLER_IMAGES.items() if any(p in i for p in patterns for i in imgs)}
        if chart_name(r) in CONTROLLER_CHARTS:
            keys.add(CONTROLLER_CHARTS[chart_name(r)])
        for key in sorted(keys):
            w.controllers[key].append(r.urn)
    w.sources = node_sources(plan, w)
    # An EKS add-on the durations file does not describe may run pods that need nodes: its edges
    # from the node group are needed, not levers. The described ones are modelled instead
    # (plan/rehearsal/addons.py: a Deployment add-on created beside its nodes waits for them).
    # Nodes turn Ready only with the CNI and kube-proxy add-ons the node group waits for.
    described = durations().get("addons") or {}
    for r in plan.by_type(ADDON):
        if str(r.inputs.get("addonName")) not in described:
            w.required |= {(p, r.urn) for p in graph.up_preds.get(r.urn, {}) if graph.by_urn[p].type == NODEGROUP}
    for r in plan.by_type(NODEGROUP):
        w.required |= {(p, r.urn) for p in graph.up_preds.get(r.urn, {}) if graph.by_urn[p].type == ADDON}
    return w


def node_sources(plan: Any, w: World) -> list[NodeSource]:
    d = durations()["nodes"]
    out = []
    for r in plan.by_type(NODEGROUP):
        i = r.inputs
        labels: dict[str, set[str] | None] = {k: {str(v)} for k, v in (i.get("labels") or {}).items()}
        inst, gpus = _instance_labels(i.get("instanceTypes") or [])
        arch = "arm64" if "ARM" in str(i.get("amiType", "")) else "amd64"
        labels.update(inst)
        labels.update({"kubernetes.io/os": {"linux"}, "kubernetes.io/arch": {arch},
                       "eks.amazonaws.com/capacityType": {str(i.get("capacityType") or "ON_DEMAND")},
                       "eks.amazonaws.com/nodegroup": None, "topology.kubernetes.io/zone": None,
                       "topology.kubernetes.io/region": None, "kubernetes.io/hostname": None})
        taints = [{"key": t.get("key"), "value": t.get("value", ""), "effect": EFFECTS.get(t.get("effect"), t.get("effect"))}
                  for t in i.get("taints") or []]
        out.append(NodeSource(f"node group {r.name}", "nodeGroup", (r.urn,), labels, taints, gpus, d["nodeGroup"]["seconds"]))
    karpenter = w.controllers.get("karpenter") or []
    classes = {o.name: o for o in plan.objects if (o.group, o.kind) == ("karpenter.k8s.aws", "EC2NodeClass")}
    for o in plan.objects:
        if (o.group, o.kind) != ("karpenter.sh", "NodePool"):
            continue
        tpl = ((o.manifest.get("spec") or {}).get("template") or {})
        spec = tpl.get("spec") or {}
        labels = {k: None for k in KARPENTER_WELL_KNOWN}
        labels.update({k: {str(v)} for k, v in ((tpl.get("metadata") or {}).get("labels") or {}).items()})
        labels["karpenter.sh/nodepool"] = {o.name}
        types: list[str] = []
        for req in spec.get("requirements") or []:
            if req.get("operator") == "In":
                labels[req["key"]] = {str(v) for v in req.get("values") or []}
                if req["key"] == "node.kubernetes.io/instance-type":
                    types = list(req.get("values") or [])
            elif req.get("operator") == "Exists":
                labels.setdefault(req["key"], None)
        inst, gpus = _instance_labels(types)
        if "karpenter.k8s.aws/instance-gpu-name" in inst:
            labels["karpenter.k8s.aws/instance-gpu-name"] = inst["karpenter.k8s.aws/instance-gpu-name"]
        gpu = gpus > 0 or GPU in ((o.manifest.get("spec") or {}).get("limits") or {})
        node_class = classes.get((spec.get("nodeClassRef") or {}).get("name"))
        alias = " ".join(str(t.get("alias", "")) for t in ((node_class.manifest.get("spec") or {}).get("amiSelectorTerms")
                                                          or [])) if node_class else ""
        out.append(NodeSource(f"NodePool {o.name}", "nodePool", (o.source, *karpenter), labels,
                              [dict(t) for t in spec.get("taints") or []], gpus or (8 if gpu else 0),
                              d["karpenterGpu" if gpu else "karpenter"]["seconds"],
                              brings_device_plugin=alias.startswith("bottlerocket")))
    return out


def awaited_pods(w: World, urn: str) -> list[PodSet]:
    """The pods a resource's step waits to be Ready, with Helm's and pulumi-kubernetes' rules:
    Helm (`wait`, pkg/kube/ready.go) waits for Deployments (replicas - maxUnavailable ready),
    StatefulSets, Pods and PVCs of the release, Jobs only with waitForJobs, hook Jobs/Pods always
    (pkg/action/hooks.go); DaemonSets only on nodes that exist (desiredNumberScheduled), so they
    need no node source. pulumi-kubernetes waits for all replicas of a Deployment/StatefulSet."""
    if urn not in w._awaited:
        w._awaited[urn] = _awaited_pods(w, urn)
    return w._awaited[urn]


def _awaited_pods(w: World, urn: str) -> list[PodSet]:
    r = w.graph.by_urn.get(urn)
    if r is None:
        return []
    out = []
    if r.type == HELM_RELEASE:
        wait = helm_waits(r)
        for o in w.objects_by_source[urn]:
            if o.controller or o.release is None:
                continue
            hooks = {h.strip() for h in (o.hook or "").split(",") if h.strip()}
            if hooks and not hooks & {"pre-install", "post-install"}:
                continue   # test hooks run on `helm test`; upgrade/delete hooks not on a first install
            for _, meta, spec in pod_templates(o.manifest):
                if hooks:
                    out.append(PodSet(urn, o, meta, spec, hook=o.hook))
                elif o.kind in ("Deployment", "StatefulSet", "Pod") or (o.kind == "Job" and r.inputs.get("waitForJobs")):
                    out.append(PodSet(urn, o, meta, spec, awaited=wait and helm_expected_ready(o) > 0))
        return out
    if r.type.startswith("kubernetes:") and r.custom:
        for o in w.objects_by_source[urn]:
            if o.release or o.controller or o.kind == "DaemonSet":
                continue
            for _, meta, spec in pod_templates(o.manifest):
                replicas = (o.manifest.get("spec") or {}).get("replicas", 1)
                out.append(PodSet(urn, o, meta, spec, awaited=not skip_await(o) and replicas != 0))
    return out


def helm_waits(r: Any) -> bool:
    """pulumi-kubernetes sets Helm's Wait = !skipAwait (provider/pkg/provider/helm_release.go), and
    Helm forces Wait when Atomic is set (pkg/action/install.go: i.Wait = i.Wait || i.Atomic): an
    atomic release is awaited whatever skipAwait says."""
    return not r.inputs.get("skipAwait") or bool(r.inputs.get("atomic"))


def helm_expected_ready(o: K8sObject) -> int:
    """Helm's deploymentReady: replicas - maxUnavailable (a percentage rounds down) must be ready."""
    spec = o.manifest.get("spec") or {}
    replicas = int(spec.get("replicas", 1) or 0)
    if o.kind != "Deployment":
        return replicas
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return replicas
    mu = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    unavailable = int(replicas * int(str(mu)[:-1]) / 100) if str(mu).endswith("%") else int(mu)
    return replicas - unavailable


def skip_await(o: K8sObject) -> bool:
    return str((o.metadata.get("annotations") or {}).get(names.PULUMI_SKIP_AWAIT, "")).lower() == "true"


def fitting(w: World, spec: dict[str, Any]) -> list[NodeSource]:
    return [s for s in w.sources if misfit(spec, s) is None]


def ready_sources(w: World, urn: str, spec: dict[str, Any]) -> list[NodeSource]:
    """Node sources that fit the pods and exist before `urn` starts."""
    return [s for s in fitting(w, spec) if all(w.graph.after(urn, n) for n in s.needs)]
