"""The compute layer's typed output for a GPU pool (components/gpu_pool.py) and its use by model
serving: the pods' placement comes from it, and model serving's Args name no compute config type."""

from __future__ import annotations

import dataclasses
import inspect

from components import names
from components.config import ModelConfig
from components.config import compute as compute_config
from components.config.base import Section
from components.config.compute import GpuPoolConfig
from components.gpu_pool import GpuPool, gpu_pool
from components.model_deployment import ModelDeploymentArgs
from components.models import ModelServingArgs, placement


def pool(**kw) -> GpuPoolConfig:
    base = {"name": "gpu", "instanceTypes": ["g6e.xlarge", "g5.12xlarge"], "gpuLimit": 8,
            "capacityTypes": ["spot", "on-demand"]}
    return GpuPoolConfig.model_validate({**base, **kw})


def model(**kw) -> ModelConfig:
    base = {"name": "m", "engine": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "image": "vllm/vllm-openai:v0.12.0",
            "parametersB": 8.03, "pool": "gpu", "cache": "s3"}
    return ModelConfig.model_validate({**base, **kw})


def test_a_pool_output_carries_its_facts_and_placement():
    out = gpu_pool(pool(taints=[{"key": "team", "value": "ml", "effect": "NoSchedule"},
                                {"key": "dedicated", "effect": "NoExecute"}]))
    assert out.name == "gpu"
    assert out.instance_types == ("g6e.xlarge", "g5.12xlarge")
    assert out.instance_families == ("g5", "g6e")
    assert out.gpu_models == ("A10G", "L40S")
    assert out.gpu_memory_gib == 24                 # the A10G's, the smaller of the two
    assert out.gpus_per_node == 4                   # g5.12xlarge
    assert out.capacity_types == ("spot", "on-demand")
    assert out.node_selector == {names.NODEPOOL_LABEL: "gpu"}
    assert out.tolerations == (
        names.GPU_TOLERATION,
        {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
    )


def test_placement_follows_the_pool_output():
    out = gpu_pool(pool(taints=[{"key": "team", "value": "ml", "effect": "NoSchedule"}]))
    tolerations, selector = placement(model(gpuModel="L40S"), out, isolated=False, scheduling_for=None)
    assert tolerations == list(out.tolerations)
    assert selector == {**out.node_selector, names.GPU_NAME_LABEL: "l40s"}
    # A node-isolated tenant's model: its tenant's copy of the pool, the pool's tolerations kept.
    tolerations, selector = placement(model(tenant="t1"), out, isolated=True, scheduling_for=None)
    assert tolerations[:len(out.tolerations)] == list(out.tolerations)
    assert {"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": "t1", "effect": "NoSchedule"} in tolerations
    assert selector == {names.NODEPOOL_LABEL: names.tenant_pool_name("t1"), names.TENANT_LABEL: "t1"}
    # The output is not edited by the placement it gave.
    assert out.node_selector == {names.NODEPOOL_LABEL: "gpu"}


def test_model_serving_takes_no_compute_config():
    """A component takes its own config section plus the typed outputs of the layers it uses
    (docs/DEVELOPING.md): model serving's Args name compute's GpuPool, no compute config model."""
    compute_types = {n for n, c in inspect.getmembers(compute_config, inspect.isclass)
                     if issubclass(c, Section) and c.__module__ == compute_config.__name__}
    assert "GpuPoolConfig" in compute_types
    for args in (ModelServingArgs, ModelDeploymentArgs):
        annotations = {f.name: str(f.type) for f in dataclasses.fields(args)}
        found = {f: t for f, t in annotations.items() if any(c in t for c in compute_types)}
        assert not found, f"{args.__name__} takes compute config: {found}"
    assert "GpuPool" in str(next(f.type for f in dataclasses.fields(ModelServingArgs) if f.name == "pools"))
    assert GpuPool.__dataclass_params__.frozen
