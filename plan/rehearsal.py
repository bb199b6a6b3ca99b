"""The rehearsal: a first `pulumi up` from nothing and a `pulumi destroy`, simulated over the plan's
dependency graph with the waits Pulumi and Helm really perform (docs/rehearsal.md).

`up`: the estimated minutes along the critical path (durations from platform/durations.yaml), and
the hazards that would make the first deploy fail: a custom resource before its CRD, an object
before the `failurePolicy: Fail` webhook that admits it can answer, pods before a node source that
can hold them, awaits whose timeout is shorter than what they wait for, an API server the deployer
cannot reach. `destroy`: controllers destroyed before the objects whose cloud resources they clean
up, buckets that are not empty, final snapshot names that collide between incarnations, deletion
protection the destroy would run into, and what would be left in the VPC.

Each hazard: {class, level: mandatory|advisory, resources: [urn], objects: [ref], message}. A
mandatory hazard fails the deploy or the destroy: the plan exits 1 (`rejections`).

The graph (what Pulumi's engine waits for, pulumi/pulumi pkg/resource/graph/dependency_graph.go):
a resource starts once its `dependencies` (explicit dependsOn and the resources its inputs come
from; a component stands for its custom descendants), its custom parent and its provider are
created; `pulumi destroy` deletes a resource only after everything that depends on it (the same
edges, plus component parents and deletedWith). Linear in resources and objects: every query on
the graph is a bitset lookup."""

from __future__ import annotations

import heapq
import ipaddress
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components import names
from domain.coldstart import ColdStart, cold_start
from domain.instances import instance_facts
from plan.admission.pod_security import pod_templates
from plan.objects import CLUSTER_SCOPED, HELM_RELEASE, K8sObject

ROOT = Path(__file__).resolve().parent.parent
DURATIONS_FILE = ROOT / "platform" / "durations.yaml"
MANDATORY, ADVISORY = "mandatory", "advisory"
GPU = "nvidia.com/gpu"
NODEGROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
NODEPOOL_KINDS = {("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass"), ("karpenter.sh", "NodeClaim")}
# Goals for the first deploy, by environment (the design's: prod within 20 minutes).
GOAL_MINUTES = {"prod": 20}

# pulumi-kubernetes await defaults (provider/pkg/await: deployment.go DefaultDeploymentTimeoutMins,
# statefulset.go, daemonset.go, job.go, pod.go, service.go DefaultServiceTimeoutMins, ingress.go: 10
# minutes each; awaiters.go untilCoreV1PersistentVolumeClaimReady: 5 minutes, and with
# WaitForFirstConsumer it only waits for Pending). `customTimeouts.create` or the annotation
# `pulumi.com/timeoutSeconds` override them; `pulumi.com/skipAwait: "true"` skips the wait
# (provider/pkg/await/await.go, metadata.SkipAwaitLogic).
PULUMI_AWAIT_S = {"Deployment": 600, "StatefulSet": 600, "DaemonSet": 600, "Job": 600, "Pod": 600,
                  "Service": 600, "Ingress": 600, "PersistentVolumeClaim": 300}
# helm.sh/v3 Release: `timeout` defaults to 300 s (pulumi-kubernetes provider/pkg/provider/
# helm_release.go defaultTimeoutSeconds); `client.Wait = !skipAwait`, `WaitForJobs` only when asked,
# and `atomic` rolls the release back when the wait times out. Helm waits for hooks regardless.
HELM_DEFAULT_TIMEOUT_S = 300
HOOK_JOB_RUN_S = 10
MAX_LEVER_STEPS = 12     # the longest steps of the critical path each lever round considers

# API groups Kubernetes serves itself (kubectl api-resources, 1.34): anything else needs a CRD.
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io", "networking.k8s.io",
    "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "coordination.k8s.io",
    "scheduling.k8s.io", "node.k8s.io", "discovery.k8s.io", "certificates.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "apiregistration.k8s.io", "resource.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "internal.apiserver.k8s.io", "storagemigration.k8s.io",
})
# Groups EKS itself installs CRDs for (the VPC resource controller, the VPC CNI).
EKS_GROUPS = frozenset({"vpcresources.k8s.aws", "crd.k8s.amazonaws.com", "networking.k8s.aws"})
# Plural resource names of the built-in kinds webhook rules name (kubectl api-resources).
PLURALS = {"Endpoints": "endpoints", "Ingress": "ingresses", "IngressClass": "ingressclasses",
           "NetworkPolicy": "networkpolicies", "PodSecurityPolicy": "podsecuritypolicies",
           "StorageClass": "storageclasses", "PriorityClass": "priorityclasses", "RuntimeClass": "runtimeclasses"}


def hazard(cls: str, level: str, message: str, resources: Iterable[str] = (), objects: Iterable[str] = ()) -> dict[str, Any]:
    return {"class": cls, "level": level, "resources": sorted(set(resources)), "objects": sorted(set(objects)),
            "message": message}


@cache
def durations() -> dict[str, Any]:
    return yaml.safe_load(DURATIONS_FILE.read_text())


def seconds(text: Any) -> int | None:
    """A Pulumi custom timeout ("3830s", "10m", "1h30m") in seconds."""
    if text in (None, ""):
        return None
    total, matched = 0.0, False
    for value, unit in re.findall(r"([0-9.]+)\s*(h|m|s|ms)?", str(text)):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "": 1}[unit or ""]
        matched = True
    return int(total) if matched else None


def minutes(s: float) -> float:
    return round(s / 60, 1)


# ======================================================================================= the graph

def provider_urn(ref: str | None) -> str | None:
    """A provider reference is `<urn>::<id>`."""
    return ref.rsplit("::", 1)[0] if ref else None


class Graph:
    """Two views of the plan's resources: `up` (what a resource waits for before it is created) over
    the resources that take real steps (custom resources and remote components), and `destroy`
    (what must still exist while it is deleted) over all of them. Ancestor sets are bitsets."""

    def __init__(self, resources: list[Any], remote: set[str]):
        self.by_urn = {r.urn: r for r in resources}
        self.order = {r.urn: i for i, r in enumerate(resources)}
        self.children: dict[str, list[str]] = defaultdict(list)
        for r in resources:
            if r.parent:
                self.children[r.parent].append(r.urn)
        self.nodes = [r.urn for r in resources if r.custom or r.urn in remote]
        self.node_set = set(self.nodes)
        self._expanded: dict[str, frozenset[str]] = {}
        self.up_preds: dict[str, dict[str, str]] = {}     # urn -> {pred: edge kind}
        self.edge_keys: dict[tuple[str, str], list[str]] = {}   # (pred, urn) -> the inputs that wait for pred
        for urn in self.nodes:
            r = self.by_urn[urn]
            explicit = {e for d in (r.options or {}).get("dependsOn", []) for e in self.expand(d)}
            for key, urns in ((r.options or {}).get("inputDependencies") or {}).items():
                for e in {e for d in urns for e in self.expand(d)}:
                    self.edge_keys.setdefault((e, urn), []).append(key)
            preds: dict[str, str] = {}
            for d in r.dependencies:
                for e in self.expand(d):
                    if e != urn:
                        preds[e] = "dependsOn" if e in explicit or not r.options else "input"
            if r.parent in self.node_set:
                preds.setdefault(r.parent, "parent")
            p = provider_urn(r.provider)
            if p in self.node_set:
                preds.setdefault(p, "provider")
            self.up_preds[urn] = preds
        self.topo = self._topo(self.nodes, lambda u: self.up_preds[u])
        self.up_anc, self.up_bit = self._ancestors(self.topo, lambda u: self.up_preds[u])
        self.destroy_preds: dict[str, set[str]] = {}
        for r in resources:
            deps = {self.resolve(d) for d in r.dependencies} | {self.resolve(r.parent), self.resolve(provider_urn(r.provider))}
            deps.add(self.resolve((r.options or {}).get("deletedWith")))
            self.destroy_preds[r.urn] = {d for d in deps if d and d != r.urn}
        self.destroy_topo = self._topo([r.urn for r in resources], lambda u: self.destroy_preds[u])
        self.destroy_anc, self.destroy_bit = self._ancestors(self.destroy_topo, lambda u: self.destroy_preds[u])

    def resolve(self, urn: str | None) -> str | None:
        """A URN the plan knows: itself, or for a child only a remote component knows (the mocks
        register pulumi-eks' `eksCluster` so references resolve), that component."""
        if not urn:
            return None
        if urn in self.by_urn:
            return urn
        head, _, name = urn.rpartition("::")
        prefix, _, chain = head.rpartition("::")
        while "$" in chain:
            chain = chain.rsplit("$", 1)[0]
            candidate = f"{prefix}::{chain}::{name}"
            if candidate in self.by_urn:
                return candidate
        return None

    def expand(self, urn: str) -> frozenset[str]:
        """The nodes a dependency on `urn` waits for: itself, or a local component's custom
        descendants (the SDK expands dependsOn on a component the same way)."""
        if urn in self._expanded:
            return self._expanded[urn]
        self._expanded[urn] = frozenset()
        real = self.resolve(urn)
        if real in self.node_set:
            out = frozenset({real})
        elif real:
            out = frozenset().union(*(self.expand(c) for c in self.children.get(real, [])))
        else:
            out = frozenset()
        self._expanded[urn] = out
        return out

    def _topo(self, nodes: list[str], preds) -> list[str]:
        indeg = {u: 0 for u in nodes}
        succ: dict[str, list[str]] = defaultdict(list)
        for u in nodes:
            for p in preds(u):
                if p in indeg:
                    indeg[u] += 1
                    succ[p].append(u)
        ready = [(self.order[u], u) for u in nodes if indeg[u] == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            _, u = heapq.heappop(ready)
            out.append(u)
            for s in succ[u]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, (self.order[s], s))
        return out   # a cycle would leave nodes out; Pulumi refuses cycles before any step

    @staticmethod
    def _ancestors(topo: list[str], preds) -> tuple[dict[str, int], dict[str, int]]:
        bit = {u: 1 << i for i, u in enumerate(topo)}
        anc: dict[str, int] = {}
        for u in topo:
            a = 0
            for p in preds(u):
                if p in bit:
                    a |= anc[p] | bit[p]
            anc[u] = a
        return anc, bit

    def after(self, later: str, earlier: str) -> bool:
        """`later` is created only after `earlier` is (a path of up edges)."""
        return bool(self.up_anc.get(later, 0) & self.up_bit.get(earlier, 0))

    def destroyed_before(self, first: str, then: str) -> bool:
        """`pulumi destroy` deletes `first` before it deletes `then` (first depends on then)."""
        return bool(self.destroy_anc.get(first, 0) & self.destroy_bit.get(then, 0))


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
    # EKS add-ons that run Deployments (CoreDNS, the EBS CSI controller, ...) go ACTIVE only once
    # their pods run: their edges from the node group are needed, not levers.
    # Nodes turn Ready only with the CNI and kube-proxy add-ons the node group waits for.
    for r in plan.by_type(ADDON):
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


# ======================================================================================== timing

def image_entry(image: str) -> dict[str, Any]:
    table = durations()["images"]
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@")[0]
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        repo = "/".join(parts[1:])   # registry host stripped
    best = max((k for k in table if k != "default" and (repo == k or repo.startswith(k + "/") or repo.endswith(k))),
               key=len, default=None)
    return table[best] if best else table["default"]


def probe_budget(container: dict[str, Any]) -> int | None:
    """What the startupProbe allows before the kubelet restarts the container."""
    p = container.get("startupProbe")
    if not p:
        return None
    return int(p.get("initialDelaySeconds", 0)) + int(p.get("periodSeconds", 10)) * int(p.get("failureThreshold", 3))


def model_cold_start(w: World, meta: dict[str, Any]) -> ColdStart | None:
    """A model server's cold-start budget (domain/coldstart.py over platform/coldstart.yaml): the
    figures its startup probe and await timeouts are sized from, so the rehearsal times its node
    launch, image pull and first start with the same ones."""
    if w.config is None:
        return None
    name = (meta.get("labels") or {}).get(names.MODEL_LABEL)
    model = next((m for m in getattr(w.config, "models", []) if m.name == name), None)
    pool = next((p for p in getattr(w.config, "gpu_pools", []) if model and p.name == model.pool), None)
    return cold_start(model, pool) if model is not None and pool is not None else None


@dataclass
class PodStart:
    expected: int          # what a first start takes (on the critical path)
    allowed: int           # what the program allows it (startup budgets): awaits must cover it
    parts: str
    pool: str | None       # the NodePool whose node it waits for (None: no launch)


def pod_start(w: World, ps: PodSet, warm: frozenset[str]) -> PodStart:
    spec = ps.spec
    srcs = ready_sources(w, ps.owner, spec) or fitting(w, spec)
    src = min(srcs, key=lambda s: s.launch_s if s.name not in warm else 0, default=None)
    launch = 0 if src is None or src.kind == "nodeGroup" or src.name in warm else src.launch_s
    model = model_cold_start(w, ps.meta)
    if model is not None and launch:
        launch = model.node.seconds
    pulls, expected, allowed = [], [], []
    init_s = 0
    for c in spec.get("initContainers") or []:
        e = image_entry(str(c.get("image") or ""))
        pulls.append(int(e["pull"]))
        init_s += int(e["startup"]) if e["startup"] != "probe" else 0
    for c in spec.get("containers") or []:
        e = image_entry(str(c.get("image") or ""))
        pulls.append(model.pull.seconds if model is not None else int(e["pull"]))
        if e["startup"] == "probe":
            budget = probe_budget(c) or 600
            allowed.append(budget)
            expected.append(model.first_load.seconds + model.warmup.seconds if model is not None else budget)
        else:
            expected.append(int(e["startup"]))
            allowed.append(int(e["startup"]))
    pull = max(pulls, default=0)
    exp = launch + pull + init_s + max(expected, default=0)
    alw = launch + pull + init_s + max(allowed, default=0)
    start_s, budget_s = max(expected, default=0), max(allowed, default=0)
    parts = (f"node {launch}s ({src.name if src else 'none fits'}) + image pull {pull}s + "
             f"{'init ' + str(init_s) + 's + ' if init_s else ''}startup {start_s}s"
             + (f" (startup budget {budget_s}s)" if budget_s != start_s else ""))
    return PodStart(exp, alw, parts, src.name if launch else None)


def type_seconds(r: Any) -> tuple[int, str]:
    table = durations()["resources"]
    if r.type in table:
        return int(table[r.type]["seconds"]), str(table[r.type].get("source", ""))
    pkg = r.type.split(":")[0]
    d = table["default"].get(pkg) or table["default"]["*"]
    return int(d["seconds"]), str(d.get("source", ""))


def declared_timeout(r: Any, o: K8sObject | None) -> int | None:
    """A declared object's await timeout (None: Pulumi does not wait)."""
    if o is not None and skip_await(o):
        return None
    ann = (o.metadata.get("annotations") or {}) if o is not None else {}
    if ann.get("pulumi.com/timeoutSeconds"):
        return int(ann["pulumi.com/timeoutSeconds"])
    custom = seconds(((r.options or {}).get("customTimeouts") or {}).get("create"))
    return custom if custom is not None else PULUMI_AWAIT_S.get(o.kind if o is not None else "", None)


def service_pods(w: World, svc: K8sObject) -> list[PodSet]:
    """The pods a Service selects (any workload of its namespace), for the Service await: Ready
    once its Endpoints hold a ready address (provider/pkg/await/service.go; a Service without a
    selector, headless or ExternalName does not wait for endpoints)."""
    spec = svc.manifest.get("spec") or {}
    sel = spec.get("selector") or {}
    if not sel or spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName":
        return []
    return [PodSet(o.source, o, meta, pspec) for o, meta, pspec in w.pods_by_namespace.get(svc.namespace, [])
            if all((meta.get("labels") or {}).get(k) == v for k, v in sel.items())]


@dataclass
class Step:
    urn: str
    seconds: int
    note: str
    awaited: bool = False
    apply_s: int = 2
    pools: frozenset[str] = frozenset()
    waits_for: str | None = None     # the kind of workload a declared object's await waits for


def step_of(w: World, urn: str, warm: frozenset[str]) -> Step:
    """How long the step of one resource takes, and what it waits for."""
    r = w.graph.by_urn[urn]
    base, source = type_seconds(r)
    if r.type == HELM_RELEASE:
        chart = chart_name(r)
        charts = durations()["charts"]
        apply = int((charts.get(chart) or charts["default"])["apply"])
        phases, pools = release_phases(w, urn, warm)
        hook_s = sum(st.expected + HOOK_JOB_RUN_S for phase, _, st in phases if phase != "wait")
        waits = [(ps, st) for phase, ps, st in phases if phase == "wait"]
        slow = max(waits, key=lambda x: x[1].expected, default=None)
        note = f"chart {chart}: apply {apply}s" + (f" + hooks {hook_s}s" if hook_s else "")
        if slow is not None:
            note += f" + slowest pod {slow[0].obj.ref}: {slow[1].parts}"
        # Helm's wait includes a LoadBalancer Service's address (pkg/kube/ready.go serviceReady)
        lb = durations()["loadBalancer"]["seconds"] if helm_waits(r) and any(
            o.kind == "Service" and (o.manifest.get("spec") or {}).get("type") == "LoadBalancer" and not o.hook
            for o in w.objects_by_source[urn] if o.release) else 0
        note += f" + load balancer {lb}s" if lb else ""
        total = apply + hook_s + max(slow[1].expected if slow else 0, lb)
        # `awaited`: what skipAwait could remove -- hooks run (and are waited for) either way
        return Step(urn, total, note, awaited=bool(waits) or bool(lb), apply_s=apply, pools=frozenset(pools - warm))
    if r.type.startswith("kubernetes:") and r.custom:
        objs = [o for o in w.objects_by_source[urn] if not o.release and not o.controller]
        o = objs[0] if objs else None
        if o is not None and declared_timeout(r, o) is not None:
            pods = [ps for ps in awaited_pods(w, urn) if ps.awaited]
            if o.kind == "Service":
                pods = service_pods(w, o)
            starts = [pod_start(w, ps, warm) for ps in pods]
            lb = durations()["loadBalancer"]["seconds"] if (o.manifest.get("spec") or {}).get("type") == "LoadBalancer" else 0
            if starts or lb:
                slow = max(starts, key=lambda s: s.expected, default=None)
                note = (f"awaits {o.kind} {o.ref}: " + (slow.parts if slow else "") + (f" + load balancer {lb}s" if lb else ""))
                kinds = sorted({ps.obj.kind for ps in pods}) or [o.kind]
                return Step(urn, base + (slow.expected if slow else 0) + lb, note, awaited=True, apply_s=base,
                            pools=frozenset(s.pool for s in starts if s.pool), waits_for=kinds[0])
    return Step(urn, base, source, apply_s=base)


def release_phases(w: World, urn: str, warm: frozenset[str]) -> tuple[list[tuple[str, PodSet, PodStart]], set[str]]:
    """A release's install in Helm's order (helm pkg/action/install.go: pre-install hooks one by
    one, the manifest, the wait, post-install hooks), each pod start estimated on the pools that
    are warm by then (the first pod on a cold NodePool pays its node launch)."""
    pods = awaited_pods(w, urn)
    cur = set(warm)
    phases: list[tuple[str, PodSet, PodStart]] = []

    def hooks_of(kind: str) -> list[PodSet]:
        return [ps for ps in pods if ps.hook and kind in {h.strip() for h in ps.hook.split(",")}]

    for ps in hooks_of("pre-install"):
        st = pod_start(w, ps, frozenset(cur))
        phases.append(("pre-install", ps, st))
        cur |= {st.pool} if st.pool else set()
    main = [(ps, pod_start(w, ps, frozenset(cur))) for ps in pods if not ps.hook and ps.awaited]
    phases += [("wait", ps, st) for ps, st in main]
    cur |= {st.pool for _, st in main if st.pool}
    for ps in hooks_of("post-install"):
        st = pod_start(w, ps, frozenset(cur))
        phases.append(("post-install", ps, st))
        cur |= {st.pool} if st.pool else set()
    return phases, cur


def schedule(w: World, goal_minutes: float | None = None) -> dict[str, Any]:
    """Durations in creation order (a pool's first pods pay its node launch; later ones find it
    warm), the unbounded earliest-start analysis (critical path) and a list schedule with
    `parallel` slots (the estimated minutes)."""
    g = w.graph
    steps: dict[str, Step] = {}
    warm: dict[str, frozenset[str]] = {}
    for u in g.topo:
        seen: frozenset[str] = frozenset()
        for p in g.up_preds[u]:
            if p in warm:
                seen |= warm[p] | steps[p].pools
        warm[u] = seen
        steps[u] = step_of(w, u, seen)
    dur = {u: s.seconds for u, s in steps.items()}
    finish, via = longest(g, dur)
    end = max(finish, key=lambda u: (finish[u], -g.order[u]), default=None)
    path = []
    u = end
    while u is not None:
        path.append(u)
        u = via.get(u)
    path.reverse()
    total = finish[end] if end else 0
    makespan = list_schedule(g, dur, int(durations().get("parallel", 16)))
    over = goal_minutes is not None and makespan > goal_minutes * 60
    return {"steps": steps, "warm": warm, "finish": finish, "path": path, "critical_s": total,
            "makespan_s": makespan, "levers": levers(w, steps, dur, total) if over else []}


def longest(g: Graph, dur: dict[str, int], skip: frozenset[tuple[str, str]] = frozenset()
            ) -> tuple[dict[str, int], dict[str, str | None]]:
    """Earliest finish of every step with unbounded parallelism, and the predecessor that
    decided its start (the critical path runs back through these)."""
    finish: dict[str, int] = {}
    via: dict[str, str | None] = {}
    for u in g.topo:
        start, best = 0, None
        for p in g.up_preds[u]:
            if (p, u) in skip or p not in finish:
                continue
            if finish[p] > start or (finish[p] == start and best is None):
                start, best = finish[p], p
        finish[u] = start + dur[u]
        via[u] = best
    return finish, via


def list_schedule(g: Graph, dur: dict[str, int], parallel: int) -> int:
    """Pulumi's step executor: a step starts when its dependencies are done and a slot is free
    (registration order among the ready); every step, waits included, holds its slot."""
    indeg = {u: sum(1 for p in g.up_preds[u] if p in dur) for u in g.topo}
    succ: dict[str, list[str]] = defaultdict(list)
    for u in g.topo:
        for p in g.up_preds[u]:
            succ[p].append(u)
    ready = [(0, g.order[u], u) for u in g.topo if indeg[u] == 0]
    heapq.heapify(ready)
    running: list[tuple[int, str]] = []
    ready_at: dict[str, int] = defaultdict(int)
    now = end = 0
    while ready or running:
        while ready and len(running) < parallel and ready[0][0] <= now:
            _, _, u = heapq.heappop(ready)
            heapq.heappush(running, (now + dur[u], u))
        if not running:
            now = ready[0][0]
            continue
        now, u = heapq.heappop(running)
        end = max(end, now)
        for s in succ[u]:
            indeg[s] -= 1
            ready_at[s] = max(ready_at[s], now)
            if indeg[s] == 0:
                heapq.heappush(ready, (ready_at[s], g.order[s], s))
    return end


def levers(w: World, steps: dict[str, Step], dur: dict[str, int], total: int) -> list[dict[str, Any]]:
    """What shortens the first deploy, greedily: on the critical path (with the levers found so far
    applied), the change that saves most, until none saves half a minute. Candidates: (1) the
    explicit dependsOn edges from a step on the path (steps that wait for it without using its
    outputs); (2) an input edge on the path (a value computed from an earlier resource's outputs,
    which a value known up front would avoid); (3) awaits on the path: a Helm release, or every
    declared object that waits for pods of one kind (e.g. the model servers' Deployments and
    Services), not waiting. Edges the rules need (node sources, CRDs, webhooks, namespaces,
    controllers) are never candidates."""
    g = w.graph
    succ: dict[str, list[str]] = defaultdict(list)
    for u, preds in g.up_preds.items():
        for p, kind in preds.items():
            if kind == "dependsOn" and (p, u) not in w.required:
                succ[p].append(u)
    skip: frozenset[tuple[str, str]] = frozenset()
    zero: frozenset[str] = frozenset()
    current, out = total, []

    def run(sk: frozenset[tuple[str, str]], ze: frozenset[str]) -> tuple[dict[str, int], dict[str, str | None]]:
        return longest(g, {u: (steps[u].apply_s if u in ze else s) for u, s in dur.items()}, sk)

    for _ in range(8):
        finish, via = run(skip, zero)
        end = max(finish, key=lambda u: finish[u], default=None)
        path: list[str] = []
        while end is not None:
            path.append(end)
            end = via.get(end)
        path.reverse()
        candidates: list[tuple[dict[str, Any], frozenset[tuple[str, str]], frozenset[str]]] = []
        # the steps that weigh on the path: a bounded number of candidates per round
        heavy = set(sorted(path, key=lambda u: -dur[u])[:MAX_LEVER_STEPS])
        for a in (u for u in path[:-1] if u in heavy):
            edges = frozenset((a, b) for b in succ[a] if (a, b) not in skip)
            if edges:
                on_path = [b for _, b in edges if b in path] or [b for _, b in edges]
                candidates.append(({"kind": "dependsOn", "from": [a], "to": sorted(b for _, b in edges),
                                    "message": f"{len(edges)} step(s) wait for {name(g, a)} by explicit dependsOn (e.g. "
                                               f"{', '.join(name(g, b) for b in on_path[:3])}); lever: drop the edges "
                                               "where they do not use it"}, edges, frozenset()))
        for a, b in zip(path, path[1:], strict=False):
            if a in heavy and g.up_preds[b].get(a) == "input" and (a, b) not in w.required and (a, b) not in skip:
                keys = g.edge_keys.get((a, b)) or ["its inputs"]
                candidates.append(({"kind": "input", "from": [a], "to": [b],
                                    "message": f"{name(g, b)} waits {minutes(steps[a].seconds)} min for {name(g, a)} through "
                                               f"its input(s) {', '.join(sorted(set(keys)))}, computed from {g.by_urn[a].name}'s "
                                               "outputs; lever: a value known up front (e.g. from the config), so it "
                                               "builds meanwhile"},
                                   frozenset({(a, b)}), frozenset()))
        seen: set[str] = set()
        for u in (u for u in path if u in heavy):
            st = steps[u]
            if u in zero or not st.awaited or st.seconds - st.apply_s < 60:
                continue
            group = u if g.by_urn[u].type == HELM_RELEASE else st.waits_for or g.by_urn[u].type
            if group in seen:
                continue
            seen.add(group)
            members = frozenset([u] if group == u else [v for v, s2 in steps.items() if s2.awaited
                                                       and s2.waits_for == group and s2.seconds - s2.apply_s >= 60])
            kinds = "/".join(sorted({g.by_urn[v].type.rsplit(":", 1)[-1] for v in members}))
            what = (f"{name(g, u)} waits" if group == u else
                    f"{len(members)} awaits ({kinds}) wait for the pods of {group}s (e.g. {g.by_urn[u].name})")
            candidates.append(({"kind": "await", "resources": sorted(members),
                                "message": f"{what}, up to {minutes(st.seconds)} min ({st.note}); lever: do not "
                                           "wait (pulumi.com/skipAwait, or the release's skipAwait and not atomic) where nothing "
                                           "needs them ready"},
                               frozenset(), members))
        best = None
        for lever, edges, members in candidates:
            new = max(run(skip | edges, zero | members)[0].values(), default=0)
            if best is None or new < best[0]:
                best = (new, lever, edges, members)
        if best is None or current - best[0] < 30:
            break
        new, lever, edges, members = best
        lever.update(minutesSaved=minutes(current - new), criticalPathAfter=minutes(new))
        lever["message"] += f" — saves {lever['minutesSaved']} min (critical path then {minutes(new)} min)"
        out.append(lever)
        skip, zero, current = skip | edges, zero | members, new
    return out


def name(g: Graph, urn: str) -> str:
    r = g.by_urn.get(urn)
    return f"{r.name} ({r.type.rsplit(':', 1)[-1]})" if r else urn


# ======================================================================================= up rules

def crd_order(w: World) -> list[dict[str, Any]]:
    """Every custom resource is created after its CRD: the CRD's declaring resource comes first in
    the graph, or the CRD is in the same release's crds/ directory (Helm installs crds/ before
    rendering the templates: helm pkg/action/install.go installCRDs; a CRD among the templates
    does not help, Helm builds every object of the manifest before applying any: "resource mapping
    not found ... ensure CRDs are installed first")."""
    crds: dict[tuple[str, str], list[tuple[str, bool]]] = defaultdict(list)
    for o in w.plan.objects:
        if o.kind == "CustomResourceDefinition":
            spec = o.manifest.get("spec") or {}
            in_crds_dir = bool(o.release) and (o.template is None or re.match(r"^[^/]+(/charts/[^/]+)*/crds/", o.template or ""))
            crds[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))].append((o.source, bool(in_crds_dir)))
    out = []
    for o in w.plan.objects:
        if o.group in BUILTIN_GROUPS or o.controller or o.kind == "CustomResourceDefinition":
            continue
        defs = crds.get((o.group, o.kind))
        if not defs:
            if o.group not in EKS_GROUPS:
                out.append(hazard("crd-order", ADVISORY, f"{o.ref} ({o.api_version}): no CRD in the plan defines "
                                  f"{o.kind}; it must exist before `pulumi up`", [o.source], [o.ref]))
            continue
        w.required |= {(src, o.source) for src, _ in defs if src != o.source}
        if any((src == o.source and crds_dir) or w.graph.after(o.source, src) for src, crds_dir in defs):
            continue
        same = [src for src, _ in defs if src == o.source]
        why = ("its CRD is a template of the same release (Helm builds the whole manifest before applying it)"
               if same else f"nothing orders it after {', '.join(name(w.graph, s) for s, _ in defs)}")
        out.append(hazard("crd-order", MANDATORY, f"{o.ref} may be created before the CRD of {o.kind}: {why}; "
                          f"make {name(w.graph, o.source)} depend on the CRD's release/resource",
                          [o.source, *(s for s, _ in defs)], [o.ref]))
    return out


def plural(o: K8sObject, crd_plurals: dict[tuple[str, str], str]) -> str:
    if (o.group, o.kind) in crd_plurals:
        return crd_plurals[(o.group, o.kind)]
    if o.kind in PLURALS:
        return PLURALS[o.kind]
    k = o.kind.lower()
    return k[:-1] + "ies" if k.endswith("y") else k + "es" if k.endswith(("s", "x", "ch", "sh")) else k + "s"


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector; an empty (or absent) selector matches everything."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), set(e.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def rule_matches(rule: dict[str, Any], group: str, version: str, resource: str, namespaced: bool) -> bool:
    def has(key: str, value: str) -> bool:
        vals = rule.get(key) or []
        return "*" in vals or value in vals
    scope = rule.get("scope", "*")
    if scope == "Cluster" and namespaced or scope == "Namespaced" and not namespaced:
        return False
    resources = rule.get("resources") or []
    return (has("apiGroups", group) and has("apiVersions", version) and
            ("*" in (rule.get("operations") or []) or "CREATE" in (rule.get("operations") or [])) and
            ("*" in resources or "*/*" in resources or resource in resources))


def webhook_order(w: World) -> list[dict[str, Any]]:
    """Every object a `failurePolicy: Fail` webhook admits is created only after the webhook can
    answer: its release is complete (an awaited release has its pods Ready) before the object's
    creator starts. Matching as the API server does (admissionregistration.k8s.io/v1 rules,
    namespaceSelector on the namespace's labels, or the object's own for a Namespace and never for
    other cluster-scoped objects; objectSelector on the object's labels; an unset failurePolicy is
    Fail). Objects of the webhook's own release are applied before its webhook configurations
    (helm pkg/releaseutil/kind_sorter.go InstallOrder: kinds it does not list, webhook
    configurations among them, go last), except the pods its workloads create later."""
    crd_plurals, crd_scope = {}, {}
    for o in w.plan.objects:
        if o.kind == "CustomResourceDefinition":
            s = o.manifest.get("spec") or {}
            key = (s.get("group", ""), (s.get("names") or {}).get("kind", ""))
            crd_plurals[key] = (s.get("names") or {}).get("plural", "")
            crd_scope[key] = s.get("scope", "Namespaced")
    hooks = []
    for o in w.plan.objects:
        if o.kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            for hook in o.manifest.get("webhooks") or []:
                if (hook.get("failurePolicy") or "Fail") == "Fail":
                    hooks.append((o, hook))
    if not hooks:
        return []
    # what reaches the API server: every object, and the pods of every workload
    subjects: list[tuple[str, str, str, str, bool, dict[str, str], str | None, str, K8sObject]] = []
    for o in w.plan.objects:
        if o.controller:
            continue
        scope = crd_scope.get((o.group, o.kind))
        namespaced = scope == "Namespaced" if scope else o.kind not in CLUSTER_SCOPED
        version = o.api_version.split("/")[-1]
        subjects.append((o.group, version, plural(o, crd_plurals), o.kind, namespaced, o.metadata.get("labels") or {},
                         o.namespace, o.source, o))
        for _, meta, _ in pod_templates(o.manifest):
            if o.kind != "Pod":
                subjects.append(("", "v1", "pods", "Pod", True, meta.get("labels") or {}, o.namespace, o.source, o))
    out = []
    for cfg, hook in hooks:
        owner = cfg.source
        release = w.graph.by_urn.get(owner)
        no_wait = release is not None and release.type == HELM_RELEASE and not helm_waits(release)
        hits: dict[str, list[str]] = defaultdict(list)
        for group, version, resource, kind, namespaced, labels, ns, creator, o in subjects:
            if not any(rule_matches(rule, group, version, resource, namespaced) for rule in hook.get("rules") or []):
                continue
            if kind == "Namespace":
                ns_labels = {**labels, "kubernetes.io/metadata.name": o.name}
            elif namespaced:
                ns_labels = w.namespace_labels.get(ns or "default", {"kubernetes.io/metadata.name": ns or "default"})
            else:
                ns_labels = None
            if ns_labels is not None and not selector_matches(hook.get("namespaceSelector"), ns_labels):
                continue
            if not selector_matches(hook.get("objectSelector"), labels):
                continue
            if creator == owner:
                if kind == "Pod" and o.kind != "Pod":   # its own pods, created after the webhook exists
                    hits[creator].append(f"{o.ref} (pods)")
                continue
            w.required.add((owner, creator))
            if no_wait or not w.graph.after(creator, owner):
                hits[creator].append(o.ref + (" (pods)" if kind == "Pod" and o.kind != "Pod" else ""))
        for creator, refs in hits.items():
            if creator == owner:
                msg = (f"webhook {hook.get('name')} ({cfg.kind} {cfg.name}, failurePolicy Fail) admits the pods of "
                       f"its own release, which are created after it is registered and before it can answer: "
                       f"{', '.join(sorted(set(refs))[:5])}")
            else:
                msg = (f"webhook {hook.get('name')} ({cfg.kind} {cfg.name}, failurePolicy Fail, served by "
                       f"{name(w.graph, owner)}) admits {len(set(refs))} object(s) of {name(w.graph, creator)} "
                       f"({', '.join(sorted(set(refs))[:4])}{', ...' if len(set(refs)) > 4 else ''}), which "
                       + ("is not ordered after it" if not no_wait else "does not wait for its pods (skipAwait)")
                       + ": the API server rejects them while the webhook's pods do not run; make it depend on the "
                         "webhook's release, or narrow the webhook (namespaceSelector/objectSelector, failurePolicy)")
            out.append(hazard("webhook-order", MANDATORY, msg, [creator, owner], [cfg.ref, *refs]))
    return out


def namespace_order(w: World) -> list[dict[str, Any]]:
    """Every namespaced object is created after its Namespace: the API server's NamespaceLifecycle
    admission plugin rejects objects in a namespace that does not exist (a release's
    createNamespace makes its own)."""
    missing: dict[str, list[str]] = defaultdict(list)
    for o in w.plan.objects:
        owner = w.namespace_owner.get(o.namespace or "")
        if o.controller or not owner or owner == o.source or o.kind == "Namespace":
            continue
        w.required.add((owner, o.source))
        if not w.graph.after(o.source, owner):
            missing[o.source].append(o.ref)
    return [hazard("namespace-order", MANDATORY, f"{name(w.graph, src)} is not ordered after namespace "
                   f"{refs[0].split('/')[0]} ({', '.join(refs[:3])}{', ...' if len(refs) > 3 else ''}): the API server "
                   "rejects objects in a namespace that does not exist yet; depend on the Namespace",
                   [src, w.namespace_owner[refs[0].split('/')[0]]], refs) for src, refs in missing.items()]


def pod_reads(ps: PodSet) -> set[tuple[str, str]]:
    """(kind, name) of the Secrets and ConfigMaps a pod mounts or reads into its environment, and
    its ServiceAccount."""
    spec, out = ps.spec, set()
    out.add(("ServiceAccount", str(spec.get("serviceAccountName") or "default")))
    for v in spec.get("volumes") or []:
        if (v.get("secret") or {}).get("secretName"):
            out.add(("Secret", v["secret"]["secretName"]))
        if (v.get("configMap") or {}).get("name"):
            out.add(("ConfigMap", v["configMap"]["name"]))
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("envFrom") or []:
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if (e.get(key) or {}).get("name"):
                    out.add((kind, e[key]["name"]))
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if (vf.get(key) or {}).get("name"):
                    out.add((kind, vf[key]["name"]))
    return out


def placement(w: World) -> list[dict[str, Any]]:
    """Every pod-bearing release or workload comes after a node source its pods fit (taints,
    nodeSelector, required node affinity, GPUs): the system node group, or a Karpenter NodePool
    and the Karpenter controller. An awaited release otherwise starts its clock before any node can
    take its pods (and with atomic rolls back); pods that fit nowhere never schedule. Pods that ask
    for nvidia.com/gpu also need the NVIDIA device plugin to run before (it advertises the
    resource), unless the nodes' AMI brings one (Bottlerocket NVIDIA variants)."""
    out = []
    plugins = w.controllers.get("device-plugin") or []
    # what pods read when they start (Secrets, ConfigMaps) and the Pod Identity association of their
    # service account: orders the levers keep (pods otherwise start without them and crash-loop)
    made: dict[tuple[str, str, str | None], str] = {}
    for o in w.plan.objects:
        if o.kind in ("Secret", "ConfigMap") and not o.controller:
            made[(o.kind, o.name, o.namespace)] = o.source
    for r in w.plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"):
        made[("ServiceAccount", str(r.inputs.get("serviceAccount")), r.inputs.get("namespace"))] = r.urn
    owners = [u for u in w.graph.topo if w.graph.by_urn[u].type == HELM_RELEASE or
              (w.graph.by_urn[u].type.startswith("kubernetes:") and w.graph.by_urn[u].custom)]
    for urn in owners:
        unschedulable, unordered, no_plugin = [], [], []
        for ps in awaited_pods(w, urn):
            for ref in pod_reads(ps):
                src = made.get((*ref, ps.obj.namespace))
                if src and src != urn:
                    w.required.add((src, urn))
            fit = fitting(w, ps.spec)
            level_ok = ps.awaited
            if not fit:
                reasons = "; ".join(f"{s.name}: {misfit(ps.spec, s)}" for s in w.sources) or "no node sources in the plan"
                unschedulable.append((ps, reasons, level_ok))
                continue
            ready = [s for s in fit if all(w.graph.after(urn, n) for n in s.needs)]
            w.required |= {(n, urn) for n in (ready or fit)[0].needs}
            if pod_gpus(ps.spec):
                w.required |= {(p, urn) for p in plugins}
            if not ready:
                unordered.append((ps, fit, level_ok))
            elif pod_gpus(ps.spec) and not any(s.brings_device_plugin for s in ready) and \
                    not any(w.graph.after(urn, p) for p in plugins):
                no_plugin.append((ps, level_ok))
        # Pods that fit nowhere never run, awaited or not (a skipAwait deploy "succeeds" with a
        # workload that never serves): mandatory either way.
        for ps, reasons, awaited in unschedulable[:1]:
            out.append(hazard("node-source", MANDATORY,
                              f"{name(w.graph, urn)}: pods of {ps.obj.ref} fit no node source ({reasons})"
                              + ("; the await times out" if awaited else "; they never schedule"),
                              [urn], [p.obj.ref for p, _, _ in unschedulable]))
        if unordered:
            ps, fit, _ = unordered[0]
            awaited = any(a for _, _, a in unordered)
            missing = [n for n in fit[0].needs if not w.graph.after(urn, n)]
            out.append(hazard("node-source", MANDATORY if awaited else ADVISORY,
                              f"{name(w.graph, urn)} is not ordered after the nodes its pods "
                              f"need ({ps.obj.ref} fits {', '.join(s.name for s in fit)}): depend on "
                              f"{', '.join(name(w.graph, n) for n in missing)}"
                              + (" — its await starts before any node can take them" if awaited else ""),
                              [urn, *missing], sorted({p.obj.ref for p, _, _ in unordered})))
        if no_plugin:
            out.append(hazard("node-source", MANDATORY if any(a for _, a in no_plugin) else ADVISORY,
                              f"{name(w.graph, urn)}: pods of {no_plugin[0][0].obj.ref} ask for {GPU}, which no node "
                              "advertises before the NVIDIA device plugin runs; depend on "
                              f"{', '.join(name(w.graph, p) for p in plugins) or 'a device plugin release'}",
                              [urn, *plugins], [p.obj.ref for p, _ in no_plugin]))
    return out


def await_timeouts(w: World, sched: dict[str, Any]) -> list[dict[str, Any]]:
    """Every await's timeout covers what it waits for: a Helm release's `timeout` (Helm applies it
    to each hook and to the wait, helm pkg/action/install.go) against its slowest pod's estimated
    start; a declared workload's or Service's await (pulumi-kubernetes: 10 min unless customTimeouts,
    pulumi.com/timeoutSeconds or skipAwait) against its pods' start with what the program allows
    them (a model server's startup budget)."""
    out = []
    warm_of = sched.get("warm", {})
    for urn in w.graph.topo:
        r = w.graph.by_urn[urn]
        warm = warm_of.get(urn, frozenset())
        if r.type == HELM_RELEASE:
            # with skipAwait only the hooks are waited for (awaited_pods marks the rest not awaited)
            timeout = int(r.inputs.get("timeout") or HELM_DEFAULT_TIMEOUT_S)
            for _, ps, s in release_phases(w, urn, warm)[0]:
                if s.expected > timeout:
                    out.append(hazard("await-timeout", MANDATORY,
                                      f"{name(w.graph, urn)}: Helm waits {timeout}s (timeout) for "
                                      f"{'hook ' if ps.hook else ''}{ps.obj.ref}, which needs ~{s.expected}s "
                                      f"({s.parts}); raise the release's timeout"
                                      + (" (atomic: the release is rolled back)" if r.inputs.get("atomic") else ""),
                                      [urn], [ps.obj.ref]))
                    break
            continue
        if not (r.type.startswith("kubernetes:") and r.custom):
            continue
        objs = [o for o in w.objects_by_source[urn] if not o.release and not o.controller]
        if not objs:
            continue
        o = objs[0]
        timeout = declared_timeout(r, o)
        if timeout is None:
            continue
        pods = service_pods(w, o) if o.kind == "Service" else [p for p in awaited_pods(w, urn) if p.awaited]
        if not pods:
            continue
        starts = [pod_start(w, ps, warm) for ps in pods]
        lb = durations()["loadBalancer"]["seconds"] if (o.manifest.get("spec") or {}).get("type") == "LoadBalancer" else 0
        worst = max(starts, key=lambda s: s.allowed)
        need = worst.allowed + lb
        if need > timeout:
            custom = ((r.options or {}).get("customTimeouts") or {}).get("create")
            out.append(hazard("await-timeout", MANDATORY,
                              f"{name(w.graph, urn)}: Pulumi waits {timeout}s for {o.kind} {o.ref} "
                              f"({'customTimeouts.create ' + custom if custom else 'the pulumi-kubernetes default'}), "
                              f"its pods may take {need}s ({worst.parts}" + (f" + load balancer {lb}s" if lb else "")
                              + "); set customTimeouts to cover it (or pulumi.com/skipAwait)", [urn], [o.ref]))
    return out


def api_access(w: World) -> list[dict[str, Any]]:
    """The API server is reachable from where `pulumi up` runs: a private-only endpoint is reachable
    only from the VPC and networks connected to it, through 443 on the cluster security group (EKS
    User Guide, "Cluster API server endpoint": "Accessing a private only API server"). The stack
    must give that path (cluster.apiAccess: ingress rules), the Kubernetes provider must wait for
    it, and it cannot be an address inside the VPC this very stack creates."""
    out = []
    vpc_cidrs = [ipaddress.ip_network(r.inputs["cidrBlock"], strict=False) for r in w.plan.by_type("aws:ec2/vpc:Vpc")
                 if r.inputs.get("cidrBlock")]
    for c in [*w.plan.by_type("eks:index:Cluster"), *w.plan.by_type("aws:eks/cluster:Cluster")]:
        i = c.inputs
        vpc_cfg = i.get("vpcConfig") or {}
        public = i.get("endpointPublicAccess", vpc_cfg.get("endpointPublicAccess", True))
        if public is not False:
            cidrs = i.get("publicAccessCidrs") or vpc_cfg.get("publicAccessCidrs") or ["0.0.0.0/0"]
            if "0.0.0.0/0" in cidrs:
                out.append(hazard("api-access", ADVISORY, f"{name(w.graph, c.urn)}: the public endpoint is open to "
                                  "every address (publicAccessCidrs)", [c.urn]))
            continue
        rules = []
        for r in [*w.plan.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"),
                  *w.plan.by_type("aws:ec2/securityGroupRule:SecurityGroupRule")]:
            ri = r.inputs
            if ri.get("type", "ingress") != "ingress":
                continue
            # on the cluster's security group: its id comes from the cluster's outputs
            sg_from = {e for d in ((r.options or {}).get("inputDependencies") or {}).get("securityGroupId", [])
                       for e in w.graph.expand(d)}
            if not (c.urn in sg_from if r.options else w.graph.after(r.urn, c.urn)):
                continue
            lo, hi = int(ri.get("fromPort", -1) or -1), int(ri.get("toPort", -1) or -1)
            if ri.get("ipProtocol", ri.get("protocol")) in ("-1", "all") or lo <= 443 <= hi:
                rules.append(r)
        inside = [r for r in rules for net in vpc_cidrs if r.inputs.get("cidrIpv4")
                  and ipaddress.ip_network(r.inputs["cidrIpv4"], strict=False).overlaps(net)]
        if not rules:
            out.append(hazard("api-access", MANDATORY, f"{name(w.graph, c.urn)}: the endpoint is private and no "
                              "ingress rule on 443 lets the deployer in (cluster.apiAccess); every Kubernetes step of "
                              "`pulumi up` would time out", [c.urn]))
            continue
        for r in inside:
            out.append(hazard("api-access", MANDATORY, f"{name(w.graph, r.urn)}: {r.inputs['cidrIpv4']} lies inside the "
                              "VPC this stack creates: no deployer is there on the first `pulumi up`", [r.urn]))
        for p in w.plan.by_type("pulumi:providers:kubernetes"):
            w.required |= {(r.urn, p.urn) for r in rules}
            if w.graph.after(p.urn, c.urn) and not any(w.graph.after(p.urn, r.urn) for r in rules):
                out.append(hazard("api-access", MANDATORY, f"{name(w.graph, p.urn)} does not wait for the API access "
                                  f"rules ({', '.join(r.name for r in rules)}): its first calls race them",
                                  [p.urn, *(r.urn for r in rules)]))
    return out


# ================================================================================== destroy rules

def kept(w: World) -> set[str]:
    """What `pulumi destroy --exclude-protected` keeps: protected resources and everything they
    depend on (pulumi pkg/cmd/pulumi/operations/destroy.go getProtectedExcludes). Plain `pulumi
    destroy` refuses to start while any resource is protected."""
    g, bits = w.graph, 0
    for r in w.plan.resources:
        if r.protect:
            bits |= g.destroy_anc.get(r.urn, 0) | g.destroy_bit.get(r.urn, 0)
    return {u for u, b in g.destroy_bit.items() if bits & b}


def load_balancer_controller(o: K8sObject) -> str | None:
    """Which controller provisions the load balancer of a Service or Ingress: the AWS Load Balancer
    Controller for `loadBalancerClass: service.k8s.aws/nlb` or the annotation
    aws-load-balancer-type external/nlb-ip (its docs, guide/service/nlb.md), and for Ingresses of
    class alb; otherwise the in-tree cloud provider in the EKS control plane (outlives everything)."""
    spec = o.manifest.get("spec") or {}
    ann = o.metadata.get("annotations") or {}
    if o.kind == "Service" and spec.get("type") == "LoadBalancer":
        if spec.get("loadBalancerClass") == "service.k8s.aws/nlb" or \
                ann.get("service.beta.kubernetes.io/aws-load-balancer-type") in ("external", "nlb-ip"):
            return "aws-load-balancer-controller"
        return "in-tree"
    if o.kind == "Ingress" and (spec.get("ingressClassName") == "alb" or ann.get("kubernetes.io/ingress.class") == "alb"):
        return "aws-load-balancer-controller"
    if o.kind == "TargetGroupBinding":
        return "aws-load-balancer-controller"
    return None


def ebs_claims(w: World, o: K8sObject) -> list[tuple[str, str]]:
    """(storage class, how) of the EBS-backed claims an object makes: a PVC, or a StatefulSet's
    volumeClaimTemplates (those PVCs outlive the StatefulSet: they go with their namespace unless
    persistentVolumeClaimRetentionPolicy.whenDeleted is Delete)."""
    def ebs(sc: str | None) -> bool:
        sc = w.default_storage_class if sc is None else sc
        return bool(sc) and (w.storage_classes.get(sc) or {}).get("provisioner") == "ebs.csi.aws.com"
    if o.kind == "PersistentVolumeClaim":
        sc = (o.manifest.get("spec") or {}).get("storageClassName")
        return [(sc or w.default_storage_class or "", "pvc")] if ebs(sc) else []
    if o.kind == "StatefulSet":
        out = []
        for t in (o.manifest.get("spec") or {}).get("volumeClaimTemplates") or []:
            sc = (t.get("spec") or {}).get("storageClassName")
            if ebs(sc):
                out.append((sc or w.default_storage_class or "", "template"))
        return out
    return []


def controllers_outlive(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """Every controller outlives the objects whose cloud resources it cleans up (the objects depend
    on it, so `pulumi destroy` deletes them first, while it runs):
    - Karpenter after its NodePools and EC2NodeClasses: deleting them terminates the instances it
      launched (NodeClaim finalizers; kubernetes-sigs/karpenter pkg/controllers/node/termination:
      awaitDrain -> awaitVolumeDetachment -> awaitInstanceTermination). Without it the instances
      run on, their ENIs keep the subnets, and the VPC cannot be deleted;
    - the AWS Load Balancer Controller after every LoadBalancer Service, Ingress or Gateway it
      reconciles: its finalizer deletes the NLB/ALB and the security groups it created in the VPC;
    - the EBS CSI driver after PVCs, StatefulSets with volumeClaimTemplates and the namespaces that
      hold their claims: it detaches and deletes the volumes (kubelet unmounts through its node
      plugin; pods stuck terminating hold the namespace, Karpenter waits for VolumeAttachments)."""
    g, out = w.graph, []
    gateway_classes = {o.name: o for o in w.plan.objects if o.kind == "GatewayClass"}
    roles = {str(r.inputs.get("name")): r.urn for r in w.plan.by_type("aws:iam/role:Role") if r.inputs.get("name")}

    def check(owner: str, controller_key: str, what: str, obj: K8sObject, why: str) -> None:
        ctrls = w.controllers.get(controller_key) or []
        if owner in keep or not g.by_urn.get(owner):
            return
        if not ctrls:
            out.append(hazard("controller-outlives", MANDATORY, f"{obj.ref} ({what}) needs {controller_key}, which the "
                              f"plan does not install: nothing cleans up after it on destroy ({why})", [owner], [obj.ref]))
            return
        w.required |= {(c, owner) for c in ctrls if c != owner}
        missing = [c for c in ctrls if c != owner and not g.destroyed_before(owner, c)]
        if missing and len(missing) == len([c for c in ctrls if c != owner]):
            out.append(hazard("controller-outlives", MANDATORY,
                              f"{name(g, owner)} ({what} {obj.ref}) does not depend on {', '.join(name(g, c) for c in missing)}: "
                              f"`pulumi destroy` may remove the controller first and {why}; add the dependency",
                              [owner, *missing], [obj.ref]))

    for o in w.plan.objects:
        if (o.group, o.kind) in NODEPOOL_KINDS and not o.controller:
            check(o.source, "karpenter", o.kind, o, "its instances keep running, their ENIs block the VPC's deletion")
            # the node role too: Karpenter removes it from the instance profiles it made when the
            # EC2NodeClass goes; before that IAM refuses to delete it (DeleteConflict)
            role = roles.get(str((o.manifest.get("spec") or {}).get("role", "")))
            if o.kind == "EC2NodeClass" and role and o.source not in keep and not g.destroyed_before(o.source, role):
                out.append(hazard("controller-outlives", MANDATORY,
                                  f"{name(g, o.source)} (EC2NodeClass {o.ref}) does not depend on its node role "
                                  f"{name(g, role)}: `pulumi destroy` may delete the role while Karpenter's instance "
                                  "profiles still hold it (IAM DeleteConflict) and its nodes still run as it",
                                  [o.source, role], [o.ref]))
        lbc = load_balancer_controller(o)
        if lbc == "aws-load-balancer-controller":
            check(o.source, lbc, f"{o.kind} for a load balancer", o,
                  "the load balancer and its security groups stay in the VPC and block its deletion")
        if o.group == "gateway.networking.k8s.io" and o.kind == "Gateway":
            cls = (o.manifest.get("spec") or {}).get("gatewayClassName", "")
            gc = gateway_classes.get(cls)
            if gc is not None and str((gc.manifest.get("spec") or {}).get("controllerName", "")).startswith("gateway.k8s.aws/"):
                check(o.source, "aws-load-balancer-controller", "Gateway", o,
                      "the load balancer and its security groups stay in the VPC and block its deletion")
        for sc, how in ebs_claims(w, o):
            reclaim = (w.storage_classes.get(sc) or {}).get("reclaimPolicy", "Delete")
            why = ("pods using the volumes cannot unmount (no CSI node plugin) and hold the namespace, "
                   + ("and the volumes are never deleted" if reclaim == "Delete" else "the volumes stay (Retain)"))
            if how == "pvc":
                check(o.source, "ebs-csi", "PersistentVolumeClaim", o, why)
                continue
            ns_owner = w.namespace_owner.get(o.namespace or "")
            if ns_owner:
                check(ns_owner, "ebs-csi", f"namespace {o.namespace} holding claims of", o, why)
            elif reclaim == "Delete" and o.source not in keep:
                out.append(hazard("controller-outlives", ADVISORY,
                                  f"{o.ref}: its volumeClaimTemplates' PVCs outlive the StatefulSet and the plan does not "
                                  f"delete namespace {o.namespace}: `pulumi destroy` leaves their EBS volumes",
                                  [o.source], [o.ref]))
            pol = ((o.manifest.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted")
            if pol == "Delete":
                check(o.source, "ebs-csi", "StatefulSet deleting its claims", o, why)
    return dedupe(out)


def buckets(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """S3 refuses to delete a bucket that holds objects or versions (BucketNotEmpty); the AWS
    provider empties it first only with `forceDestroy`. Protected or retained buckets are kept."""
    out = []
    for r in [*w.plan.by_type("aws:s3/bucket:Bucket"), *w.plan.by_type("aws:s3/bucketV2:BucketV2")]:
        if r.urn in keep or (r.options or {}).get("retainOnDelete"):
            continue
        if not r.inputs.get("forceDestroy"):
            out.append(hazard("bucket-not-empty", MANDATORY, f"{name(w.graph, r.urn)}: not protected and no forceDestroy: "
                              "`pulumi destroy` fails with BucketNotEmpty once anything was written to it", [r.urn]))
    return out


def random_values(w: World, r: Any) -> list[str]:
    """The values of the random:* resources `r` depends on (per incarnation of the stack)."""
    monitor = getattr(w.plan, "monitor", None)
    states = getattr(monitor, "resources", {}) or {}
    out = []
    for d in r.dependencies:
        if d.split("::")[-2].rsplit("$", 1)[-1].startswith("random:"):
            reg = states.get(d)
            state = getattr(reg, "state", None) or {}
            out += [str(state[k]) for k in ("hex", "result", "b64Url", "dec", "id") if state.get(k)]
            if not state:
                out.append("")   # a random dependency whose value the plan does not know
    return out


def snapshots(w: World) -> list[dict[str, Any]]:
    """RDS and ElastiCache final snapshots: RDS requires a FinalSnapshotIdentifier unless
    skipFinalSnapshot (the delete fails otherwise), and a name that exists already fails the
    delete (DBSnapshotAlreadyExists / SnapshotAlreadyExistsFault): the second destroy of a
    recreated stack, unless the name carries a value new with every incarnation (a random:*
    resource in state)."""
    out = []
    for r in [*w.plan.by_type("aws:rds/instance:Instance"), *w.plan.by_type("aws:rds/cluster:Cluster"),
              *w.plan.by_type("aws:elasticache/replicationGroup:ReplicationGroup")]:
        i = r.inputs
        ident = i.get("finalSnapshotIdentifier")
        if r.type.startswith("aws:rds/"):
            if i.get("skipFinalSnapshot"):
                continue
            if not ident:
                out.append(hazard("snapshot-name", MANDATORY, f"{name(w.graph, r.urn)}: skipFinalSnapshot is false and "
                                  "no finalSnapshotIdentifier: the delete fails", [r.urn]))
                continue
        elif not ident:
            continue
        values = random_values(w, r)
        if not any(v == "" or (len(v) >= 4 and v in str(ident)) for v in values):
            out.append(hazard("snapshot-name", MANDATORY,
                              f"{name(w.graph, r.urn)}: final snapshot '{ident}' derives from names only: the destroy of "
                              "the next incarnation of this stack fails because the snapshot exists; add a random "
                              "part kept in state (random.RandomId)", [r.urn]))
    return out


def deletion_protection(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """A resource with the service's deletion protection on but not Pulumi `protect`: `pulumi
    destroy` deletes everything that depends on it and then fails on it (EKS: "Cannot delete
    because cluster has deletion protection enabled"; RDS InvalidParameterCombination). The failure
    is the guard the stack asked for, so advisory; but it comes late: with `protect` too, the
    destroy refuses before deleting anything, and --exclude-protected keeps it."""
    out = []
    for r in w.plan.resources:
        if r.urn in keep:
            continue
        if r.type in ("eks:index:Cluster", "aws:eks/cluster:Cluster", "aws:rds/instance:Instance",
                      "aws:rds/cluster:Cluster") and r.inputs.get("deletionProtection"):
            out.append(hazard("deletion-protection", ADVISORY,
                              f"{name(w.graph, r.urn)}: deletionProtection is on but the resource is not protected: "
                              "`pulumi destroy` removes everything that depends on it, then fails on it; protect it too "
                              "(ResourceOptions.protect), so the destroy stops before deleting anything", [r.urn]))
    return out


def vpc_leftovers(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """Nothing the destroy leaves behind blocks deleting the VPC: objects whose cloud resources sit
    in its subnets (load balancers' ENIs and security groups, instances Karpenter launched) must be
    deleted, not kept by `helm.sh/resource-policy: keep` (helm pkg/action/uninstall.go), retained by
    retainOnDelete, or orphaned by `pulumi.com/deletionPropagationPolicy: orphan`
    (pulumi-kubernetes provider/pkg/metadata/overrides.go; the default is Foreground)."""
    out = []
    vpcs = [r.urn for r in w.plan.by_type("aws:ec2/vpc:Vpc") if r.urn not in keep]
    if not vpcs:
        return out
    for o in w.plan.objects:
        lb = load_balancer_controller(o)
        if not (lb or (o.group, o.kind) in NODEPOOL_KINDS):
            continue
        owner = w.graph.by_urn.get(o.source)
        ann = o.metadata.get("annotations") or {}
        why = None
        if o.release and ann.get("helm.sh/resource-policy") == "keep":
            why = "helm.sh/resource-policy: keep leaves it on uninstall"
        elif owner is not None and o.source not in keep and (owner.options or {}).get("retainOnDelete"):
            why = "its resource has retainOnDelete"
        elif str(ann.get("pulumi.com/deletionPropagationPolicy", "")).lower() == "orphan":
            why = "pulumi.com/deletionPropagationPolicy: orphan leaves what it owns"
        if why:
            what = "its load balancer's ENIs and security groups" if lb else "the instances Karpenter launched"
            out.append(hazard("vpc-blocked", MANDATORY, f"{o.ref}: {why}; {what} stay in the VPC and its deletion fails "
                              "(DependencyViolation)", [o.source, *vpcs], [o.ref]))
    return out


def dedupe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for h in items:
        key = (h["class"], h["message"])
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


# ======================================================================================= the whole

def rehearse(plan: Any, config: Any = None) -> dict[str, Any]:
    """The rehearsal of `pulumi up` (from nothing) and `pulumi destroy` over one plan."""
    w = build_world(plan, config)
    env = getattr(config, "environment", None) or plan.stack
    goal = GOAL_MINUTES.get(env)
    # the ordering rules first: they also mark the edges the levers must keep
    up = [*api_access(w), *namespace_order(w), *crd_order(w), *webhook_order(w), *placement(w)]
    keep = kept(w)
    destroy = dedupe([*controllers_outlive(w, keep), *buckets(w, keep), *snapshots(w), *deletion_protection(w, keep),
                      *vpc_leftovers(w, keep)])
    sched = schedule(w, goal)
    up = dedupe([*up, *await_timeouts(w, sched)])
    steps, finish = sched["steps"], sched["finish"]
    path = [{"urn": u, "name": w.graph.by_urn[u].name, "type": w.graph.by_urn[u].type,
             "startMinutes": minutes(finish[u] - steps[u].seconds), "minutes": minutes(steps[u].seconds),
             "why": steps[u].note, "after": w.graph.up_preds[u].get(sched["path"][i - 1]) if i else None}
            for i, u in enumerate(sched["path"])]
    return {
        "up": {"minutes": minutes(sched["makespan_s"]), "criticalPathMinutes": minutes(sched["critical_s"]),
               "parallel": int(durations().get("parallel", 16)), "goalMinutes": goal, "criticalPath": path,
               "levers": sched["levers"], "hazards": up},
        "destroy": {"excludeProtected": bool(keep), "kept": len(keep), "hazards": destroy},
    }


def mandatory(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for part in ("up", "destroy") for h in result[part]["hazards"] if h["level"] == MANDATORY]


def rejections(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Admission-style findings (check "rehearsal") for the mandatory hazards: the plan exits 1."""
    return [{"object": (h["objects"] or [None])[0], "source": (h["resources"] or [None])[0], "release": None,
             "check": "rehearsal", "message": f"{h['class']}: {h['message']}"} for h in mandatory(result)]


def summary_lines(result: dict[str, Any]) -> list[str]:
    up, down = result["up"], result["destroy"]
    short = " -> ".join(f"{s['name']} ({s['minutes']})" for s in up["criticalPath"] if s["minutes"] >= 0.5)
    lines = [f"first deploy ≈ {math.ceil(up['minutes'])} min (--parallel {up['parallel']}; critical path "
             f"{up['criticalPathMinutes']} min: {short})"]
    if up["goalMinutes"] is not None and up["minutes"] > up["goalMinutes"]:
        lines.append(f"  over the {up['goalMinutes']}-min goal; levers, each applied after the ones above it:")
        lines += [f"    -{lv['minutesSaved']} min: {lv['message']}" for lv in up["levers"]]
    for part, hz in (("up", up["hazards"]), ("destroy", down["hazards"])):
        n = sum(h["level"] == MANDATORY for h in hz)
        lines.append(f"{part}: {n} mandatory, {len(hz) - n} advisory hazard(s)"
                     + (f" (destroy modelled as --exclude-protected: {down['kept']} resources kept)"
                        if part == "destroy" and down["excludeProtected"] else ""))
        lines += [f"  [{h['level']}] {h['class']}: {h['message']}" for h in hz]
    return lines
