"""The slow tier: `python -m plan` in subprocesses, the CLI contract of DESIGN.md (exit codes, JSON
shape, manifests, the policy gate, no secret in any output) and how long a plan takes. Every test here
is marked `slow` (`make test-slow`); what the CLI computes is tested in-process on shared plans."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import pytest
import yaml

from plan.engine import ROOT
from tests.conftest import stack_doc, write_stack

pytestmark = pytest.mark.slow

TOKEN_PLACEHOLDER = "mock-secret-hfToken"

RESOURCE_KEYS = {"urn", "type", "name", "parent", "custom", "protect", "dependencies", "inputs"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def cli_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"plan-{request.param}")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "plan", request.param, "--json", str(out / "p.json"),
                           "--manifests", str(out / "m")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    return request.param, proc, out, time.perf_counter() - start


def test_exit_zero_and_summary(cli_run):
    stack, proc, _, _ = cli_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"Offline plan of agentic-platform/{stack}:" in proc.stdout
    assert "Outputs:" in proc.stdout and "Policies:" in proc.stdout


def test_json_contract(cli_run):
    stack, proc, out, _ = cli_run
    doc = json.loads((out / "p.json").read_text())
    assert doc["project"] == "agentic-platform" and doc["stack"] == stack
    assert isinstance(doc["outputs"], dict) and isinstance(doc["policies"], list)
    urns = {r["urn"] for r in doc["resources"]}
    assert len(urns) == len(doc["resources"]), "URNs are unique"
    for r in doc["resources"]:
        assert RESOURCE_KEYS <= set(r), r["urn"]
        assert isinstance(r["custom"], bool) and isinstance(r["protect"], bool)
        assert r["parent"] is None or r["parent"] in urns, f"{r['urn']}: dangling parent {r['parent']}"
        assert all(d.startswith("urn:pulumi:") for d in r["dependencies"])
    for f in doc["policies"]:
        assert set(f) == {"policy", "level", "urn", "object", "message"} and f["level"] in ("mandatory", "advisory")
    types = {r["type"] for r in doc["resources"]}
    assert {"agentic:index:AgenticPlatform", "eks:index:Cluster", "aws:ec2/vpc:Vpc"} <= types


def test_outputs_and_secrets(cli_run):
    _, _, out, _ = cli_run
    doc = json.loads((out / "p.json").read_text())
    outputs = doc["outputs"]
    assert {"clusterName", "clusterEndpoint", "kubeconfig", "vpcId", "privateSubnetIds", "publicSubnetIds",
            "controlPlaneSubnetIds"} <= set(outputs)
    assert outputs["kubeconfig"] == "[secret]"
    text = (out / "p.json").read_text()
    assert "get-token" not in text, "the kubeconfig must not leak into the plan"
    assert "mock-secret-" not in text, "a secure: stack value leaked in plain text"


def test_manifests_written(cli_run):
    _, proc, out, _ = cli_run
    files = list((out / "m").rglob("*.yaml"))
    assert files
    for f in files:
        doc = yaml.safe_load(f.read_text())
        if f.parent.name == "_helm":
            assert {"release", "chart", "version", "upstream", "namespace", "values"} <= set(doc)
        else:
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
            assert f.name.startswith(f"{doc['kind']}-{doc['metadata']['name']}")
            assert f.parent.name == doc["metadata"].get("namespace", "_cluster")
    assert "manifests under" in proc.stdout
    # index.json: every object file, with its source (a declaring URN or, rendered, its release's URN)
    index = json.loads((out / "m" / "index.json").read_text())
    objects = {str(f.relative_to(out / "m")) for f in files if f.parent.name != "_helm"}
    assert {e["file"] for e in index} == objects
    urns = {r["urn"] for r in json.loads((out / "p.json").read_text())["resources"]}
    for e in index:
        assert {"file", "apiVersion", "kind", "namespace", "name", "source", "release", "hook"} <= set(e)
        assert e["source"] in urns, e


def test_prod_plan_takes_seconds(cli_run):
    stack, _, _, seconds = cli_run
    assert seconds < 30, f"{stack} plan took {seconds:.1f}s"



def test_no_plan_output_holds_the_token(cli_run):
    """(from test_models) the HF token's placeholder is in no output: JSON, manifests, stdout, stderr."""
    _, out, tmp_path, _ = cli_run
    assert out.returncode in (0, 1), out.stderr
    texts = [(tmp_path / "p.json").read_text()]
    texts += [p.read_text() for p in (tmp_path / "m").rglob("*") if p.is_file()]
    assert len(texts) > 1
    assert not any(TOKEN_PLACEHOLDER in t for t in texts)
    assert TOKEN_PLACEHOLDER not in out.stdout + out.stderr
    secrets = [p for p in (tmp_path / "m").rglob("Secret-hf-token*")]
    assert secrets, "the hf-token Secret is in the manifests"


# ----------------------------------------------------------------------------- the CLI gate


@pytest.fixture(scope="module")
def unprotected_prod(tmp_path_factory):
    """Pulumi.prod.yaml with protectData false: valid config, but prod requires protected data."""
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:protectData"] = False
    return doc, tmp_path_factory.mktemp("gate")


def _plan(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_exits_1_naming_the_rule_and_the_resources(unprotected_prod):
    doc, tmp = unprotected_prod
    proc = _plan(write_stack(tmp, doc, "gateprod"))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "invalid stack config" not in proc.stderr, "the violation must pass config validation"
    assert "mandatory policy violation(s): stateful-resources-protected" in proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "[mandatory]" in ln]
    assert lines and all("stateful-resources-protected" in ln for ln in lines)
    for kind, name in (("aws:s3/bucket:Bucket", "data-documents"), ("aws:rds/instance:Instance", "agents-db"),
                       ("aws:elasticache/replicationGroup:ReplicationGroup", "data-redis"),
                       ("aws:kms/key:Key", "cluster-secrets")):
        assert any(f"{kind}::{name})" in ln and f"'{name}'" in ln for ln in lines), (kind, name)


def test_cli_same_file_as_dev_exits_0(unprotected_prod):
    doc, tmp = unprotected_prod
    doc = copy.deepcopy(doc)
    doc["config"]["agentic-platform:environment"] = "dev"
    proc = _plan(write_stack(tmp, doc, "gatedev"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[mandatory]" not in proc.stdout
    # dev disables stateful-resources-protected: unprotected data is dev's normal state, not a finding
    assert "stateful-resources-protected" not in proc.stdout
