#!/usr/bin/env python3
"""Extract the command-line flags of the pinned vLLM (platform/images.yaml `vllm`) from its PyPI sdist,
by reading the source's syntax tree -- vLLM is never imported (it needs torch and a GPU build).

    .venv/bin/python tools/engine_flags.py [--sdist PATH]

Without --sdist the sdist of the pinned version is downloaded from PyPI (needs network) and its
sha256 checked against the digest PyPI publishes. The `vllm` section of platform/engine-flags.yaml is
rewritten (the `tgi` section is kept as it is).

What `vllm serve` accepts at that version (vllm/entrypoints/cli/serve.py -> make_arg_parser):
  * vllm/entrypoints/openai/cli_args.py `make_arg_parser`: its own add_argument calls, then
    FrontendArgs.add_cli_args, which adds `--<field>` for every field of the FrontendArgs dataclass;
  * vllm/engine/arg_utils.py AsyncEngineArgs.add_cli_args and EngineArgs.add_cli_args: each
    add_argument("--flag", **<group>_kwargs["field"]) where <group>_kwargs = get_kwargs(<Config>).
    get_kwargs (_compute_kwargs) gives a field whose type contains `bool` argparse's
    BooleanOptionalAction, which also defines `--no-<flag>`; a Literal type gives `choices`.
Choices recorded: dtype (ModelConfig.dtype's Literal ModelDType), quantization (the Literal
QuantizationMethods of vllm/model_executor/layers/quantization/__init__.py), load-format (the Literal
LoadFormats of vllm/model_executor/model_loader/__init__.py: argparse takes any string there, the
loader registry rejects the rest). The Run:ai streamer's extra-config keys are the keys
vllm/model_executor/model_loader/runai_streamer_loader.py looks up in `extra_config`.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FLAGS_FILE = ROOT / "platform" / "engine-flags.yaml"
IMAGES_FILE = ROOT / "platform" / "images.yaml"
PYPI = "https://pypi.org/pypi/vllm/json"     # the per-version endpoint (/pypi/vllm/<v>/json) answered 404

ARG_UTILS = "vllm/engine/arg_utils.py"
CLI_ARGS = "vllm/entrypoints/openai/cli_args.py"
CONFIG_DIR = "vllm/config/"
LOADERS = "vllm/model_executor/model_loader/__init__.py"
QUANTIZATION = "vllm/model_executor/layers/quantization/__init__.py"
STREAMER = "vllm/model_executor/model_loader/runai_streamer_loader.py"
# flag -> (config class, field) whose Literal type lists the accepted values
ENUMERATED = {"dtype": ("ModelConfig", "dtype"), "quantization": ("ModelConfig", "quantization"),
              "load-format": ("LoadConfig", "load_format")}


@dataclass
class Source:
    """The parsed modules of the sdist: classes' annotated fields and module-level Literal aliases."""
    trees: dict[str, ast.Module]
    fields: dict[str, dict[str, ast.expr]] = field(default_factory=dict)
    literals: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        for tree in self.trees.values():
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    self.fields.setdefault(node.name, {}).update(
                        {s.target.id: s.annotation for s in node.body
                         if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)})
                elif (isinstance(node, ast.Assign) and len(node.targets) == 1
                      and isinstance(node.targets[0], ast.Name) and _literal_values(node.value) is not None):
                    self.literals[node.targets[0].id] = _literal_values(node.value)

    def is_bool(self, cls: str, name: str) -> bool:
        return any(isinstance(n, ast.Name) and n.id == "bool" for n in ast.walk(self.fields[cls][name]))

    def choices(self, cls: str, name: str) -> list[str]:
        values: list[str] = []
        for n in ast.walk(self.fields[cls][name]):
            if isinstance(n, ast.Name) and n.id in self.literals:
                values += self.literals[n.id]
            elif (found := _literal_values(n)) is not None:
                values += found
        return values


def _literal_values(node: ast.AST) -> list[str] | None:
    """["a", "b"] of `Literal["a", "b"]`, None for anything else."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal"):
        return None
    items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]


def _function(tree: ast.Module, cls: str, name: str | None) -> ast.AST:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == name)
        if isinstance(node, ast.FunctionDef) and node.name == cls and name is None:
            return node
    raise LookupError(f"{cls}.{name} not found")


def _kwargs_classes(fn: ast.AST) -> dict[str, str]:
    """{"model_kwargs": "ModelConfig"} of `model_kwargs = get_kwargs(ModelConfig)` inside fn."""
    return {n.targets[0].id: n.value.args[0].id for n in ast.walk(fn)
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Name) and n.value.func.id == "get_kwargs"
            and isinstance(n.targets[0], ast.Name) and isinstance(n.value.args[0], ast.Name)}


def _field_of(call: ast.Call, groups: dict[str, str]) -> tuple[str, str] | None:
    """(config class, field) of the `**<group>_kwargs["field"]` an add_argument call spreads."""
    spread = [k.value for k in call.keywords if k.arg is None]
    spread += [v for s in spread if isinstance(s, ast.Dict)
               for k, v in zip(s.keys, s.values, strict=True) if k is None]
    for s in spread:
        if (isinstance(s, ast.Subscript) and isinstance(s.value, ast.Name) and s.value.id in groups
                and isinstance(s.slice, ast.Constant)):
            return groups[s.value.id], s.slice.value
    return None


def _flags_of(fn: ast.AST, src: Source) -> tuple[dict[str, bool], set[str]]:
    """({flag: defines --no-flag}, deprecated flags) of the add_argument calls in fn."""
    groups, flags, deprecated = _kwargs_classes(fn), {}, set()
    for call in ast.walk(fn):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "add_argument"):
            continue
        names = [a.value[2:] for a in call.args
                 if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")]
        if not names and call.args and isinstance(call.args[0], ast.JoinedStr):
            # FrontendArgs: for key, value in frontend_kwargs.items(): add_argument(f"--{key...}", **value)
            loop = next(n for n in ast.walk(fn) if isinstance(n, ast.For) and call in ast.walk(n))
            cls = groups[loop.iter.func.value.id]
            for name in src.fields[cls]:
                flags[name.replace("_", "-")] = src.is_bool(cls, name)
            continue
        action = next((k.value for k in call.keywords if k.arg == "action"), None)
        boolean = isinstance(action, ast.Attribute) and action.attr == "BooleanOptionalAction"
        if (found := _field_of(call, groups)) is not None:
            boolean = boolean or src.is_bool(*found)
        for name in names:
            flags[name] = boolean
            if any(k.arg == "deprecated" and getattr(k.value, "value", False) for k in call.keywords):
                deprecated.add(name)
    return flags, deprecated


def _streamer_keys(tree: ast.Module) -> list[str]:
    """Keys the Run:ai loader reads: `"k" in extra_config` and `extra_config.get("k")`."""
    keys = set()
    for n in ast.walk(tree):
        if (isinstance(n, ast.Compare) and isinstance(n.left, ast.Constant) and isinstance(n.ops[0], ast.In)
                and isinstance(n.comparators[0], ast.Name) and n.comparators[0].id == "extra_config"):
            keys.add(n.left.value)
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get"
              and isinstance(n.func.value, ast.Name) and n.func.value.id == "extra_config" and n.args
              and isinstance(n.args[0], ast.Constant)):
            keys.add(n.args[0].value)
    return sorted(keys)


def extract(files: dict[str, str]) -> dict:
    """The flags, deprecated flags, choices and streamer keys of the sources {path: text}."""
    src = Source({p: ast.parse(t, p) for p, t in files.items()})
    flags, deprecated = {}, set()
    for tree, cls, fn in ((src.trees[CLI_ARGS], "make_arg_parser", None),
                          (src.trees[CLI_ARGS], "FrontendArgs", "add_cli_args"),
                          (src.trees[ARG_UTILS], "EngineArgs", "add_cli_args"),
                          (src.trees[ARG_UTILS], "AsyncEngineArgs", "add_cli_args")):
        found, old = _flags_of(_function(tree, cls, fn), src)
        flags.update(found)
        deprecated |= old
    names = sorted({*flags, *(f"no-{f}" for f, boolean in flags.items() if boolean)})
    return {"flags": names, "deprecated": sorted(deprecated),
            "choices": {flag: src.choices(*where) for flag, where in ENUMERATED.items()},
            "modelLoaderExtraConfig": {"runai_streamer": _streamer_keys(src.trees[STREAMER])}}


def _wanted(path: str) -> bool:
    return path in (ARG_UTILS, CLI_ARGS, LOADERS, QUANTIZATION, STREAMER) or (
        path.startswith(CONFIG_DIR) and path.endswith(".py"))


def read_sdist(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            path = m.name.split("/", 1)[1] if "/" in m.name else m.name
            if m.isfile() and _wanted(path):
                out[path] = tar.extractfile(m).read().decode()
    return out


def pinned_version() -> str:
    return yaml.safe_load(IMAGES_FILE.read_text())["vllm"]["tag"]


def download(version: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(PYPI, timeout=60) as r:
        release = json.load(r)["releases"][version.lstrip("v")]
    sdist = next(u for u in release if u["packagetype"] == "sdist")
    url = sdist["url"]
    if not url.startswith("https://"):    # a mirror may answer with a relative path
        url = "https://files.pythonhosted.org/packages/" + url.split("/packages/packages/", 1)[1]
    with urllib.request.urlopen(url, timeout=600) as r:
        data = r.read()
    sdist["url"] = url
    return data, sdist


def section(version: str, sdist: dict, sha256: str, extracted: dict) -> dict:
    return {"version": version,
            "source": {"sdist": sdist["filename"], "url": sdist["url"], "sha256": sha256,
                       "extracted": f"{datetime.date.today().isoformat()} by tools/engine_flags.py",
                       "files": [f"{CLI_ARGS} (make_arg_parser, FrontendArgs)",
                                 f"{ARG_UTILS} (EngineArgs.add_cli_args, AsyncEngineArgs.add_cli_args,"
                                 " get_kwargs)", f"{CONFIG_DIR}*.py (the config dataclasses' fields)",
                                 f"{QUANTIZATION} (QuantizationMethods)", f"{LOADERS} (LoadFormats)",
                                 f"{STREAMER} (extra_config keys)"]},
            **extracted}


def render(vllm: dict) -> str:
    """platform/engine-flags.yaml with its vllm section replaced (everything before `vllm:` kept)."""
    text = FLAGS_FILE.read_text()
    head = text[:text.index("\nvllm:") + 1]
    body = yaml.safe_dump({"vllm": vllm}, sort_keys=False, width=110, default_flow_style=None)
    return head + "# generated by tools/engine_flags.py from the sdist below: do not edit by hand\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="a downloaded vllm-<version>.tar.gz (skips PyPI)")
    args = parser.parse_args(argv)
    version = pinned_version()
    data, sdist = download(version) if args.sdist is None else (args.sdist.read_bytes(), None)
    sha256 = hashlib.sha256(data).hexdigest()
    if sdist is None:
        sdist = {"filename": args.sdist.name, "url": "(local file)"}
    elif sha256 != sdist["digests"]["sha256"]:
        print(f"sha256 {sha256} is not PyPI's {sdist['digests']['sha256']}", file=sys.stderr)
        return 1
    out = render(section(version, sdist, sha256, extract(read_sdist(data))))
    FLAGS_FILE.write_text(out)
    print(f"{FLAGS_FILE.relative_to(ROOT)}: vllm {version}, sha256 {sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
