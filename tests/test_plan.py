"""The offline plan end to end: the CLI contract of DESIGN.md (exit codes, JSON shape, manifests)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from plan.engine import ROOT, read_stack

RESOURCE_KEYS = {"urn", "type", "name", "parent", "custom", "protect", "dependencies", "inputs"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def cli_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"plan-{request.param}")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "plan", request.param, "--json", str(out / "p.json"),
                           "--manifests", str(out / "m")], cwd=ROOT, capture_output=True, text=True)
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
    assert {"clusterName", "clusterEndpoint", "kubeconfig", "vpcId", "privateSubnetIds", "publicSubnetIds"} <= set(outputs)
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


def test_stack_file_by_path_and_name(tmp_path):
    src = (ROOT / "Pulumi.dev.yaml").read_text()
    (tmp_path / "Pulumi.staging-eu.yaml").write_text(src)
    (tmp_path / "custom.yaml").write_text(src)
    assert read_stack(str(tmp_path / "Pulumi.staging-eu.yaml")).name == "staging-eu"
    assert read_stack(str(tmp_path / "custom.yaml")).name == "custom"
    assert read_stack("dev").name == "dev"


def test_secure_values_reach_the_program_as_secrets(tmp_path):
    sf = read_stack("dev")
    for key in sf.secret_keys:
        assert sf.config[key].startswith("mock-secret-")
