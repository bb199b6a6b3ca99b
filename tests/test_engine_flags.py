"""Every flag the platform passes to vLLM or TGI exists in the pinned engine version, with a value
among its choices where the engine enumerates them (platform/engine-flags.yaml, extracted from the
pinned sources: vLLM's by tools/engine_flags.py from the sdist of the pinned version, by AST)."""

from __future__ import annotations

import json
import re

import pytest

from domain.pins import image_pin, platform_data
from tests.conftest import example_stacks, variant_plan
from tests.test_models import model_deployments, pod
from tools.engine_flags import ARG_UTILS, CLI_ARGS, STREAMER, extract

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
    sdist = FLAGS["vllm"]["source"]
    assert sdist["sdist"] == f"vllm-{image_pin('vllm')['tag'].lstrip('v')}.tar.gz"
    assert re.fullmatch(r"[0-9a-f]{64}", sdist["sha256"])


def test_the_vllm_list_is_the_full_extraction():
    """Not only the flags this platform uses: every group of EngineArgs.add_cli_args and FrontendArgs,
    with the --no- form of each boolean flag (argparse.BooleanOptionalAction)."""
    flags = set(FLAGS["vllm"]["flags"])
    assert len(flags) > 200
    assert {"speculative-config", "compilation-config", "api-server-count", "headless"} <= flags
    assert {"enable-prefix-caching", "no-enable-prefix-caching", "no-trust-remote-code"} <= flags
    assert "no-port" not in flags and "no-hf-token" not in flags     # an int; hf-token: explicit type=str


@pytest.mark.parametrize("fixture", ["dev_plan", "prod_plan", "placement_plan",
                                     *(f"example:{e}" for e in example_stacks())])
def test_every_flag_passed_exists_in_the_pinned_engine(fixture, request):
    plan = (variant_plan(fixture.split(":", 1)[1]) if fixture.startswith("example:")
            else request.getfixturevalue(fixture))
    seen = set()
    for name, engine, args in _passed(plan):
        spec = FLAGS[engine]
        for i, a in enumerate(args):
            if not a.startswith("--"):
                continue
            flag = a[2:]
            assert flag in spec["flags"], f"{name}: --{flag} is not a {engine} {spec['version']} flag"
            assert flag not in spec.get("deprecated", []), f"{name}: --{flag} is deprecated in {spec['version']}"
            seen.add((engine, flag))
            if flag in spec.get("choices", {}):
                assert args[i + 1] in spec["choices"][flag], f"{name}: --{flag} {args[i + 1]}"
            if flag == "model-loader-extra-config":
                keys = set(json.loads(args[i + 1]))
                assert keys <= set(spec["modelLoaderExtraConfig"]["runai_streamer"]), keys
    assert seen or fixture.startswith("example:")


def test_an_unknown_flag_would_be_caught():
    assert "--max-input-tokens"[2:] in FLAGS["tgi"]["flags"]
    assert "max-input-tokens" not in FLAGS["vllm"]["flags"]     # TGI's flag, not vLLM's
    assert "tensor-parallel-size" not in FLAGS["tgi"]["flags"]


def test_config_quantization_choices_are_valid_for_both_engines():
    from components.config import ModelConfig

    offered = set(ModelConfig.model_fields["quantization"].annotation.__args__) - {"none"}
    assert offered <= set(FLAGS["vllm"]["choices"]["quantization"])
    assert offered <= set(FLAGS["tgi"]["choices"]["quantize"])


# A miniature of the three files the extractor reads, in the shapes vLLM 0.12 uses.
MINI = {
    CLI_ARGS: """
@dataclass
class FrontendArgs:
    port: int = 8000
    enable_auto_tool_choice: bool = False
    @staticmethod
    def add_cli_args(parser):
        frontend_kwargs = get_kwargs(FrontendArgs)
        for key, value in frontend_kwargs.items():
            group.add_argument(f"--{key.replace('_', '-')}", **value)
def make_arg_parser(parser):
    parser.add_argument("--headless", action="store_true")
""",
    ARG_UTILS: """
ModelDType = Literal["auto", "half"]
class ModelConfig:
    dtype: ModelDType | torch.dtype = "auto"
    quantization: SkipValidation[Literal["awq", "fp8"] | None] = None
    enforce_eager: bool = False
class LoadConfig:
    load_format: str | LoadFormats = "auto"
LoadFormats = Literal["auto", "runai_streamer"]
class EngineArgs:
    @staticmethod
    def add_cli_args(parser):
        model_kwargs = get_kwargs(ModelConfig)
        g.add_argument("--dtype", **model_kwargs["dtype"])
        g.add_argument("--enforce-eager", **{**model_kwargs["enforce_eager"], "default": None})
        g.add_argument("--task", **model_kwargs["dtype"], deprecated=True)
class AsyncEngineArgs:
    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--enable-log-requests", action=argparse.BooleanOptionalAction)
""",
    STREAMER: """
if "concurrency" in extra_config and extra_config.get("memory_limit"):
    pass
""",
}


def test_the_extractor_follows_get_kwargs_and_the_frontend_loop():
    out = extract(MINI)
    assert out["flags"] == sorted(["port", "enable-auto-tool-choice", "no-enable-auto-tool-choice", "headless",
                                   "dtype", "enforce-eager", "no-enforce-eager", "task",
                                   "enable-log-requests", "no-enable-log-requests"])
    assert out["deprecated"] == ["task"]
    assert out["choices"] == {"dtype": ["auto", "half"], "quantization": ["awq", "fp8"],
                              "load-format": ["auto", "runai_streamer"]}
    assert out["modelLoaderExtraConfig"] == {"runai_streamer": ["concurrency", "memory_limit"]}
