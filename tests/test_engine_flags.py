"""Every flag the platform passes to vLLM or TGI exists in the pinned engine version, with a value
among its choices where the engine enumerates them (platform/engine-flags.yaml, extracted from the
pinned sources)."""

from __future__ import annotations

import json

import pytest

from domain.pins import image_pin, platform_data
from tests.test_models import model_deployments, pod

FLAGS = platform_data("engine-flags.yaml")


def _passed(plan):
    for name, dep in model_deployments(plan).items():
        c = pod(dep)["containers"][0]
        engine = "vllm" if c["command"][0] == "vllm" else "tgi"
        args = [a for a in c["args"] if isinstance(a, str)]
        yield name, engine, args


def test_the_flag_lists_are_of_the_pinned_versions():
    assert FLAGS["vllm"]["version"] == image_pin("vllm")["tag"]
    assert image_pin("tgi")["tag"].startswith(FLAGS["tgi"]["version"])
    assert all(FLAGS[e]["source"] and FLAGS[e]["flags"] for e in ("vllm", "tgi"))


@pytest.mark.parametrize("fixture", ["dev_plan", "prod_plan", "placement_plan"])
def test_every_flag_passed_exists_in_the_pinned_engine(fixture, request):
    plan = request.getfixturevalue(fixture)
    seen = set()
    for name, engine, args in _passed(plan):
        spec = FLAGS[engine]
        for i, a in enumerate(args):
            if not a.startswith("--"):
                continue
            flag = a[2:]
            assert flag in spec["flags"], f"{name}: --{flag} is not a {engine} {spec['version']} flag"
            seen.add((engine, flag))
            if flag in spec.get("choices", {}):
                assert args[i + 1] in spec["choices"][flag], f"{name}: --{flag} {args[i + 1]}"
            if flag == "model-loader-extra-config":
                keys = set(json.loads(args[i + 1]))
                assert keys <= set(spec["modelLoaderExtraConfig"]["runai_streamer"]), keys
    assert seen


def test_an_unknown_flag_would_be_caught():
    assert "--max-input-tokens"[2:] in FLAGS["tgi"]["flags"]
    assert "max-input-tokens" not in FLAGS["vllm"]["flags"]     # TGI's flag, not vLLM's
    assert "tensor-parallel-size" not in FLAGS["tgi"]["flags"]


def test_config_quantization_choices_are_valid_for_both_engines():
    from components.config import ModelConfig

    offered = set(ModelConfig.model_fields["quantization"].annotation.__args__) - {"none"}
    assert offered <= set(FLAGS["vllm"]["choices"]["quantization"])
    assert offered <= set(FLAGS["tgi"]["choices"]["quantize"])
