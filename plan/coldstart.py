"""The plan's `coldStart` section: per model, how long a replica takes to come up (node, pull, load,
warm-up, each with its assumption; domain/coldstart.py over platform/coldstart.yaml) and how it fits
its GPUs (weights, KV cache, concurrent maxModelLen sequences; domain/sizing.py). The same budget
sized the model's startup probe, progressDeadlineSeconds and await timeouts (components/models.py)."""

from __future__ import annotations

from typing import Any

from components.config import PlatformConfig
from domain.coldstart import cold_start
from domain.sizing import tightest_fit
from plan.engine import Plan


def cold_starts(_plan: Plan, config: PlatformConfig) -> dict[str, Any]:
    pools = {p.name: p for p in config.gpu_pools}
    out: dict[str, Any] = {}
    for m in config.models:
        pool = pools[m.pool]
        fit = tightest_fit(m, pool)
        out[m.name] = {"engine": m.engine, "cache": m.cache, "pool": m.pool, **cold_start(m, pool).to_json(),
                       "fit": fit.to_json() if fit else None}
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, r in result.items():
        parts = ", ".join(f"{k} {r[k]['seconds']} s" for k in ("node", "pull", "load", "warmup"))
        lines.append(f"{name} ({r['engine']}, cache {r['cache']}): new node {r['totalSeconds']} s ({parts}); "
                     f"warm node {r['warmNodeSeconds']} s; first start loads in {r['firstLoad']['seconds']} s; "
                     f"probe {r['startupProbeSeconds']} s, deadline {r['progressDeadlineSeconds']} s")
        if f := r["fit"]:
            lines.append(f"  fit on {f['gpu']}: {f['weightsGiB']} GiB weights + {f['overheadGiB']} GiB runtime of "
                         f"{f['budgetGiB']} GiB per GPU; KV cache {f['kvCacheGiB']} GiB = "
                         f"{f['maxModelLenSequences']} concurrent maxModelLen sequences")
    return lines or ["no models"]
