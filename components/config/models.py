"""`models`, `modelServing`: the model catalog and its autoscaling defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import DnsName, Problem, Section


class ModelArchitecture(Section):
    """A model's transformer shape (its config.json), for a model platform/model-facts.yaml does not list."""

    layers: int = Field(ge=1, description="num_hidden_layers")
    attention_heads: int = Field(ge=1, description="num_attention_heads")
    kv_heads: int = Field(ge=1, alias="kvHeads", description="num_key_value_heads (= attention heads without GQA)")
    head_dim: int = Field(ge=1, description="head_dim, else hidden_size / num_attention_heads")
    max_positions: int | None = Field(None, ge=1, description="max_position_embeddings: the longest maxModelLen")

    def problems(self) -> Iterator[Problem]:
        if self.attention_heads % self.kv_heads:
            yield "kvHeads", f"{self.kv_heads} does not divide attentionHeads ({self.attention_heads})"


class StreamerConfig(Section):
    """vLLM's Run:ai Model Streamer (cache `s3`), passed as --model-loader-extra-config."""

    concurrency: int | None = Field(
        None, ge=1, le=256,
        description="S3 clients per process; default from the weights each GPU reads (under 8 GB 16, else 32)")
    memory_limit_gib: int | None = Field(
        None, ge=1, alias="memoryLimitGiB", description="CPU buffer limit of the streamer, GiB; default unlimited")


class ModelConfig(Section):
    """A model served by vLLM or TGI. `name` is the `x-model-id` clients send."""

    name: DnsName
    engine: Literal["vllm", "tgi"] = Field(description="the model server: vLLM or Hugging Face TGI")
    model: str = Field(min_length=1, description="Hugging Face model id, e.g. meta-llama/Llama-3.3-70B-Instruct")
    revision: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$",
        description=("Hugging Face revision of the weights (a commit sha, tag or branch); default the repository's "
                     "main branch as it is when the weights are fetched. Pin a commit for reproducible weights"))
    image: str = Field(description="pinned image: repo:tag or repo@sha256:digest")
    parameters_b: float = Field(gt=0, description="parameters, in billions (for the fit check)")
    gpus: int = Field(1, ge=1, le=8, description="GPUs per replica (tensor parallel / shards)")
    pool: DnsName = Field(description="a gpuPools name")
    gpu_model: str | None = Field(None, description="select nodes with this GPU (e.g. H100); default any in the pool")
    min_replicas: int = Field(1, ge=0, description="replicas KEDA scales down to (0: scale to zero)")
    max_replicas: int = Field(1, ge=1, description="replicas KEDA scales up to")
    max_model_len: int = Field(8192, ge=256, description="context length the engine serves (tokens)")
    dtype: Literal["auto", "bfloat16", "float16"] = Field("bfloat16", description="weights' data type (without quantization)")
    quantization: Literal["none", "fp8", "awq", "gptq", "bitsandbytes"] = Field(
        "none", description="quantization of the weights (none: dtype)")
    gpu_memory_utilization: float = Field(0.90, gt=0.1, le=0.98, description="share of GPU memory the engine may use")
    extra_args: list[str] = Field(default_factory=list, description="extra engine arguments")
    tenant: DnsName | None = Field(None, description="a tenants name: serve in its namespace (and pool); default ai-inference")
    cache: Literal["pvc", "s3", "nodeLocal"] = Field(
        "pvc", description=("where weights are cached: pvc (one gp3 volume), s3 (vLLM streams from the models bucket), "
                            "nodeLocal (instance store)"))
    cache_size_gib: int = Field(200, ge=10, alias="cacheSizeGiB", description="cache size, GiB (pvc and nodeLocal)")
    queue_target: int = Field(5, ge=1, description="waiting requests per replica before KEDA scales out")
    architecture: ModelArchitecture | None = Field(
        None, description="the model's shape for the fit check; default from platform/model-facts.yaml")
    streamer: StreamerConfig = Field(default_factory=StreamerConfig, description="Run:ai streamer tuning (cache s3)")
    compile_cache: bool = Field(
        True, description=("vLLM's torch.compile / CUDA graph cache (VLLM_CACHE_ROOT) on the cache volume (pvc: "
                           "kept across pods) or an emptyDir on the node's NVMe (kept across container restarts; "
                           "cache s3 with a known GPU model: restored from and saved to the models bucket)"))
    weights_job: bool = Field(
        True, description="cache s3: a Job copies the weights from Hugging Face to the models bucket before the Deployment")

    @property
    def compile_cache_in_s3(self) -> bool:
        """Its compile cache travels through the models bucket (components/compile_cache.py); the
        cross-checks keep weights out of that prefix (components/config/rules.py)."""
        return self.engine == "vllm" and self.compile_cache and self.cache == "s3"

    def problems(self) -> Iterator[Problem]:
        if self.min_replicas > self.max_replicas:
            yield "minReplicas", f"{self.min_replicas} is more than maxReplicas ({self.max_replicas})"
        if self.cache == "s3" and self.engine != "vllm":
            yield "cache", "'s3' streams weights with vLLM's runai_streamer; TGI needs 'pvc' or 'nodeLocal'"
        # One ReadWriteOnce gp3 volume attaches to one node: a second replica could not mount it.
        if self.cache == "pvc" and self.max_replicas > 1:
            yield "maxReplicas", (f"{self.max_replicas} replicas cannot share one ReadWriteOnce 'pvc' cache; "
                                  "use cache 's3' or 'nodeLocal' to scale out")
        if not re.fullmatch(r"[^:@\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})", self.image) \
                or self.image.endswith(":latest"):
            yield "image", f"'{self.image}' is not pinned: use repo:tag (not latest) or repo@sha256:digest"


class ModelServingConfig(Section):
    """KEDA and the autoscaling defaults every model's ScaledObject uses (the seed's GPU page)."""

    keda_replicas: int = Field(2, ge=1, le=5, description="KEDA operator, metrics server and webhook replicas")
    polling_interval: int = Field(15, ge=5, le=300, description="seconds between KEDA metric checks")
    cooldown_period: int = Field(60, ge=0, description="seconds before scaling to minReplicas 0")
    gpu_util_threshold: int = Field(70, ge=1, le=100, description="DCGM_FI_DEV_GPU_UTIL % per replica to scale on")
    gpu_util_activation: int = Field(
        50, ge=0, le=100, description="DCGM GPU utilization % of KEDA's activation threshold (scaling from zero)")
    compile_cache_expiry_days: int = Field(
        30, ge=1, le=3650, description=("days after its upload a compile-cache object in the models bucket expires "
                                        "(a later save puts back what is still in use)"))

    def problems(self) -> Iterator[Problem]:
        if self.gpu_util_activation >= self.gpu_util_threshold:
            yield "gpuUtilActivation", (f"{self.gpu_util_activation} must be below gpuUtilThreshold "
                                        f"({self.gpu_util_threshold})")
