"""Shared fixtures and the test tiers (docs/DEVELOPING.md, "Tests").

Tiers, by marker (`pytest -m unit|layer|program|slow`):
- `unit`: pure checks (config validation, helpers, data files); no Pulumi program runs.
- `layer`: one component under the mock engine (`plan.engine.execute`), marked by the module or test.
- `program`: the whole program; they share one plan per stack (`dev_plan`, `prod_plan`, `any_plan`) and
  one per variant stack (`variant_plan(name)`, `examples/Pulumi.<name>.yaml`), built once per session
  (under `-n`, these tests all run on one xdist worker: tests/shared_plans.py).
- `slow`: `python -m plan` subprocesses (the CLI contract), scaling and timing; `make test-slow`.
A test with no tier marker gets `program` if it uses a shared plan fixture or calls `plan_of`,
`variant_plan`, `plan_file` or `run_program` itself, `layer` if it uses `unit_plan` or calls `execute`,
else `unit`; a `unit` test that runs the mock engine or asks for a plan (through a helper) fails,
naming the marker it needs."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import NAMESPACE, ConfigError, validate
from plan.analysis import analyse
from plan.engine import ROOT, Plan, program_config, read_stack, run_program, tune_gc
from tests import shared_plans
from tests.policy_recording import Recording

tune_gc()   # every worker plans whole programs: the plan's collection thresholds (plan/engine.py)

STACKS = ("dev", "prod")
EXAMPLES = ROOT / "examples"
TIERS = ("unit", "layer", "program", "slow")
_CACHE: dict[str, Plan] = {}


def plan_file(stack_or_file: str, analysed: bool = True) -> Plan:
    """The whole offline plan of a stack (program, rendered releases, admission, reachability), as
    `python -m plan` makes it, in-process; `analysed=False`: the validated program's resources only."""
    sf = read_stack(stack_or_file)
    config = validate({k.split(":", 1)[1]: v for k, v in program_config(sf).items()
                       if k.startswith(NAMESPACE + ":")}, sf.name)
    plan = run_program(sf)
    if analysed:
        analyse(plan, config)
    return plan


def plan_of(stack: str) -> Plan:
    """The offline plan of Pulumi.<stack>.yaml, run once per test session."""
    _not_in_unit("plan_of")
    if stack not in _CACHE:
        _CACHE[stack] = plan_file(stack)
    return _CACHE[stack]


# Variant stacks derived from a real one by a change, planned once per session (`variant_plan`). A
# variant is a change to dev or prod that several tests look at; a stack that stands on its own is a
# file under examples/ (`variant_plan("<name>")` plans examples/Pulumi.<name>.yaml).
def kgateway_only_doc() -> dict[str, Any]:
    """Prod with `gateway.inferenceRouting: none`: kgateway serves every model itself (weighted canary,
    priority-group fallback, per-tenant request buckets); no token budgets or cache salt (only
    agentgateway enforces those)."""
    doc = stack_doc("prod")
    gw = doc["config"]["agentic-platform:gateway"]
    gw["inferenceRouting"] = "none"
    gw.pop("promptCache", None)
    for budget in [gw["defaultTenantBudget"], *gw.get("tenantBudgets", {}).values()]:
        budget.pop("tokensPerMinute", None)
    return doc


def _placement() -> dict[str, Any]:
    """Prod plus a model of node-isolated tenant-b, one on the spot-tainted gpu-spot pool (tenant-a) and
    Mixtral on TGI with a pvc cache."""
    doc = stack_doc("prod")
    models = doc["config"]["agentic-platform:models"]
    base = {"engine": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "image": models[1]["image"],
            "parametersB": 8.03, "gpus": 1, "minReplicas": 0, "maxReplicas": 1, "maxModelLen": 8192,
            "cache": "nodeLocal", "cacheSizeGiB": 100}
    models.append({**base, "name": "b-llama-8b", "tenant": "tenant-b", "pool": "gpu-inference"})
    models.append({**base, "name": "a-spot-8b", "tenant": "tenant-a", "pool": "gpu-spot"})
    # TGI from a pvc cache (the engine and cache no real stack serves any more)
    models.append({"name": "tgi-mixtral", "engine": "tgi", "model": "mistralai/Mixtral-8x7B-Instruct-v0.1",
                   "image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/text-generation-inference:3.3.6-nonroot",
                   "parametersB": 46.7, "gpus": 4, "gpuModel": "A100", "pool": "gpu-inference", "minReplicas": 1,
                   "maxReplicas": 1, "maxModelLen": 16384, "cache": "pvc", "cacheSizeGiB": 200})
    doc["config"]["agentic-platform:platformQuotas"]["ai-inference"].update(
        cpu="200", memory="1000Gi", cpuLimit="400", memoryLimit="2Ti")   # room for the extra model
    return doc


# name -> (the stack document, whether its tests need the analysed plan: rendered objects, admission,
# reachability; else the program's resources are enough and the variant costs a second, not five)
VARIANTS = {"kgateway": (kgateway_only_doc, True), "placement": (_placement, False)}


def variant_plan(name: str) -> Plan:
    """The offline plan of a variant stack (VARIANTS, else examples/Pulumi.<name>.yaml, analysed),
    once per session."""
    _not_in_unit("variant_plan")
    key = f"variant:{name}"
    if key not in _CACHE:
        if name in VARIANTS:
            import tempfile

            build, analysed = VARIANTS[name]
            path = write_stack(Path(tempfile.mkdtemp(prefix=f"variant-{name}-")), build(), name)
        else:
            path, analysed = EXAMPLES / f"Pulumi.{name}.yaml", True
        _CACHE[key] = plan_file(str(path), analysed)
    return _CACHE[key]


def example_stacks() -> list[str]:
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in EXAMPLES.glob("Pulumi.*.yaml"))


def stack_doc(stack: str) -> dict[str, Any]:
    """A deep copy of a stack file's YAML, to change and write elsewhere."""
    return copy.deepcopy(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()))


def dev_pool_problems(prefix: str, **pool: Any) -> list[tuple[str, str]]:
    """The config problems under `prefix` when dev's first GPU pool gets `pool`'s fields (no plan runs)."""
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:gpuPools"][0].update(pool)
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc["config"].items()
           if k.startswith(NAMESPACE + ":")}
    try:
        validate(raw, "dev")
    except ConfigError as err:
        return [(p, m) for p, m in err.problems if p.startswith(prefix)]
    return []


def write_stack(tmp_path: Path, doc: dict[str, Any], name: str = "test") -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    return plan_of("dev")


@pytest.fixture(scope="session")
def prod_plan() -> Plan:
    return plan_of("prod")


@pytest.fixture(scope="session", params=STACKS)
def any_plan(request) -> Plan:
    return plan_of(request.param)


@pytest.fixture(scope="session")
def agw_plan() -> Plan:
    """Prod: it routes its (vLLM) models through agentgateway behind kgateway."""
    return plan_of("prod")


@pytest.fixture(scope="session")
def kgw_plan() -> Plan:
    """The `kgateway` variant: prod with kgateway serving every model itself (inferenceRouting: none)."""
    return variant_plan("kgateway")


@pytest.fixture(scope="session")
def placement_plan() -> Plan:
    """The `placement` variant: prod with models on an isolated tenant's pool and on the spot pool."""
    return variant_plan("placement")


# ----------------------------------------------------------------------------- tiers

# Calls in a test's own source that put it in a tier (when it has no marker and no such fixture);
# `getfixturevalue(` is how a parametrized test asks for a stack's shared plan by name.
PROGRAM_CALLS = ("plan_of(", "variant_plan(", "plan_file(", "run_program(", "plan_doc(", "getfixturevalue(")
LAYER_CALLS = ("execute(", "run_component(")
PROGRAM_FIXTURES = {"dev_plan", "prod_plan", "any_plan", "agw_plan", "kgw_plan", "placement_plan", "example_plan"}
LAYER_FIXTURES = {"unit_plan"}   # module fixtures that run one component under the mock engine
# What asks for a plan of the session cache (_CACHE), in the test or one of its fixtures, rather than
# planning a stack of its own: under xdist these tests run on one worker (tests/shared_plans.py).
SHARED_PLAN_CALLS = ("plan_of(", "variant_plan(", "getfixturevalue(")
_current_tier: list[str] = []


def pytest_collection_modifyitems(config, items):
    """Every test gets exactly one tier marker: its own, else `program` when it uses a shared plan, else `unit`;
    on an xdist worker, the tests on a shared plan are reported to the controller's scheduler."""
    on_shared_plan = []
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        src = _source(item)
        own = [m.name for m in item.iter_markers() if m.name in TIERS]
        if not own:
            tier = ("program" if PROGRAM_FIXTURES & used or any(c in src for c in PROGRAM_CALLS) else
                    "layer" if LAYER_FIXTURES & used or any(c in src for c in LAYER_CALLS) else "unit")
            item.add_marker(getattr(pytest.mark, tier))
        if (PROGRAM_FIXTURES & used or any(c in s for s in (src, *_fixture_sources(item)) for c in SHARED_PLAN_CALLS)
                or _calls_any(src, _shared_plan_helpers(getattr(item, "module", None)))):
            on_shared_plan.append(item.nodeid)
    shared_plans.write_from_worker(config, on_shared_plan)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: tell each worker where to list its tests on a shared plan."""
    node.workerinput[shared_plans.WORKER_INPUT_KEY] = shared_plans.controller_file(node.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist controller, `-n N` (`--dist load`, the default): the tests on a shared plan as one unit."""
    if config.getvalue("dist") == "load":
        return shared_plans.Scheduling(config, log)
    return None


def _source(item) -> str:
    import inspect

    try:
        return inspect.getsource(item.function)
    except (AttributeError, OSError, TypeError):
        return ""


@functools.cache
def _shared_plan_helpers(module) -> frozenset[str]:
    """The module's own functions that read a plan of the session cache, directly or through another
    such function (`derivation(stack)` -> `plan_of(stack)`): a test calling one is on a shared plan."""
    import inspect

    sources = {}
    for name, value in vars(module).items() if module is not None else ():
        fn = getattr(value, "__wrapped__", value)   # @cache helpers
        if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("test_"):
            try:
                sources[name] = inspect.getsource(fn)
            except (OSError, TypeError):
                pass
    found = {name for name, src in sources.items() if any(c in src for c in SHARED_PLAN_CALLS)}
    while more := {name for name, src in sources.items() if name not in found and _calls_any(src, found)}:
        found |= more
    return frozenset(found)


def _calls_any(src: str, functions: frozenset[str] | set[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(f)}\(", src) for f in functions)


def _fixture_sources(item) -> list[str]:
    """The source of every fixture the test uses (a module fixture may fetch a shared plan by name)."""
    import inspect

    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    out = []
    for name in getattr(item, "fixturenames", ()):
        for fixturedef in defs.get(name, ()):
            try:
                out.append(inspect.getsource(fixturedef.func))
            except (OSError, TypeError):
                pass
    return out


def _not_in_unit(what: str) -> None:
    """Deterministic, whether or not the plan is cached yet on this worker."""
    if _current_tier == ["unit"]:
        raise AssertionError(f"a unit-tier test called {what}: use a shared plan fixture (dev_plan, prod_plan, "
                             "any_plan, agw_plan, ...) or mark it @pytest.mark.program, see docs/DEVELOPING.md")


def pytest_runtest_setup(item):
    _current_tier[:] = [next(m.name for m in item.iter_markers() if m.name in TIERS)]


def pytest_runtest_teardown(item):
    _current_tier.clear()


def _guard_execute():
    """A `unit` test must not run the mock engine: it would be a `layer` or `program` test, slower
    than its tier promises."""
    import plan.engine as engine

    original = engine.execute
    if getattr(original, "_tier_guard", False):
        return

    def execute(*args, **kwargs):
        if _current_tier == ["unit"]:
            raise AssertionError("a unit-tier test ran the mock engine (plan.engine.execute): mark it "
                                 "@pytest.mark.layer (one component) or @pytest.mark.program (the whole "
                                 "program; better, use a shared plan fixture), see docs/DEVELOPING.md")
        return original(*args, **kwargs)

    execute._tier_guard = True
    engine.execute = execute


_guard_execute()


def rendered(plan: Plan, release_name: str) -> list[dict[str, Any]]:
    """What a planned Helm release really renders, as the plan rendered it (plan.render: its vendored
    archive through the pinned Helm, with the release's values and the cluster's Capabilities), CRDs
    left out: one render path for the plan and the tests."""
    objects = [o.manifest for o in plan.objects if o.release == release_name and o.kind != "CustomResourceDefinition"]
    assert objects, f"release {release_name} rendered nothing (was the plan analysed?)"
    return objects


def release_of(plan: Plan, chart: str):
    """The Helm release of `plan` that installs the pinned chart `chart` (a platform/charts.yaml
    key), found by its vendored archive."""
    from components.k8s import chart_archive

    (r,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart_archive(chart)]
    return r


@pytest.fixture
def rec(prod_plan) -> Recording:
    """prod's plan as the policy gate's tests read it (tests/policy_recording.py): one fixture for
    tests/test_policy_gate*.py."""
    return Recording(prod_plan)
