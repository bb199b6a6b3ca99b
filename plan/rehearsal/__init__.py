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

import math
from typing import Any

from domain.durations import durations
from plan.rehearsal.addons import addon_hazards, early_addon_hazards
from plan.rehearsal.destroy import buckets, controllers_outlive, dedupe, deletion_protection, kept, snapshots, vpc_leftovers
from plan.rehearsal.facts import ADDON, GOAL_MINUTES, MANDATORY, hazard, minutes, seconds
from plan.rehearsal.timing import schedule
from plan.rehearsal.up import api_access, await_timeouts, crd_order, namespace_order, placement, webhook_order
from plan.rehearsal.world import awaited_pods, build_world


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
    up = dedupe([*up, *addon_hazards(w, sched), *early_addon_hazards(w, sched)])
    steps, finish, start = sched["steps"], sched["finish"], sched["start"]
    # "after": the edge kind that made the step wait, or what decided its end without an edge:
    # "nodes" for an add-on created beside its node source (plan/rehearsal/addons.py), "pods" for
    # a Service whose pods' owner came later (timing.endpoint_waits)
    path = [{"urn": u, "name": w.graph.by_urn[u].name, "type": w.graph.by_urn[u].type,
             "startMinutes": minutes(start[u]), "minutes": minutes(finish[u] - start[u]),
             "why": steps[u].note, "after": (w.graph.up_preds[u].get(sched["path"][i - 1])
                       or ("nodes" if w.graph.by_urn[u].type == ADDON else "pods")) if i else None}
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
        if up["levers"]:
            lines.append(f"  over the {up['goalMinutes']}-min goal; levers, each applied after the ones above it:")
            lines += [f"    -{lv['minutesSaved']} min: {lv['message']}" for lv in up["levers"]]
        else:
            lines.append(f"  over the {up['goalMinutes']}-min goal; no lever: every wait on the critical path is one "
                         "a rule needs (node sources, CRDs, webhooks, namespaces, storage), an await the platform needs "
                         "(durations.yaml neededReady) or a step's own duration")
    for part, hz in (("up", up["hazards"]), ("destroy", down["hazards"])):
        n = sum(h["level"] == MANDATORY for h in hz)
        lines.append(f"{part}: {n} mandatory, {len(hz) - n} advisory hazard(s)"
                     + (f" (destroy modelled as --exclude-protected: {down['kept']} resources kept)"
                        if part == "destroy" and down["excludeProtected"] else ""))
        lines += [f"  [{h['level']}] {h['class']}: {h['message']}" for h in hz]
    return lines


# The package's public API (the plan, its report and the tests use these).
__all__ = ["awaited_pods", "build_world", "durations", "hazard", "mandatory", "rehearse", "rejections",
           "seconds", "summary_lines"]
