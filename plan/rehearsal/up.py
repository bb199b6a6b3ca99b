"""The rules of a first `pulumi up`: CRDs, webhooks, namespaces, placement, awaits, API access."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from typing import Any

from domain.durations import durations
from domain.selectors import selector_matches
from plan.admission.pod_security import pod_templates
from plan.objects import CLUSTER_SCOPED, EKS_CLUSTER, EKS_CONTROL_PLANE, HELM_RELEASE, K8sObject
from plan.rehearsal.facts import (
    ADVISORY,
    BUILTIN_GROUPS,
    EKS_GROUPS,
    GPU,
    HELM_DEFAULT_TIMEOUT_S,
    MANDATORY,
    PLURALS,
    hazard,
)
from plan.rehearsal.timing import declared_timeout, name, pod_start, release_phases, service_pods
from plan.rehearsal.world import PodSet, World, awaited_pods, fitting, helm_waits, misfit, pod_gpus

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
            if ns_labels is not None and not selector_matches(hook.get("namespaceSelector") or {}, ns_labels):
                continue
            if not selector_matches(hook.get("objectSelector") or {}, labels):
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
        need = max(worst.allowed, lb)   # awaited together (service.go), as in timing.step_of
        # a Service created before the step that makes its pods waits for that step too
        need = max(need, sched["finish"].get(urn, 0) - sched["begin"].get(urn, 0))
        if need > timeout:
            custom = ((r.options or {}).get("customTimeouts") or {}).get("create")
            out.append(hazard("await-timeout", MANDATORY,
                              f"{name(w.graph, urn)}: Pulumi waits {timeout}s for {o.kind} {o.ref} "
                              f"({'customTimeouts.create ' + custom if custom else 'the pulumi-kubernetes default'}), "
                              f"its pods may take {need}s ({worst.parts}" + (f"; meanwhile the load balancer {lb}s" if lb else "")
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
    for c in [*w.plan.by_type(EKS_CLUSTER), *w.plan.by_type(EKS_CONTROL_PLANE)]:
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
