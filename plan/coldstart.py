"""The plan's `coldStart` section: per model, how long a replica takes to come up (node, pull, load,
warm-up, each with its assumption; domain/coldstart.py over platform/coldstart.yaml) and how it fits
its GPUs (weights, KV cache, concurrent maxModelLen sequences; domain/sizing.py), and which of its
replicas start on a warm node of its pool (`warmCapacity`). The same budget
sized the model's startup probe, progressDeadlineSeconds and await timeouts (components/models.py)."""

from __future__ import annotations

from typing import Any

from components import names
from components.config import PlatformConfig
from domain.coldstart import cold_start
from domain.sizing import candidate_types, pool_types, tightest_fit
from plan.engine import Plan


def warm_starts(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Per model on a pool with warm nodes (gpuPools[].warmNodes, a static NodePool with the pool's
    labels and taints): how many of its minimum replicas start on one -- one replica per warm node,
    the models in config order (which pod the scheduler binds first is not ordered; this is the
    plan's assumption) -- and whether warm nodes are left for a scale-out. A replica fits a warm node
    only if every type of the pool could be it (Karpenter picks the static pool's types by cost).
    A warm node holds no image until a model ran on it: pull, load and warm-up, no node launch."""
    out: dict[str, dict[str, Any]] = {}
    for pool in config.gpu_pools:
        if not pool.warm_nodes:
            continue
        left = pool.warm_nodes
        models = [m for m in config.models if m.pool == pool.name and not _isolated(config, m)]
        for m in models:
            fits = len(candidate_types(m, pool)) == len(pool_types(m, pool)) > 0
            n = min(m.min_replicas, left) if fits else 0
            left -= n
            out[m.name] = {"pool": names.warm_pool_name(pool.name), "fits": fits, "minReplicas": n}
        for m in models:
            out[m.name]["scaleOutNodesLeft"] = left if out[m.name]["fits"] else 0
    return out


def _isolated(config: PlatformConfig, m: Any) -> bool:
    """A node-isolated tenant's model runs on its tenant's pool, which keeps no warm nodes."""
    return any(t.name == m.tenant and t.isolation == "node" for t in config.tenants)


def cold_starts(_plan: Plan, config: PlatformConfig) -> dict[str, Any]:
    pools = {p.name: p for p in config.gpu_pools}
    warm = warm_starts(config)
    out: dict[str, Any] = {}
    for m in config.models:
        pool = pools[m.pool]
        fit = tightest_fit(m, pool)
        cs = cold_start(m, pool)
        on_warm = warm.get(m.name)
        if on_warm is not None:
            on_warm["seconds"] = cs.pull.seconds + cs.warm_node_s
        out[m.name] = {"engine": m.engine, "cache": m.cache, "pool": m.pool, **cs.to_json(),
                       "warmCapacity": on_warm, "fit": fit.to_json() if fit else None}
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in result.items():
        parts = ", ".join(f"{k} {r[k]['seconds']} s" for k in ("node", "pull", "load", "warmup"))
        lines.append(f"{name} ({r['engine']}, cache {r['cache']}): new node {r['totalSeconds']} s ({parts}); "
                     f"warm node {r['warmNodeSeconds']} s; first start loads in {r['firstLoad']['seconds']} s, warms up in "
                     f"{r['firstWarmup']['seconds']} s; "
                     f"probe {r['startupProbeSeconds']} s, deadline {r['progressDeadlineSeconds']} s")
        if w := r.get("warmCapacity"):
            lines.append(f"  warm nodes ({w['pool']}): {w['minReplicas']} minimum replica(s) start on one in "
                         f"{w['seconds']} s (pull, load, warm-up; no node launch); {w['scaleOutNodesLeft']} left "
                         "for a scale-out" if w["fits"] else
                         f"  warm nodes ({w['pool']}): not every type of the pool fits a replica; none counted")
        if f := r["fit"]:
            lines.append(f"  fit on {f['gpu']}: {f['weightsGiB']} GiB weights + {f['overheadGiB']} GiB runtime of "
                         f"{f['budgetGiB']} GiB per GPU; KV cache {f['kvCacheGiB']} GiB = "
                         f"{f['maxModelLenSequences']} concurrent maxModelLen sequences")
    return lines or ["no models"]
