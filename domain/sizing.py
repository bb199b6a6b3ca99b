"""Model sizing: weights, where a replica fits, what a model pod requests, how long it may start.

The model-serving layer deploys with these numbers and the config's fit rules validate with the
same ones, so what is validated is what is deployed:
- weights: parametersB x bytes per parameter (bf16/fp16 2, fp8 1, awq/gptq/bitsandbytes 0.5);
- a model may land on any instance type of its pool with enough GPUs (and its gpuModel, if set);
  memory checks use the smallest-memory GPU among those;
- CPU and memory: the per-GPU share of the tightest candidate instance, x GPUs, x 80% (kubelet
  reserve and DaemonSets), capped per GPU so one big node does not make the request absurd.

`m` is a model entry (`models[]`: quantization, dtype, parameters_b, gpus, gpu_model, cache,
cache_size_gib) and `pool` a GPU pool (instance_types); any object with those attributes will do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.instances import InstanceFacts, instance_facts

BYTES_PER_PARAM = {"none": 2.0, "fp8": 1.0, "awq": 0.5, "gptq": 0.5, "bitsandbytes": 0.5}
KV_HEADROOM = 0.8             # weights may take at most 80% of the engine's GPU memory budget
NODE_SHARE = 0.8              # of a node's per-GPU CPU/memory share a model pod requests
CPU_PER_GPU_MAX = 6
MEMORY_PER_GPU_MAX_GIB = 32
SHM_MAX_GIB = 32
STARTUP_S_PER_GIB = 20        # budget to download/stream and load one GiB of weights
STARTUP_MIN_S = 600
STARTUP_MAX_S = 3600
TMP_GIB = 4
HOME_GIB = 8                  # torch/triton compile caches live under HOME
S3_SCRATCH_GIB = 20           # tokenizer and config files runai_streamer copies locally
NODE_LAUNCH_S = 1200         # Karpenter launch + GPU driver/plugin ready + image pull


def bytes_per_param(m: Any) -> float:
    return BYTES_PER_PARAM[m.quantization]


def precision(m: Any) -> str:
    return m.quantization if m.quantization != "none" else ("bfloat16" if m.dtype == "auto" else m.dtype)


def weights_gb(m: Any) -> float:
    """Weights in GB (10^9 bytes), the unit model cards use."""
    return m.parameters_b * bytes_per_param(m)


def weights_gib(m: Any) -> float:
    return weights_gb(m) * 1e9 / 2**30


def _matches_gpu(f: InstanceFacts, gpu_model: str | None) -> bool:
    return gpu_model is None or (f.gpu_model or "").lower() == gpu_model.lower()


def pool_types(m: Any, pool: Any) -> list[InstanceFacts]:
    """Instance types of the pool carrying the model's gpuModel (any GPU if unset)."""
    return [f for t in pool.instance_types if (f := instance_facts(t)) and f.gpus > 0 and _matches_gpu(f, m.gpu_model)]


def candidate_types(m: Any, pool: Any) -> list[InstanceFacts]:
    """Where one replica can land: the pool's (gpuModel) types with at least `gpus` GPUs."""
    return [f for f in pool_types(m, pool) if f.gpus >= m.gpus]


def max_gpus_per_node(instance_types: list[str]) -> int:
    """The most GPUs one node of these (listed) instance types has."""
    return max((f.gpus for t in instance_types if (f := instance_facts(t))), default=0)


@dataclass(frozen=True)
class PodSize:
    cpu_m: int
    memory_gib: int
    shm_gib: int


def pod_size(m: Any, pool: Any) -> PodSize:
    cands = candidate_types(m, pool)
    if not cands:  # config validation refuses this; a safe floor keeps the function total
        return PodSize(1000 * m.gpus, 8 * m.gpus, 1)
    cpu_share = min(f.vcpu / f.gpus for f in cands)
    mem_share = min(f.memory_gib / f.gpus for f in cands)
    cpu_m = int(min(cpu_share * NODE_SHARE, CPU_PER_GPU_MAX) * m.gpus * 10) * 100
    memory_gib = int(min(mem_share * NODE_SHARE, MEMORY_PER_GPU_MAX_GIB) * m.gpus)
    return PodSize(cpu_m, memory_gib, max(1, min(memory_gib // 4, SHM_MAX_GIB)))


@dataclass(frozen=True)
class Demand:
    """What models request at their maxReplicas: what their namespace's ResourceQuota must admit."""

    gpus: int
    cpu: float          # cores
    memory_gib: float


def max_replica_demand(models: Sequence[Any], pools: Mapping[str, Any]) -> Demand:
    """GPUs of all `models` at maxReplicas; CPU and memory requests of those whose pool is known."""
    sizes = [(m, pod_size(m, pools[m.pool])) for m in models if m.pool in pools]
    return Demand(gpus=sum(m.max_replicas * m.gpus for m in models),
                  cpu=sum(m.max_replicas * s.cpu_m for m, s in sizes) / 1000,
                  memory_gib=sum(m.max_replicas * s.memory_gib for m, s in sizes))


def startup_budget_s(m: Any) -> int:
    return int(min(max(weights_gib(m) * STARTUP_S_PER_GIB, STARTUP_MIN_S), STARTUP_MAX_S))


def rollout_budget_s(m: Any) -> int:
    """How long the first replica may take to serve: a GPU node launch plus the startup budget. The
    one figure the Deployment's and the Service's Pulumi await timeouts come from."""
    return startup_budget_s(m) + NODE_LAUNCH_S


def ephemeral_gib(m: Any) -> int:
    cache = {"nodeLocal": m.cache_size_gib, "s3": S3_SCRATCH_GIB, "pvc": 0}[m.cache]
    return TMP_GIB + HOME_GIB + cache


def weight_budget_gib(m: Any, gpu: InstanceFacts) -> float:
    """GPU memory the weights may take on `m.gpus` x `gpu`: KV_HEADROOM of the engine's share."""
    return KV_HEADROOM * m.gpu_memory_utilization * m.gpus * gpu.gpu_memory_gib
