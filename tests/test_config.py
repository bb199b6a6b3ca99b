"""The stack config: defaults, rules, and bad input reported with its key path, all at once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.config import ConfigError, PlatformConfig, validate
from plan.engine import ROOT
from tests.conftest import stack_doc, write_stack

DEPLOYER = "arn:aws:iam::111122223333:role/PulumiDeployer"
# What every valid cluster section needs (a deployer, a way to the private endpoint); merged into
# the tests' `cluster` unless they set these keys themselves.
CLUSTER_BASE = {"deployer": {"arn": DEPLOYER}, "apiAccess": {"cidrs": ["10.100.0.0/22"]}}


def raw(**sections) -> dict[str, str]:
    out = {"environment": "dev"}
    if isinstance(sections.get("cluster", {}), dict):
        sections["cluster"] = {**CLUSTER_BASE, **sections.get("cluster", {})}
    out.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in sections.items()})
    return out


def problems(**sections) -> list[str]:
    with pytest.raises(ConfigError) as err:
        validate(raw(**sections), "test")
    return err.value.lines()


def test_defaults_are_private_and_protected():
    cfg = validate(raw(), "dev")
    assert isinstance(cfg, PlatformConfig)
    assert cfg.cluster.endpoint == "private"
    assert cfg.protect_data is True
    assert cfg.cluster_name == "agentic-dev"
    assert cfg.network.availability_zones == 3


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_are_valid(stack):
    doc = stack_doc(stack)["config"]
    plain = {k.split(":", 1)[1]: "[secret]" if isinstance(v, dict) and "secure" in v else
             v if isinstance(v, str) else json.dumps(v)
             for k, v in doc.items() if k.startswith("agentic-platform:")}
    cfg = validate(plain, stack)
    assert cfg.environment == stack


def test_unknown_keys_rejected_everywhere():
    lines = problems(network={"cidr": "10.0.0.0/16", "azs": 3}, bogus="1")
    assert "agentic-platform:bogus: unknown key; known keys are" in lines[0]
    assert "agentic-platform:network.azs: unknown key" in lines


def test_snake_case_keys_are_not_accepted():
    lines = problems(network={"availability_zones": 3})
    assert "agentic-platform:network.availability_zones: unknown key" in lines


def test_environment_required_and_enumerated():
    with pytest.raises(ConfigError) as err:
        validate({}, "x")
    assert err.value.lines() == ["agentic-platform:environment: is required"]
    with pytest.raises(ConfigError) as err:
        validate({"environment": "qa"}, "x")
    assert err.value.lines()[0].startswith("agentic-platform:environment: Input should be 'dev', 'staging' or 'prod'")


def test_subnets_must_fit_the_cidr_for_the_az_count():
    lines = problems(network={"cidr": "10.0.0.0/20", "availabilityZones": 3})
    assert any(line.startswith("agentic-platform:network.cidr: 3 AZs x (one /19 private") for line in lines)
    assert "agentic-platform:network.privateSubnetPrefix: /19 subnets do not fit inside the VPC 10.0.0.0/20" in lines
    # 6 AZs of /20 + /24 fit a /16; 6 of /19 do not leave room for public subnets
    validate(raw(network={"cidr": "10.0.0.0/16", "availabilityZones": 6, "privateSubnetPrefix": 20}), "t")
    assert problems(network={"cidr": "10.0.0.0/16", "availabilityZones": 6, "privateSubnetPrefix": 18})


def test_az_count_bounds():
    assert problems(network={"availabilityZones": 1})[0] == \
        "agentic-platform:network.availabilityZones: Input should be greater than or equal to 2 (got 1)"
    assert "less than or equal to 6" in problems(network={"availabilityZones": 7})[0]


def test_public_endpoint_needs_own_cidrs():
    assert problems(cluster={"endpoint": "publicAndPrivate"}) == [
        "agentic-platform:cluster.publicAccessCidrs: endpoint 'publicAndPrivate' needs the CIDRs allowed to reach it"]
    assert problems(cluster={"endpoint": "publicAndPrivate", "publicAccessCidrs": ["198.51.100.0/24", "0.0.0.0/0"]}) == [
        "agentic-platform:cluster.publicAccessCidrs[1]: 0.0.0.0/0 opens the API server to the internet; list your own CIDRs"]
    assert problems(cluster={"publicAccessCidrs": ["198.51.100.0/24"]}) == [
        "agentic-platform:cluster.publicAccessCidrs: is only used with endpoint 'publicAndPrivate'"]


def test_names_are_dns_safe():
    lines = problems(cluster={"name": "Agentic_Prod"})
    assert lines[0].startswith("agentic-platform:cluster.name: String should match pattern")
    lines = problems(cluster={"admins": [{"name": "Ops Team", "arn": "arn:aws:iam::111122223333:role/Ops"}]})
    assert lines[0].startswith("agentic-platform:cluster.admins[0].name: String should match pattern")


def test_admin_arn_and_system_node_sizes():
    lines = problems(cluster={"admins": [{"name": "ops", "arn": "arn:aws:iam::role/x"}],
                              "systemNodes": {"minSize": 3, "maxSize": 2, "desiredSize": 2}})
    assert lines[0].startswith("agentic-platform:cluster.admins[0].arn: String should match pattern")
    assert "agentic-platform:cluster.systemNodes.desiredSize: must lie between minSize (3) and maxSize (2); got 2" in lines


@pytest.mark.slow
def test_several_mistakes_reported_at_once(tmp_path):
    """The 'done when' of the foundation: one message per mistake, each with its key path, exit 2,
    no traceback, nothing planned."""
    doc = stack_doc("prod")
    c = doc["config"]
    c["agentic-platform:network"] = {"cidr": "10.0.0.0/22", "availabilityZones": 3, "natGateways": "many"}
    c["agentic-platform:cluster"]["endpoint"] = "publicAndPrivate"
    c["agentic-platform:cluster"]["publicAccessCidrs"] = ["0.0.0.0/0"]
    c["agentic-platform:cluster"]["systemNodes"]["desiredSize"] = 99
    c["agentic-platform:unknownThing"] = 1
    path = write_stack(tmp_path, doc, "broken")
    proc = subprocess.run([sys.executable, "-m", "plan", str(path), "--json", str(tmp_path / "p.json")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    assert "agentic-platform:unknownThing: unknown key" in err
    assert "agentic-platform:network.natGateways: Input should be 'single' or 'perAz' (got 'many')" in err
    assert "agentic-platform:cluster.publicAccessCidrs[0]: 0.0.0.0/0 opens the API server" in err
    assert "agentic-platform:cluster.systemNodes.desiredSize: must lie between" in err
    assert not (tmp_path / "p.json").exists(), "nothing is planned from an invalid stack file"


@pytest.mark.slow
def test_unreadable_stack_file_exits_2(tmp_path):
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config: [1, 2")
    proc = subprocess.run([sys.executable, "-m", "plan", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "plan", "nosuchstack"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "no such stack file" in proc.stderr


@pytest.mark.slow
def test_missing_required_secret_is_a_config_error(tmp_path):
    """Agents need the gateway token: without it the plan stops at validation (exit 2, key named)
    instead of failing inside a component; the Hugging Face token stays optional (ungated models)."""
    doc = stack_doc("dev")
    doc["config"].pop("agentic-platform:agentGatewayToken")
    doc["config"].pop("agentic-platform:hfToken")
    proc = subprocess.run([sys.executable, "-m", "plan", str(write_stack(tmp_path, doc, "nosecret"))],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "agentic-platform:agentGatewayToken: is required" in proc.stderr
    assert "hfToken" not in proc.stderr


def test_secret_values_never_enter_validation(monkeypatch):
    from pulumi.runtime import config as runtime_config

    from components.config import raw_from_pulumi

    monkeypatch.setattr(runtime_config, "get_config_env", lambda: {"agentic-platform:hfToken": "hf_realvalue",
                                                                    "agentic-platform:environment": "dev"})
    token = runtime_config.CONFIG.set({})  # no config left over from a program an earlier test ran here
    try:
        raw = raw_from_pulumi()
    finally:
        runtime_config.CONFIG.reset(token)
    assert raw["hfToken"] == "[secret]" and raw["environment"] == "dev"
