"""Shared fixtures: the offline plan of a stack (run once per session) and a way to plan a
stack file with changes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from plan.engine import ROOT, Plan, read_stack, run_program

STACKS = ("dev", "prod")
_CACHE: dict[str, Plan] = {}


def plan_file(stack_or_file: str) -> Plan:
    """The whole offline plan of a stack (program, rendered releases, admission, reachability), as
    `python -m plan` makes it, in-process."""
    from components.config import NAMESPACE, validate
    from plan.analysis import analyse
    from plan.engine import program_config

    sf = read_stack(stack_or_file)
    config = validate({k.split(":", 1)[1]: v for k, v in program_config(sf).items()
                       if k.startswith(NAMESPACE + ":")}, sf.name)
    plan = run_program(sf)
    analyse(plan, config)
    return plan


def plan_of(stack: str) -> Plan:
    """The offline plan of Pulumi.<stack>.yaml, run once per test session."""
    if stack not in _CACHE:
        _CACHE[stack] = plan_file(stack)
    return _CACHE[stack]


def stack_doc(stack: str) -> dict[str, Any]:
    """A deep copy of a stack file's YAML, to change and write elsewhere."""
    return copy.deepcopy(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()))


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


def rendered(plan: Plan, release_name: str, api_versions: tuple[str, ...] = ("monitoring.coreos.com/v1",)) -> list[dict[str, Any]]:
    """What a planned Helm release really renders: its vendored chart archive (platform/charts/)
    through the pinned Helm (plan.render), with the release's planned values. Skips the calling test
    when the archive or Helm is not on this machine."""
    import json

    from plan.render import HELM, ReleaseSpec, render_one

    (r,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("name") == release_name]
    chart = r.inputs["chart"]
    if chart.endswith(".tgz"):   # the release installs the vendored archive itself
        archive = ROOT / chart
    else:
        pins = yaml.safe_load((ROOT / "platform" / "charts.yaml").read_text())
        (key,) = [k for k, pin in pins.items() if pin["chart"] == chart and pin["version"] == r.inputs["version"]]
        archive = ROOT / "platform" / "charts" / f"{key}-{r.inputs['version']}.tgz"
    if not (archive.is_file() and HELM.is_file()):
        pytest.skip(f"{archive.name} or Helm not here: the render check needs both")
    spec = ReleaseSpec(urn=r.urn, name=release_name, namespace=r.inputs["namespace"], chart=archive,
                       version=r.inputs["version"], values=json.dumps(r.inputs.get("values") or {}, sort_keys=True),
                       include_crds=False)
    return [o["manifest"] for o in render_one(spec, "1.34.0", api_versions)]


def release_of(plan: Plan, chart: str):
    """The Helm release of `plan` that installs the pinned chart `chart` (a platform/charts.yaml
    key), found by its vendored archive."""
    from components.k8s import chart_archive

    (r,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart_archive(chart)]
    return r
