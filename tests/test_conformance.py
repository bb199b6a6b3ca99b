"""Conformance: every manifest the plan writes (declared and rendered objects alike) validates,
strictly, against the Kubernetes schemas of the cluster's version or the CRDs the same plan installs
(plan/admission/schema.py: the schema the API server would apply). Read back from the files, so
what `--manifests` writes is what was checked. Every later layer is validated here without new test
code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plan.admission import schema
from plan.engine import ROOT
from plan.objects import K8sObject
from plan.report import write_manifests
from tests.conftest import STACKS, plan_of

pytestmark = pytest.mark.program  # the shared plans of both stacks


def kube_version(stack: str) -> str:
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    version = (doc["config"].get("agentic-platform:cluster") or {}).get("version", "1.34")
    return f"{version}.0"


def read_objects(files: list[Path]) -> list[K8sObject]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [K8sObject(yaml.load(f.read_text(), Loader=loader), str(f)) for f in files if f.parent.name != "_helm"]


def problems(objects: list[K8sObject], version: str) -> list[str]:
    return [f"{o.source}: {msg}" for o, msg in schema.check(objects, version)]


def validate_manifest(manifest: dict, version: str, crds: list[K8sObject] = ()) -> None:
    """Fail the test when `manifest` does not validate (with `crds` installed)."""
    found = problems([*crds, K8sObject(manifest, "manifest")], version)
    if found:
        pytest.fail("\n".join(found))


@pytest.fixture(scope="module", params=STACKS)
def manifests(request, tmp_path_factory) -> tuple[str, list[Path]]:
    out = tmp_path_factory.mktemp(f"manifests-{request.param}")
    return request.param, write_manifests(plan_of(request.param), out)


def test_every_manifest_validates(manifests):
    stack, files = manifests
    objects = read_objects(files)
    assert len(objects) > 200, "the plan wrote too few Kubernetes objects (are the releases rendered?)"
    assert not (found := problems(objects, kube_version(stack))), "\n".join(found)


def test_helm_releases_are_pinned(manifests):
    _, files = manifests
    for path in (f for f in files if f.parent.name == "_helm"):
        doc = yaml.safe_load(path.read_text())
        assert doc["chart"] and doc["version"], path
        assert not any(c in str(doc["version"]) for c in "^~*><"), f"{path.name}: version range {doc['version']}"
        assert (ROOT / doc["chart"]).is_file(), f"{path.name}: {doc['chart']} is not a vendored archive"


def test_validator_rejects_unknown_field_and_unknown_kind():
    good = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    validate_manifest(good, "1.34.0")
    with pytest.raises(pytest.fail.Exception, match="bogus"):
        validate_manifest({**good, "spec": {"bogus": 1}}, "1.34.0")
    with pytest.raises(pytest.fail.Exception, match="no matches for kind"):
        validate_manifest({"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}}, "1.34.0")
