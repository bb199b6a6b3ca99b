"""The clock of a first `pulumi up`: earliest finishes with unbounded parallelism (the critical
path) and Pulumi's step executor with `--parallel` slots, over the graph's up edges plus the
node waits of EKS add-ons created beside their nodes (plan/rehearsal/addons.py)."""

from __future__ import annotations

import heapq
from collections import defaultdict

from plan.rehearsal.graph import Graph

# urn -> (the URNs its pods' node source needs, pod start once they exist): the step cannot end
# before max(its own duration, those URNs' finish + pod start)
Late = dict[str, tuple[tuple[str, ...], int]]


def late_order(g: Graph, late: Late | None) -> list[str]:
    """A topological order in which every node wait comes after the resources it waits for."""
    if not late:
        return g.topo
    order = g.ordered({u: needs for u, (needs, _) in late.items()})
    # a wait that closed a cycle would leave steps out: then the plain order (longest() skips a
    # wait whose needs have not finished yet)
    return order if len(order) == len(g.topo) else g.topo


def longest(g: Graph, dur: dict[str, int], skip: frozenset[tuple[str, str]] = frozenset(),
            late: Late | None = None, order: list[str] | None = None
            ) -> tuple[dict[str, int], dict[str, str | None]]:
    """Earliest finish of every step with unbounded parallelism, and the predecessor that
    decided its end (the critical path runs back through these): an up edge, or for a node wait
    the node source's resource when its nodes plus the pod start come later than the step's own
    duration."""
    finish: dict[str, int] = {}
    via: dict[str, str | None] = {}
    late = late or {}
    for u in order or late_order(g, late):
        start, best = 0, None
        for p in g.up_preds[u]:
            if (p, u) in skip or p not in finish:
                continue
            if finish[p] > start or (finish[p] == start and best is None):
                start, best = finish[p], p
        finish[u] = start + dur[u]
        via[u] = best
        needs, pod_s = late.get(u, ((), 0))
        done = [n for n in needs if n in finish]
        if done:
            n = max(done, key=lambda n: finish[n])
            if finish[n] + pod_s > finish[u]:
                finish[u], via[u] = finish[n] + pod_s, n
    return finish, via


def list_schedule(g: Graph, dur: dict[str, int], parallel: int, late: Late | None = None) -> int:
    """Pulumi's step executor: a step starts when its dependencies are done and a slot is free
    (ties among the ready by URN: graph.py); every step, waits included, holds its slot -- a node
    wait too, polling until its nodes exist and its pods ran."""
    late = {u: v for u, v in (late or {}).items() if u in dur}
    indeg = {u: sum(1 for p in g.up_preds[u] if p in dur) for u in g.topo}
    succ: dict[str, list[str]] = defaultdict(list)
    for u in g.topo:
        for p in g.up_preds[u]:
            succ[p].append(u)
    ready = [(0, g.order[u], u) for u in g.topo if indeg[u] == 0]
    heapq.heapify(ready)
    running: list[tuple[int, str]] = []
    ready_at: dict[str, int] = defaultdict(int)
    done: dict[str, int] = {}
    waiting: dict[str, list[str]] = defaultdict(list)   # need -> node waits holding a slot for it
    pending: dict[str, int] = {}                         # node wait -> its needs not done yet
    checked: set[str] = set()
    now = end = 0

    def nodes_done(u: str) -> int:
        needs, pod_s = late[u]
        return max((done[n] for n in needs if n in done), default=0) + pod_s

    while ready or running:
        while ready and len(running) + len(pending) < parallel and ready[0][0] <= now:
            _, _, u = heapq.heappop(ready)
            heapq.heappush(running, (now + dur[u], u))
        if not running:
            if len(pending) >= parallel or not ready:
                break   # every slot held by node waits whose nodes cannot start: a deadlock
            now = max(now, ready[0][0])
            continue
        now, u = heapq.heappop(running)
        if u in late and u not in checked:
            checked.add(u)
            missing = [n for n in late[u][0] if n in dur and n not in done]
            if missing:
                pending[u] = len(missing)
                for n in missing:
                    waiting[n].append(u)
                continue
            if nodes_done(u) > now:
                heapq.heappush(running, (nodes_done(u), u))
                continue
        done[u] = now
        end = max(end, now)
        for v in waiting.pop(u, []):
            pending[v] -= 1
            if pending[v] == 0:
                del pending[v]
                heapq.heappush(running, (max(now, nodes_done(v)), v))
        for s in succ[u]:
            indeg[s] -= 1
            ready_at[s] = max(ready_at[s], now)
            if indeg[s] == 0:
                heapq.heappush(ready, (ready_at[s], g.order[s], s))
    return end
