"""EKS add-ons whose pods need nodes, created beside the node group instead of after it.

The AWS provider waits for an add-on through CREATING and DEGRADED until ACTIVE
(terraform-provider-aws internal/service/eks/addon.go `waitAddonCreated`: Pending CREATING,
DEGRADED, Target ACTIVE, create timeout 20 min unless customTimeouts): an add-on created before
any node can take its Deployment's pods stays DEGRADED and the provider keeps polling
(pulumi/pulumi-eks#1819, terraform-aws-modules/terraform-aws-eks#3001), then goes ACTIVE once the
pods run. So such an add-on is the one modelled exception to "pod-bearing steps after a node
source": it ends at max(its own duration, node source ready + pod start), its create timeout must
cover that wait, and the nodes must not wait for it. The figures (which add-ons run Deployments,
their default tolerations, pod start) are platform/durations.yaml `addons`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.durations import durations, timeout_seconds
from plan.objects import EKS_CLUSTER, EKS_CONTROL_PLANE
from plan.rehearsal.clock import Late
from plan.rehearsal.facts import ADDON, MANDATORY, hazard, seconds
from plan.rehearsal.world import NodeSource, World, fitting, misfit


@dataclass(frozen=True)
class NodeWait:
    """An add-on created before the nodes its pods need: it polls until they run."""
    addon: str
    source: NodeSource
    needs: tuple[str, ...]
    pod_start_s: int
    beside: bool = True    # not ordered after its nodes (False: after them, the wait is its own duration)


def addon_entry(r: Any) -> dict[str, Any] | None:
    return (durations().get("addons") or {}).get(str(r.inputs.get("addonName")))


def addon_pod_spec(entry: dict[str, Any]) -> dict[str, Any]:
    return {"tolerations": list(entry.get("tolerations") or [])}


def node_waits(w: World) -> dict[str, NodeWait]:
    """Every Deployment add-on with the node source its pods wait for (the node group first:
    Karpenter's nodes come only after it). Ordered after that source or not, it is ACTIVE no
    earlier than the nodes plus its pod start; `beside` tells the two apart. A source that waits
    for the add-on itself is left out (addon_hazards reports it)."""
    out: dict[str, NodeWait] = {}
    for r in w.plan.by_type(ADDON):
        entry = addon_entry(r)
        if not entry or entry.get("workload") != "Deployment":
            continue
        fit = fitting(w, addon_pod_spec(entry))
        src = min(fit, key=lambda s: (s.kind != "nodeGroup", len(s.needs)), default=None)
        if src is None:
            continue
        needs = tuple(n for n in src.needs if n in w.graph.node_set)
        if any(w.graph.after(n, r.urn) for n in needs):
            continue
        out[r.urn] = NodeWait(r.urn, src, needs, int(entry["podStart"]),
                              beside=not all(w.graph.after(r.urn, n) for n in needs))
    return out


def late_of(waits: dict[str, NodeWait]) -> Late:
    return {u: (nw.needs, nw.pod_start_s) for u, nw in waits.items()}


def addon_timeout(r: Any) -> int:
    custom = seconds(((r.options or {}).get("customTimeouts") or {}).get("create"))
    return custom if custom is not None else timeout_seconds("addonCreate")


def early_addon_hazards(w: World, sched: dict[str, Any]) -> list[dict[str, Any]]:
    """Add-ons created before the add-on API is ready (`readyAfterActive` after the control plane is
    ACTIVE: the cluster component's start + the control plane's own figure) are retried up to
    `addonApiRetries` (platform/durations.yaml): a create timeout that does not cover that and the
    add-on's own time can end the first deploy there, and the node group behind vpc-cni never starts."""
    retries = durations()["timeouts"]["addonApiRetries"]
    control_plane_s = int(durations()["resources"][EKS_CONTROL_PLANE]["seconds"])
    start, finish = sched["begin"], sched["finish"]
    out = []
    for cluster in w.plan.by_type(EKS_CLUSTER):
        ready = start.get(cluster.urn, 0) + control_plane_s + int(retries["readyAfterActive"])
        for r in w.plan.by_type(ADDON):   # this cluster's add-ons
            if cluster.inputs.get("name") not in (None, r.inputs.get("clusterName")) or start.get(r.urn, ready) >= ready:
                continue
            needed = int(retries["seconds"]) + finish.get(r.urn, 0) - start[r.urn]
            if addon_timeout(r) < needed:
                out.append(hazard("await-timeout", MANDATORY,
                                  f"{r.name} (EKS add-on {r.inputs.get('addonName')}) is created before the add-on API "
                                  f"is ready (~{retries['readyAfterActive']}s after ACTIVE) and may be retried up to "
                                  f"{retries['seconds']}s; the provider waits {addon_timeout(r)}s "
                                  f"(customTimeouts.create): raise it to {needed}s or more", [r.urn, cluster.urn]))
    return out


def addon_hazards(w: World, sched: dict[str, Any]) -> list[dict[str, Any]]:
    """Deployment add-ons whose pods fit no node source (DEGRADED until the provider gives up),
    node sources that wait for the add-on that waits for them, and node waits longer than the
    add-on's create timeout."""
    out = []
    waits: dict[str, NodeWait] = sched.get("nodeWaits", {})
    finish, start = sched["finish"], sched["begin"]
    for r in w.plan.by_type(ADDON):
        entry = addon_entry(r)
        if not entry or entry.get("workload") != "Deployment":
            continue
        label = f"{r.name} (EKS add-on {r.inputs.get('addonName')})"
        if not fitting(w, addon_pod_spec(entry)):
            reasons = "; ".join(f"{s.name}: {misfit(addon_pod_spec(entry), s)}" for s in w.sources) or "no node sources"
            out.append(hazard("node-source", MANDATORY, f"{label}: its pods fit no node source ({reasons}); the "
                              "add-on stays DEGRADED and the provider fails at its create timeout", [r.urn]))
            continue
        nw = waits.get(r.urn)
        if nw is None:
            src = fitting(w, addon_pod_spec(entry))[0]
            cycle = [n for n in src.needs if w.graph.after(n, r.urn)]
            out.append(hazard("node-source", MANDATORY, f"{label} is ACTIVE only once its pods run on "
                              f"{src.name}, which waits for it: neither finishes", [r.urn, *cycle]))
            continue
        waited = finish.get(r.urn, 0) - start.get(r.urn, 0)
        timeout = addon_timeout(r)
        if waited > timeout:
            out.append(hazard("await-timeout", MANDATORY, f"{label}: the provider waits {timeout}s for ACTIVE "
                              f"(customTimeouts.create), but created beside {nw.source.name} it needs ~{waited}s "
                              f"(the nodes, then pod start {nw.pod_start_s}s); raise customTimeouts.create",
                              [r.urn, *nw.needs]))
    return out
