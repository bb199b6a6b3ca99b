"""The compute layer's typed output for a GPU pool: what a layer that places GPU pods on it (model
serving) needs to know of the pool, so none of them reads the compute section of the stack config.

Karpenter (components/karpenter.py) builds one per configured GPU pool (`Karpenter.gpu_pools`);
the facts per instance type come from domain/instances.py (platform/instances.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components import names
from components.config import GpuPoolConfig
from domain.instances import instance_facts


@dataclass(frozen=True)
class GpuPool:
    """One GPU NodePool as the pods that run on it see it."""

    name: str
    instance_types: tuple[str, ...]       # what Karpenter may launch (domain.sizing sizes pods by them)
    instance_families: tuple[str, ...]    # g6e, p5, ... (sorted, distinct)
    gpu_models: tuple[str, ...]           # A10G, L40S, H100, ... (sorted, distinct)
    gpu_memory_gib: int                   # nominal memory of the smallest GPU of the pool
    gpus_per_node: int                    # the most GPUs one node of the pool has
    capacity_types: tuple[str, ...]       # on-demand | spot | reserved
    fast_image_pull: bool                 # SOCI parallel pull on its nodes (cold-start budget)
    # What a pod needs to land on the pool: select its nodes, tolerate its taints (the GPU taint
    # and the pool's own, as node_pools.pool_definitions declares them).
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    warm_nodes: int = 0                   # nodes of its static NodePool <name>-warm (gpuPools[].warmNodes)


def pool_tolerations(pool: GpuPoolConfig) -> tuple[dict[str, Any], ...]:
    """The GPU taint's toleration and one per extra taint of the pool (`Exists` when it has no value)."""
    out = [dict(names.GPU_TOLERATION)]
    for t in pool.taints:
        tol = {"key": t.key, "operator": "Equal" if t.value else "Exists", "effect": t.effect}
        if t.value:
            tol["value"] = t.value
        out.append(tol)
    return tuple(out)


def gpu_pool(pool: GpuPoolConfig) -> GpuPool:
    """The typed output of one configured GPU pool."""
    facts = [f for t in pool.instance_types if (f := instance_facts(t)) is not None and f.gpus > 0]
    return GpuPool(
        name=pool.name,
        instance_types=tuple(pool.instance_types),
        instance_families=tuple(sorted({f.family for f in facts})),
        gpu_models=tuple(sorted({f.gpu_model for f in facts if f.gpu_model})),
        gpu_memory_gib=min((f.gpu_memory_gib for f in facts), default=0),
        gpus_per_node=max((f.gpus for f in facts), default=0),
        capacity_types=tuple(pool.capacity_types),
        fast_image_pull=pool.fast_image_pull,
        # A pool with warm nodes: the label its nodes and its static pool's carry (components/node_pools.py).
        node_selector={names.GPU_POOL_LABEL: pool.name} if pool.warm_nodes else {names.NODEPOOL_LABEL: pool.name},
        warm_nodes=pool.warm_nodes,
        tolerations=pool_tolerations(pool),
    )
