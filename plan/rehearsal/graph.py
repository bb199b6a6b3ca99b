"""The plan's dependency graph as Pulumi walks it on up and destroy."""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Any

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
        # Pulumi starts ready steps in registration order, but resources registered from callbacks
        # (apply) register in a different order from run to run, under the mock engine as in a real
        # `pulumi up`: ties break by URN instead, so the same program gives the same estimate.
        self.order = {urn: i for i, urn in enumerate(sorted(r.urn for r in resources))}
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

    def ordered(self, extra: dict[str, tuple[str, ...]]) -> list[str]:
        """A topological order of the up graph with `extra` predecessors (urn -> URNs it must
        follow), ties broken as in `topo`."""
        return self._topo(self.nodes, lambda u: [*self.up_preds[u], *extra.get(u, ())])

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
