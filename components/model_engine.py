"""What a model server's container runs: the engine's command, arguments and environment (vLLM or
TGI), from the model's config. Every flag passed here exists in the pinned engine version
(platform/engine-flags.yaml, tests/test_engine_flags.py)."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from components import names
from components.config import ModelConfig
from domain.coldstart import streamer_concurrency

UID = 1000
DATA_DIR = "/data"
HOME_DIR = "/home/app"
COMPILE_CACHE_DIR = "/compile-cache"   # an emptyDir on the node's ephemeral storage (the NVMe RAID0)
HF_TOKEN_KEY = "token"


def compile_cache_root(m: ModelConfig) -> str:
    """VLLM_CACHE_ROOT (torch.compile artifacts): on the `pvc` volume, where a new pod finds the
    previous pod's; otherwise an emptyDir on the node's instance-store NVMe, kept across container
    restarts (a new pod compiles again: hostPath, which would outlive the pod, is not admitted under
    Pod Security `restricted`)."""
    if not m.compile_cache:
        return f"{HOME_DIR}/.cache/vllm"
    return f"{DATA_DIR}/vllm-cache" if m.cache == "pvc" else f"{COMPILE_CACHE_DIR}/vllm"


def uses_compile_cache_volume(m: ModelConfig) -> bool:
    return m.engine == "vllm" and m.compile_cache and m.cache != "pvc"


def writable_env(m: ModelConfig) -> dict[str, str]:
    """Where the engine, torch, triton and numba write: under HOME (an emptyDir), /tmp (an emptyDir),
    DATA_DIR (the cache volume) or the compile cache. Nothing may fall back to the read-only image."""
    cache = f"{HOME_DIR}/.cache"
    env = {
        "HOME": HOME_DIR,
        "USER": "app",
        "XDG_CACHE_HOME": cache,
        "XDG_CONFIG_HOME": f"{HOME_DIR}/.config",
        "HF_HOME": f"{DATA_DIR}/huggingface",
        "TRITON_CACHE_DIR": f"{cache}/triton",
        "TORCHINDUCTOR_CACHE_DIR": f"{cache}/torchinductor",
        "NUMBA_CACHE_DIR": f"{cache}/numba",
        "TMPDIR": "/tmp",
    }
    if m.engine == "vllm":
        # VLLM_CACHE_ROOT holds torch.compile artifacts; VLLM_ASSETS_CACHE is where runai_streamer
        # copies an s3:// model's config and tokenizer files (the `s3` scratch volume at DATA_DIR).
        env |= {"VLLM_CACHE_ROOT": compile_cache_root(m), "VLLM_CONFIG_ROOT": f"{HOME_DIR}/.config/vllm",
                "VLLM_ASSETS_CACHE": f"{DATA_DIR}/vllm-assets"}
    else:
        # The launcher passes HUGGINGFACE_HUB_CACHE to its shards; weights land on the cache volume.
        env |= {"HUGGINGFACE_HUB_CACHE": f"{DATA_DIR}/huggingface/hub"}
    return env


def streamer_config(m: ModelConfig) -> dict[str, Any]:
    """--model-loader-extra-config of the Run:ai streamer: keys the loader reads
    (vllm/model_executor/model_loader/runai_streamer_loader.py: `concurrency` and `memory_limit` as
    ints, exported as RUNAI_STREAMER_CONCURRENCY / RUNAI_STREAMER_MEMORY_LIMIT; `distributed` a bool,
    each tensor-parallel rank streaming its own share; a loader that does not know a key ignores it)."""
    cfg: dict[str, Any] = {"concurrency": streamer_concurrency(m)}
    if m.streamer.memory_limit_gib:
        cfg["memory_limit"] = m.streamer.memory_limit_gib * 2**30
    if m.gpus > 1:
        cfg["distributed"] = True
    return cfg


def vllm_args(m: ModelConfig, source: pulumi.Input[str], port: int, aliases: tuple[str, ...] = ()) -> list[Any]:
    """`aliases`: the other models' names it answers to as their canary or fallback (the first name,
    its own, names its responses and metrics)."""
    args: list[Any] = [source, "--served-model-name", m.name, *aliases, "--port", str(port),
                       "--tensor-parallel-size", str(m.gpus),
                       "--gpu-memory-utilization", str(m.gpu_memory_utilization),
                       "--max-model-len", str(m.max_model_len), "--enable-prefix-caching",
                       "--dtype", m.dtype]
    if m.quantization != "none":
        args += ["--quantization", m.quantization]
    # `s3`: the source is the bucket's copy, which the weights Job fetched at this revision.
    if m.revision and m.cache != "s3":
        args += ["--revision", m.revision]
    if m.cache == "s3":
        args += ["--load-format", "runai_streamer",
                 "--model-loader-extra-config", json.dumps(streamer_config(m), separators=(",", ":"))]
    return args


def tgi_args(m: ModelConfig, port: int) -> list[str]:
    max_input = m.max_model_len * 3 // 4  # room left for the generated tokens
    args = ["--model-id", m.model, "--num-shard", str(m.gpus), "--port", str(port),
            "--hostname", "0.0.0.0", "--max-input-tokens", str(max_input),
            "--max-total-tokens", str(m.max_model_len)]
    if m.revision:
        args += ["--revision", m.revision]
    if m.quantization != "none":
        args += ["--quantize", m.quantization]
    elif m.dtype != "auto":
        args += ["--dtype", m.dtype]
    return args


def engine_container(m: ModelConfig, source: pulumi.Input[str], hf_token_secret: str | None,
                     region: pulumi.Input[str] | None,
                     aliases: tuple[str, ...] = ()) -> tuple[list[str], list[Any], list[dict[str, Any]]]:
    """(command, args, env) of the model server container."""
    port = names.model_port(m.engine)
    # The root filesystem is read-only and UID 1000 has no passwd entry: every path either engine
    # (or torch, triton, numba, flashinfer under it) writes is pointed into a mounted emptyDir or
    # the cache volume. USER keeps getpass.getuser() (torch inductor's default cache dir) from
    # failing on the missing passwd entry.
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in writable_env(m).items()]
    if hf_token_secret:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_token_secret, "key": HF_TOKEN_KEY}}})
    if m.engine == "vllm":
        env += [{"name": "VLLM_NO_USAGE_STATS", "value": "1"}, {"name": "DO_NOT_TRACK", "value": "1"}]
        if m.cache == "s3" and region is not None:
            env.append({"name": "AWS_REGION", "value": region})
        return ["vllm", "serve"], [*vllm_args(m, source, port, aliases), *m.extra_args], env
    # TGI's OpenAI API ignores the request's `model` (one model per server): no aliases needed.
    # The image sets HF_HUB_ENABLE_HF_TRANSFER=1; the launcher downloads with plain hub client.
    env.append({"name": "HF_HUB_ENABLE_HF_TRANSFER", "value": "0"})
    return ["text-generation-launcher"], [*tgi_args(m, port), *m.extra_args], env
