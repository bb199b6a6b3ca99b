"""Imports go one way: domain <- config <- components <- __main__ / plan / policies.

Every module of the program is parsed (ast, nothing imported) and each import of a project module
is checked against the layer it comes from:

- `domain` (top-level package): the platform's facts and arithmetic; imports nothing of the program;
- `components.names`: the names, namespaces and ports every layer agrees on; imports only `domain`;
- `components.config` (the stack config package): imports `domain` and `components.names` only,
  never a layer component, the plan or the policies;
- the other `components` modules: `domain`, the config and each other; never `plan` or `policies`;
- `policies`: the CrossGuard rules; below the plan, which runs them in-process (plan.policy_harness);
- `__main__`, `plan`: the top, may import anything.

And below the top no function-local import of a project module: such an import is how a cycle
hides (the module graph then has the cycle, only the import order keeps it from failing).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "components", "plan", "policies")
PROJECT = {*PACKAGES, "tests", "__main__"}

# layer -> the layers it may import
ALLOWED: dict[str, set[str]] = {
    "domain": {"domain"},
    "names": {"domain", "names"},
    "config": {"domain", "names", "config"},
    "components": {"domain", "names", "config", "components"},
    "plan": {"domain", "names", "config", "components", "plan", "policies"},
    "policies": {"domain", "names", "config", "components", "policies"},
    "main": {"domain", "names", "config", "components", "plan", "policies"},
}
# Layers whose function bodies may not import a project module.
NO_LOCAL_IMPORTS = {"domain", "names", "config", "components", "policies", "main"}


def layer(module: str) -> str | None:
    """The layer of a dotted module name, None outside the program (stdlib, third party)."""
    top = module.split(".")[0]
    if top not in PROJECT or top == "tests":
        return None
    if top == "__main__":
        return "main"
    if module == "components.names":
        return "names"
    if module == "components.config" or module.startswith("components.config."):
        return "config"
    return top


def modules() -> dict[str, Path]:
    """Every module of the program: dotted name -> file."""
    out = {"__main__": ROOT / "__main__.py"}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_package(module: str) -> bool:
    return (ROOT / Path(*module.split(".")) / "__init__.py").exists()


def _is_module(module: str) -> bool:
    return _is_package(module) or (ROOT / Path(*module.split("."))).with_suffix(".py").exists()


def imports(module: str, source: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in `source`."""
    tree = ast.parse(source)
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            local |= {id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)) and n is not fn}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if _is_package(module) else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, *([base] if base else [])])
            for a in node.names:  # `from components import names` imports the module components.names
                target = f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
                out.append((target, node.lineno, id(node) in local))
    return out


def violations(module: str, source: str) -> list[str]:
    """Every import in `source` (the text of `module`) that goes the wrong way."""
    own = layer(module)
    if own is None:
        return []
    out = []
    for target, line, in_function in imports(module, source):
        theirs = layer(target)
        if theirs is None:
            continue
        if theirs not in ALLOWED[own]:
            out.append(f"{module}:{line}: {own} imports {target} ({theirs})")
        if in_function and own in NO_LOCAL_IMPORTS:
            out.append(f"{module}:{line}: function-local import of {target}")
    return out


def test_every_import_goes_one_way():
    found = [v for module, path in modules().items() for v in violations(module, path.read_text(encoding="utf-8"))]
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_the_layers_cover_the_program():
    mods = modules()
    assert {"domain.units", "domain.instances", "domain.sizing", "domain.pins", "components.config", "components.config.loader",
            "components.names", "components.models", "plan.engine", "plan.policy_harness", "__main__"} <= set(mods)
    assert {layer(m) for m in mods} == set(ALLOWED)


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("domain.units", "from components.config import PlatformConfig\n", "domain imports components.config (config)"),
    ("domain.sizing", "import plan.engine\n", "domain imports plan.engine (plan)"),
    ("components.names", "from components import k8s\n", "names imports components.k8s (components)"),
    ("components.config.rules", "from components import models as mdl\n",
     "config imports components.models (components)"),
    ("components.config.compute", "from ..instances import instance_facts\n",
     "config imports components.instances (components)"),
    ("components.models", "from plan.objects import K8sObject\n", "components imports plan.objects (plan)"),
    ("components.gateway", "from policies.common import x\n", "components imports policies.common (policies)"),
    ("components.karpenter", "def f():\n    from components.preflight import run_preflight\n",
     "function-local import of components.preflight"),
    ("components.config.loader", "def f():\n    import components.names\n", "function-local import of components.names"),
])
def test_a_wrong_way_import_is_caught(module, source, expected):
    assert any(expected in v for v in violations(module, source)), violations(module, source)


@pytest.mark.parametrize(("module", "source"), [
    ("domain.sizing", "from domain.instances import instance_facts\nimport yaml\n"),
    ("components.config.rules", "from components.names import RESERVED_NAMESPACES\nfrom domain import sizing\n"),
    ("components.models", "from components.config import ModelConfig\nfrom domain.sizing import pod_size\n"),
    ("components.karpenter", "def f():\n    import boto3\n    from pulumi.runtime import settings\n"),
    ("plan.engine", "from components.agentic_platform import AgenticPlatform\n"),
])
def test_a_right_way_import_passes(module, source):
    assert violations(module, source) == []


def _readme_layers() -> dict[str, set[str]]:
    """The README's layer table: layer -> the layers it may import (besides itself)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- layers:", 1)[1].split("\n\n", 1)[0]
    out: dict[str, set[str]] = {}
    for row in table.splitlines()[3:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        out[cells[0].strip("`")] = {w.strip() for w in cells[2].split(",")} - {"(nothing of the program)"}
    return out


def test_the_readme_draws_the_layers():
    assert _readme_layers() == {k: v - {k} for k, v in ALLOWED.items()}


def test_no_two_layers_import_each_other():
    pairs = [(a, b) for a, mine in ALLOWED.items() for b in mine if a < b and a in ALLOWED[b]]
    assert not pairs, f"layers that may import each other: {pairs}"


# ------------------------------------------------------------------ short files, short constructors
# docs/DEVELOPING.md: no file over ~400 lines, no constructor over ~60 (issue 15, item 9). Counted
# over the program (the layers above and the tools) and the tests (tests/*.py, their helper modules
# included). No allow-list: split what grows.
MAX_FILE_LINES = 400
MAX_CONSTRUCTOR_LINES = 60


def program_files() -> dict[str, Path]:
    """Every Python file of the program, the tools included: repository path -> file."""
    files = {str(p.relative_to(ROOT)): p for p in modules().values()}
    for path in sorted((ROOT / "tools").rglob("*.py")):
        if "node_modules" not in path.parts:
            files[str(path.relative_to(ROOT))] = path
    return files


def constructor_lengths(source: str) -> list[tuple[str, int, int]]:
    """(class, line, body lines) of every `__init__` in `source`: the lines from its first statement
    (docstring included) to its last, comments and blank lines inside counted."""
    out = []
    for cls in ast.walk(ast.parse(source)):
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and fn.name == "__init__":
                out.append((cls.name, fn.lineno, fn.end_lineno - fn.body[0].lineno + 1))
    return out


def size_problems(name: str, source: str) -> list[str]:
    out = []
    lines = len(source.splitlines())
    if lines > MAX_FILE_LINES:
        out.append(f"{name}: {lines} lines (> {MAX_FILE_LINES}): split it by responsibility")
    for cls, line, body in constructor_lengths(source):
        if body > MAX_CONSTRUCTOR_LINES:
            out.append(f"{name}:{line}: {cls}.__init__ has {body} body lines (> {MAX_CONSTRUCTOR_LINES}): "
                       "make its steps methods or functions")
    return out


def suite_files() -> dict[str, Path]:
    """Every Python file of the tests (tests/*.py): repository path -> file."""
    return {str(p.relative_to(ROOT)): p for p in sorted((ROOT / "tests").glob("*.py"))}


def test_files_and_constructors_are_short():
    files = {**program_files(), **suite_files()}
    assert {"components/models.py", "policies/aws_rules.py", "tools/charts/build.py", "tests/conftest.py",
            "tests/test_architecture.py"} <= set(files)
    found = [p for name, path in files.items() for p in size_problems(name, path.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def test_a_long_file_and_a_long_constructor_are_caught():
    body = "".join(f"        self.x{i} = {i}\n" for i in range(MAX_CONSTRUCTOR_LINES + 1))
    long_init = f"class Layer:\n    def __init__(self):\n{body}"
    assert size_problems("c.py", long_init) == [
        f"c.py:2: Layer.__init__ has {MAX_CONSTRUCTOR_LINES + 1} body lines (> {MAX_CONSTRUCTOR_LINES}): "
        "make its steps methods or functions"]
    short_init = "class Layer:\n    def __init__(self):\n" + "".join(body.splitlines(True)[:MAX_CONSTRUCTOR_LINES])
    assert size_problems("c.py", short_init) == []
    # A long function that is not a constructor is the file's business, not this rule's.
    assert size_problems("c.py", long_init.replace("__init__", "build")) == []
    assert size_problems("f.py", "x = 1\n" * (MAX_FILE_LINES + 1)) == [
        f"f.py: {MAX_FILE_LINES + 1} lines (> {MAX_FILE_LINES}): split it by responsibility"]
    assert size_problems("f.py", "x = 1\n" * MAX_FILE_LINES) == []
