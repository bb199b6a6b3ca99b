"""Conformance: every manifest the plan writes validates, strictly, against the Kubernetes schemas
of the cluster's version or the upstream CRD JSON Schemas vendored in platform/crds/schemas (copied from
the design repo's crds/json with their PROVENANCE.md). An object whose
kind has no schema fails. Every later layer is validated here without new test code."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from plan.engine import ROOT
from plan.report import write_manifests
from tests.conftest import STACKS, plan_of

CRD_DIR = ROOT / "platform" / "crds" / "schemas"


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> JSON Schema, from the CRD index."""
    index = json.loads((CRD_DIR / "index.json").read_text())
    return {(e["apiVersion"], e["kind"]): json.loads((CRD_DIR / e["file"]).read_text()) for e in index}


def kube_version(stack: str) -> str:
    from components.config import PlatformConfig  # noqa: F401 (the default lives there)

    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    version = (doc["config"].get("agentic-platform:cluster") or {}).get("version", "1.34")
    return f"{version}.0"


def validate_manifest(manifest: dict, version: str) -> None:
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key in crd_schemas():
        jsonschema.Draft202012Validator(crd_schemas()[key]).validate(manifest)
        return
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.utils.SchemaNotFoundError:
        pytest.fail(f"no schema for {key[0]} {key[1]}: neither Kubernetes {version} nor platform/crds/schemas has it")


@pytest.fixture(scope="module", params=STACKS)
def manifests(request, tmp_path_factory) -> tuple[str, list[Path]]:
    out = tmp_path_factory.mktemp(f"manifests-{request.param}")
    return request.param, write_manifests(plan_of(request.param), out)


def test_every_manifest_validates(manifests):
    stack, files = manifests
    version = kube_version(stack)
    objects = [f for f in files if f.parent.name != "_helm"]
    assert objects, "the plan wrote no Kubernetes objects"
    failures = []
    for path in objects:
        doc = yaml.safe_load(path.read_text())
        try:
            validate_manifest(doc, version)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as err:
            failures.append(f"{path.parent.name}/{path.name}: {getattr(err, 'message', err)}")
    assert not failures, "\n".join(failures)


def test_helm_releases_are_pinned(manifests):
    _, files = manifests
    for path in (f for f in files if f.parent.name == "_helm"):
        doc = yaml.safe_load(path.read_text())
        assert doc["chart"] and doc["version"], path
        assert not any(c in str(doc["version"]) for c in "^~*><"), f"{path.name}: version range {doc['version']}"


def test_validator_rejects_unknown_field_and_unknown_kind():
    good = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    validate_manifest(good, "1.34.0")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifest({**good, "spec": {"bogus": 1}}, "1.34.0")
    nodepool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                               "name": "x"}, "requirements": [], "bogus": 1}}}}
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(nodepool, "1.34.0")
    with pytest.raises(pytest.fail.Exception):
        validate_manifest({"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}}, "1.34.0")
