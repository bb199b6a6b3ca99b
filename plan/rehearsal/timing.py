"""Durations of the steps, the critical path of a first `pulumi up`, and the levers that shorten it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from components import names
from components.model_weights import WEIGHTS_OF_LABEL, copy_seconds
from domain.coldstart import ColdStart, cold_start, image_repository
from domain.durations import durations
from plan.objects import HELM_RELEASE, K8sObject
from plan.rehearsal.addons import NodeWait, late_of, node_waits
from plan.rehearsal.clock import Late, late_order, list_schedule, longest
from plan.rehearsal.facts import HOOK_JOB_RUN_S, MAX_LEVER_STEPS, PULUMI_AWAIT_S, minutes, seconds
from plan.rehearsal.graph import Graph
from plan.rehearsal.world import PodSet, World, awaited_pods, chart_name, fitting, helm_waits, ready_sources, skip_await

# ======================================================================================== timing

def image_entry(image: str) -> dict[str, Any]:
    table = durations()["images"]
    repo = image_repository(image)   # registry, tag and digest stripped
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


def weights_copy(w: World, meta: dict[str, Any]) -> int:
    """A weights Job's pod copies its model from Hugging Face into S3 (components/model_weights.py):
    what that takes at the cold-start figures its deadline is sized from (0 for any other pod)."""
    name = (meta.get("labels") or {}).get(WEIGHTS_OF_LABEL)
    model = next((m for m in getattr(w.config, "models", []) if m.name == name), None) if name else None
    return sum(copy_seconds(model)) if model is not None else 0


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
    copy = weights_copy(w, ps.meta)
    exp = launch + pull + init_s + copy + max(expected, default=0)
    alw = launch + pull + init_s + copy + max(allowed, default=0)
    start_s, budget_s = max(expected, default=0), max(allowed, default=0)
    parts = (f"node {launch}s ({src.name if src else 'none fits'}) + image pull {pull}s + "
             f"{'init ' + str(init_s) + 's + ' if init_s else ''}"
             f"{'weights copy ' + str(copy) + 's (Hugging Face -> S3) + ' if copy else ''}startup {start_s}s"
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
    endpoints_from: tuple[PodSet, ...] = ()   # a Service's pods: it is Ready no earlier than they are


def step_of(w: World, urn: str, warm: frozenset[str], waits: dict[str, NodeWait]) -> Step:
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
        note += f"; meanwhile the load balancer {lb}s" if lb else ""
        total = apply + hook_s + max(slow[1].expected if slow else 0, lb)
        # `awaited`: what skipAwait could remove -- hooks run (and are waited for) either way
        return Step(urn, total, note, awaited=bool(waits) or bool(lb), apply_s=apply, pools=frozenset(pools - warm))
    if r.type.startswith("kubernetes:") and r.custom:
        objs = [o for o in w.objects_by_source[urn] if not o.release and not o.controller]
        o = objs[0] if objs else None
        if o is not None and declared_timeout(r, o) is not None:
            pods = [ps for ps in awaited_pods(w, urn) if ps.awaited]
            settle = 0
            if o.kind == "Service":
                pods = [ps for ps in service_pods(w, o) if not settled_before(w, urn, ps)]
                settle = SERVICE_SETTLE_S if service_pods(w, o) else 0
            starts = [pod_start(w, ps, warm) for ps in pods]
            lb = durations()["loadBalancer"]["seconds"] if (o.manifest.get("spec") or {}).get("type") == "LoadBalancer" else 0
            if not starts and settle and not lb:
                return Step(urn, base + settle, f"awaits Service {o.ref}: its pods are Ready before it or created "
                            f"after it: the endpoints settle ({settle}s)", apply_s=base)
            if starts or lb:
                slow = max(starts, key=lambda s: s.expected, default=None)
                note = (f"awaits {o.kind} {o.ref}: " + (slow.parts if slow else "")
                        + (f"; meanwhile the load balancer {lb}s" if lb else ""))
                kinds = sorted({ps.obj.kind for ps in pods}) or [o.kind]
                # the endpoints and the load balancer's address are awaited together, and the Load
                # Balancer Controller creates the NLB when the Service appears, not when its pods
                # run (pulumi-kubernetes provider/pkg/await/service.go: one watch loop, ready when
                # serviceReady and endpoints ready): the longer of the two, not their sum
                return Step(urn, base + max(slow.expected if slow else 0, lb), note, awaited=True, apply_s=base,
                            pools=frozenset(s.pool for s in starts if s.pool), waits_for=kinds[0],
                            endpoints_from=tuple(pods) if o.kind == "Service" else ())
    nw = waits.get(urn)
    if nw is not None and nw.beside:
        return Step(urn, base, f"EKS add-on created beside {nw.source.name}: CREATING/DEGRADED until its pods run "
                    f"there; ACTIVE at max({base}s, nodes ready + pod start {nw.pod_start_s}s) ({source})", apply_s=base)
    return Step(urn, base, source, apply_s=base)


# pulumi-kubernetes provider/pkg/await/service.go: every Endpoints update restarts a 10 s settle
SERVICE_SETTLE_S = 10


def settled_before(w: World, svc: str, ps: PodSet) -> bool:
    """The Service's await does not wait for these pods: it succeeds once its endpoints settle with
    no not-ready address (pulumi-kubernetes provider/pkg/await/service.go checkAndLogStatus:
    serviceReady && endpointsSettled && !endpointsPending; zero endpoints count since
    pulumi/pulumi-kubernetes#3142). So it waits only for pods starting meanwhile: not for pods
    whose owner is created after it (none exist yet) nor for pods an earlier step awaited Ready."""
    src = ps.obj.source
    if w.graph.after(src, svc):
        return True
    return w.graph.after(svc, src) and any(p.obj is ps.obj and p.awaited for p in awaited_pods(w, src))


def endpoint_waits(w: World, steps: dict[str, Step], warm: dict[str, frozenset[str]]) -> Late:
    """A Service's await ends once its endpoints hold a ready address (pulumi-kubernetes
    provider/pkg/await/service.go), so no earlier than the pods it selects run: after the step
    that makes them (a Deployment that awaits them: its end; a custom resource whose controller
    creates them, or a workload not awaited: its end + their start, on the pools warm by then).
    Owners ordered after the Service itself are left out."""
    g, out = w.graph, {}
    for u, st in steps.items():
        needs: set[str] = set()
        extra = 0
        for ps in st.endpoints_from:
            src = ps.obj.source
            if src == u or src not in steps or g.after(src, u):
                continue
            needs.add(src)
            if ps.obj.controller or skip_await(ps.obj) or not steps[src].awaited:
                extra = max(extra, pod_start(w, ps, warm[src] | steps[src].pools).expected)
        if needs:
            out[u] = (tuple(sorted(needs)), extra)
    return out


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
    waits = node_waits(w)
    late = late_of(waits)
    for u in g.topo:
        seen: frozenset[str] = frozenset()
        for p in g.up_preds[u]:
            if p in warm:
                seen |= warm[p] | steps[p].pools
        warm[u] = seen
        steps[u] = step_of(w, u, seen, waits)
    dur = {u: s.seconds for u, s in steps.items()}
    late.update(endpoint_waits(w, steps, warm))
    order = late_order(g, late)
    finish, via = longest(g, dur, late=late, order=order)
    end = max(finish, key=lambda u: (finish[u], -g.order[u]), default=None)
    path = []
    u = end
    while u is not None:
        path.append(u)
        u = via.get(u)
    path.reverse()
    total = finish[end] if end else 0
    makespan = list_schedule(g, dur, int(durations().get("parallel", 16)), late)
    over = goal_minutes is not None and makespan > goal_minutes * 60
    # `begin`: when a step's own create starts; `start`: from the finish that decided its end (a
    # node wait's nodes), what the critical path shows
    begin = {u: max((finish[p] for p in g.up_preds[u] if p in finish), default=0) for u in finish}
    start = {u: finish[via[u]] if via.get(u) else 0 for u in finish}
    return {"steps": steps, "warm": warm, "finish": finish, "begin": begin, "start": start, "via": via,
            "path": path, "critical_s": total, "makespan_s": makespan, "nodeWaits": waits,
            "levers": levers(w, steps, dur, total, late, order) if over else []}


def levers(w: World, steps: dict[str, Step], dur: dict[str, int], total: int, late: Late | None = None,
           order: list[str] | None = None) -> list[dict[str, Any]]:
    """What shortens the first deploy, greedily: on the critical path (with the levers found so far
    applied), the change that saves most, until none saves half a minute. Candidates: (1) the
    explicit dependsOn edges from a step on the path (steps that wait for it without using its
    outputs); (2) an input edge on the path (a value computed from an earlier resource's outputs,
    which a value known up front would avoid); (3) awaits on the path: a Helm release, or every
    declared object that waits for pods of one kind (e.g. the model servers' Deployments and
    Services), not waiting. Edges the rules need (node sources, CRDs, webhooks, namespaces,
    controllers) are never candidates, nor the awaits of platform/durations.yaml `neededReady`."""
    g = w.graph
    succ: dict[str, list[str]] = defaultdict(list)
    for u, preds in g.up_preds.items():
        for p, kind in preds.items():
            if kind == "dependsOn" and (p, u) not in w.required:
                succ[p].append(u)
    needed = durations().get("neededReady") or {}   # awaits the platform needs, never a lever
    skip: frozenset[tuple[str, str]] = frozenset()
    zero: frozenset[str] = frozenset()
    current, out = total, []

    def run(sk: frozenset[tuple[str, str]], ze: frozenset[str]) -> tuple[dict[str, int], dict[str, str | None]]:
        return longest(g, {u: (steps[u].apply_s if u in ze else s) for u, s in dur.items()}, sk, late, order)

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
                on_path = [b for _, b in sorted(edges) if b in path] or [b for _, b in sorted(edges)]
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
        # (not the path's last step: not awaiting it ends `pulumi up` sooner, not its pods' start --
        # the estimate is the time to a serving platform, so only an await others queue behind counts)
        for u in (u for u in path[:-1] if u in heavy):
            st = steps[u]
            if u in zero or not st.awaited or st.seconds - st.apply_s < 60 or g.by_urn[u].name in needed:
                continue
            group = u if g.by_urn[u].type == HELM_RELEASE else st.waits_for or g.by_urn[u].type
            if group in seen:
                continue
            seen.add(group)
            members = frozenset([u] if group == u else [v for v, s2 in steps.items() if s2.awaited
                                                       and s2.waits_for == group and s2.seconds - s2.apply_s >= 60
                                                       and g.by_urn[v].name not in needed])
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
