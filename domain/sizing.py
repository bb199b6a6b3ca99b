"""Model sizing: weights, where a replica fits, what a model pod requests.

The model-serving layer deploys with these numbers and the config's fit rules validate with the
same ones, so what is validated is what is deployed:
- weights: parametersB x bytes per parameter (bf16/fp16 2, fp8 1, awq/gptq/bitsandbytes 0.5);
- a model may land on any instance type of its pool with enough GPUs (and its gpuModel, if set);
  memory checks use the smallest-memory GPU among those;
- fit (`fit`): per GPU, gpuMemoryUtilization x the GPU's memory must hold the weights' tensor-parallel
  share, the runtime overhead and the KV cache of at least one maxModelLen sequence (what vLLM needs
  to start: check_enough_kv_cache_memory in vllm/v1/core/kv_cache_utils.py raises "To serve at least
  one request with the models's max seq len ..." otherwise); the model's
  shape comes from platform/model-facts.yaml or `models[i].architecture`;
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
from domain.pins import platform_data

BYTES_PER_PARAM = {"none": 2.0, "fp8": 1.0, "awq": 0.5, "gptq": 0.5, "bitsandbytes": 0.5}
NODE_SHARE = 0.8              # of a node's per-GPU CPU/memory share a model pod requests
CPU_PER_GPU_MAX = 6
MEMORY_PER_GPU_MAX_GIB = 32
SHM_MAX_GIB = 32
TMP_GIB = 4
HOME_GIB = 8                  # torch/triton compile caches live under HOME
S3_SCRATCH_GIB = 20           # tokenizer and config files runai_streamer copies locally


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


def ephemeral_gib(m: Any) -> int:
    cache = {"nodeLocal": m.cache_size_gib, "s3": S3_SCRATCH_GIB, "pvc": 0}[m.cache]
    return TMP_GIB + HOME_GIB + cache


@dataclass(frozen=True)
class Architecture:
    """What the KV cache and tensor parallelism depend on (a model's config.json)."""
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_positions: int | None
    source: str


def architecture(m: Any) -> Architecture | None:
    """The model's shape: `models[i].architecture` if set, else platform/model-facts.yaml; None if neither."""
    a = getattr(m, "architecture", None)
    if a is not None:
        return Architecture(a.layers, a.attention_heads, a.kv_heads, a.head_dim, a.max_positions,
                            "models[].architecture (stack config)")
    f = (platform_data("model-facts.yaml")["models"] or {}).get(m.model)
    if f is None:
        return None
    return Architecture(f["layers"], f["attentionHeads"], f["kvHeads"], f["headDim"], f.get("maxPositions"),
                        f["source"])


def tensor_parallel_problem(arch: Architecture, tp: int) -> str | None:
    """vLLM's rule (vllm/config/parallel.py and model.py verify_with_parallel_config; TGI shards the
    same way): the attention heads divide by the tensor-parallel size, and the KV heads either divide
    by it or, fewer than the ranks, are replicated (tp a multiple of them, get_num_kv_heads)."""
    if arch.attention_heads % tp:
        return f"{arch.attention_heads} attention heads are not divisible by tensor parallel size {tp}"
    if arch.kv_heads % tp and tp % arch.kv_heads:
        return f"{arch.kv_heads} KV heads neither divide by nor into tensor parallel size {tp}"
    return None


def usable_gpu_memory_gib(gpu: InstanceFacts) -> float:
    mib = (platform_data("model-facts.yaml").get("usableGpuMemoryMiB") or {}).get(gpu.gpu_model or "")
    return mib / 1024 if mib else float(gpu.gpu_memory_gib)


def kv_bytes_per_token(arch: Architecture, tp: int) -> int:
    """One token's K and V on one GPU: 2 x layers x KV heads per rank x head size x dtype bytes."""
    kv_per_rank = max(1, arch.kv_heads // tp)
    return 2 * arch.layers * kv_per_rank * arch.head_dim * int(platform_data("model-facts.yaml")["kvDtypeBytes"])


@dataclass(frozen=True)
class Fit:
    """One replica of a model on `gpus` x one GPU model, per GPU."""
    gpu: str
    budget_gib: float          # gpuMemoryUtilization x usable memory
    weights_gib: float         # the weights' tensor-parallel share
    overhead_gib: float
    kv_free_gib: float         # what is left for the KV cache (negative: the weights do not fit)
    sequence_gib: float        # KV cache of one maxModelLen sequence
    sequences: int             # concurrent maxModelLen sequences the KV cache holds

    def to_json(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "budgetGiB": round(self.budget_gib, 2), "weightsGiB": round(self.weights_gib, 2),
                "overheadGiB": self.overhead_gib, "kvCacheGiB": round(self.kv_free_gib, 2),
                "sequenceGiB": round(self.sequence_gib, 3), "maxModelLenSequences": self.sequences}


def fit(m: Any, gpu: InstanceFacts, arch: Architecture) -> Fit:
    facts = platform_data("model-facts.yaml")
    budget = m.gpu_memory_utilization * usable_gpu_memory_gib(gpu)
    share = weights_gib(m) / m.gpus
    overhead = float(facts["runtimeOverheadGiB"])
    free = budget - share - overhead
    seq = kv_bytes_per_token(arch, m.gpus) * m.max_model_len / 2**30
    return Fit(gpu.gpu_model or gpu.instance_type, budget, share, overhead, free, seq,
               max(0, int(free // seq)) if free > 0 else 0)


def tightest_fit(m: Any, pool: Any) -> Fit | None:
    """The fit on the smallest-memory GPU the replica could land on (None: no candidate or no facts)."""
    cands, arch = candidate_types(m, pool), architecture(m)
    if not cands or arch is None:
        return None
    return fit(m, min(cands, key=usable_gpu_memory_gib), arch)
