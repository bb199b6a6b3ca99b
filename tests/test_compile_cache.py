"""The compile cache's S3 prefix is keyed like vLLM's own cache directory, expires, and a restore
never fills the emptyDir it restores into (components/compile_cache.py)."""

from __future__ import annotations

import json

import pytest

from components import compile_cache
from components.compile_cache import COMPILE_CACHE_GIB
from components.config import ConfigError, GpuPoolConfig, ModelConfig, validate
from tests.fake_aws import install_aws, run_container
from tests.tenant_gateway import prod_raw
from tests.test_models import model_deployments, pod, program_config_models

LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"


def model(**kw) -> ModelConfig:
    base = {"name": "m", "engine": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "image": "vllm/vllm-openai:v0.12.0",
            "parametersB": 8.03, "pool": "gpu", "cache": "s3"}
    return ModelConfig.model_validate({**base, **kw})


POOL = GpuPoolConfig.model_validate({"name": "gpu", "instanceTypes": ["g5.2xlarge"], "gpuLimit": 64})


@pytest.mark.parametrize("change", [{"maxModelLen": 4096}, {"dtype": "float16"}, {"quantization": "fp8"},
                                    {"gpus": 2}, {"extraArgs": ["--kv-cache-dtype", "fp8"]},
                                    {"model": "meta-llama/Llama-3.2-3B-Instruct"}, {"revision": "abc123"}],
                         ids=lambda c: next(iter(c)))
def test_a_change_vllm_hashes_into_its_compile_key_gets_another_prefix(change):
    """vLLM 0.12.0 keys its cache directory on the model/parallel/compilation configs: each of these
    compiles anew, and under one prefix the restores carried every older one along."""
    assert compile_cache.cache_prefix(model(**change), POOL) != compile_cache.cache_prefix(model(), POOL)


@pytest.mark.parametrize("change", [{"gpuMemoryUtilization": 0.8}, {"streamer": {"concurrency": 8}},
                                    {"minReplicas": 0, "maxReplicas": 3}], ids=lambda c: next(iter(c)))
def test_what_vllm_leaves_out_of_its_key_keeps_the_prefix(change):
    """gpu_memory_utilization is an ignored factor of vllm/config/cache.py; the load config
    (the streamer's extra config) has none (vllm/config/load.py); replicas are not the engine's."""
    assert compile_cache.cache_prefix(model(**change), POOL) == compile_cache.cache_prefix(model(), POOL)


def test_the_prefix_stays_under_the_models_root_the_lifecycle_rule_expires():
    prefix = compile_cache.cache_prefix(model(), POOL)
    assert prefix.startswith("m/compile-cache/v0.12.0/a10g/") and len(prefix.rsplit("/", 1)[1]) == 10
    (rule,) = compile_cache.lifecycle_rules([model(), model(name="p", cache="pvc")], 30)
    assert prefix.startswith(rule["filter"]["prefix"]) and rule["expiration"] == {"days": 30}


def test_prod_models_bucket_expires_every_compile_cache(prod_plan):
    models = program_config_models("prod")
    (lifecycle,) = [r for r in prod_plan.by_type(LIFECYCLE) if r.name.endswith("-models-lifecycle")]
    rules = {r["filter"]["prefix"]: r for r in lifecycle.inputs["rules"] if "prefix" in (r.get("filter") or {})}
    cached = {p for m, pool in models.values() if (p := compile_cache.cache_prefix(m, pool))}
    assert cached and all(any(p.startswith(root) for root in rules) for p in cached)
    assert {r["expiration"]["days"] for r in rules.values()} == {30}    # modelServing.compileCacheExpiryDays
    # the bucket's own rule (non-current versions) is still first
    assert lifecycle.inputs["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] > 0


def test_the_restore_share_leaves_room_for_a_compile_beside_it(prod_plan):
    """An emptyDir past its sizeLimit evicts the pod: what a restore may bring plus what vLLM
    compiles next to it (a configuration it did not find) fit the volume."""
    assert 2 * compile_cache.RESTORE_MAX_GIB <= COMPILE_CACHE_GIB
    restores = 0
    for name in program_config_models("prod"):
        spec = pod(model_deployments(prod_plan)[name])
        (restore,) = [c for c in spec.get("initContainers") or [] if c["name"] == "compile-cache-restore"] or [None]
        if restore is None:
            continue
        restores += 1
        (volume,) = [v for v in spec["volumes"] if v["name"] == "compile-cache"]
        limit = int(volume["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 2**30
        env = {e["name"]: e.get("value") for e in restore["env"]}
        assert 2 * int(env["RESTORE_MAX_BYTES"]) <= limit, name
    assert restores


def _restore(tmp_path, size: int):
    prefix = compile_cache.cache_prefix(model(), POOL)
    stored = install_aws(tmp_path) / "bucket" / prefix / "torch_compile_cache" / "abc"
    stored.mkdir(parents=True)
    (stored / "graph.bin").write_bytes(b"x" * size)
    (restore, _save) = compile_cache.containers(prefix, "bucket", None, 8000, str(tmp_path / "mnt"), str(tmp_path))
    result = run_container(tmp_path, restore, RESTORE_MAX_BYTES="1000")
    assert result.returncode == 0, result.stderr
    return (tmp_path / "mnt" / "vllm" / "torch_compile_cache" / "abc" / "graph.bin").exists()


def test_a_restore_within_its_share_is_copied(tmp_path):
    assert _restore(tmp_path, 1000)


def test_a_restore_over_its_share_is_skipped(tmp_path):
    assert not _restore(tmp_path, 1001)


@pytest.mark.parametrize("model_id, overlaps", [
    ("llama-3-8b", True),                         # an id without an org equal to a model's name
    ("llama-3-8b/compile-cache", True),           # weights inside the cache root
    ("llama-3-8b-extra", False),                  # a prefix of the name, not of the path
    ("meta-llama/Llama-3.1-8B-Instruct", False),  # prod's own id
])
def test_a_weights_prefix_over_a_compile_cache_is_a_key_path_error(model_id, overlaps):
    """The weights Job empties and rewrites its whole prefix and the servers load every object under
    it: a compile cache there (the review's `gpt2` named `gpt2`) would be deleted and served as weights."""
    raw = prod_raw()
    models = json.loads(raw["models"])
    assert models[1]["name"] == "llama-3-8b" and models[1]["cache"] == "s3"
    models[2].update(model=model_id)
    raw["models"] = json.dumps(models)
    try:
        validate(raw, "prod")
        lines = []
    except ConfigError as err:   # (an id without model facts has its own problem: only ours counts)
        lines = [line for line in err.lines() if "overlaps the compile cache" in line]
    if not overlaps:
        assert lines == []
        return
    assert lines and lines[0].startswith("agentic-platform:models[2].model: ")
    assert "overlaps the compile cache llama-3-8b/compile-cache/ of models[1]" in lines[0], lines
