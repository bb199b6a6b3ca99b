"""The pre-flight of a whole stack (`python -m plan STACK --preflight` and `cluster.preflight` in
`pulumi up`), run against AWS without network: moto's EC2 data, or a recorded account
(tests/fixtures/aws/account-us-west-2.json) replayed through botocore's Stubber, which checks
every request's parameters and validates every answer against the service model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

import plan.preflight as preflight
from components.config import NAMESPACE, validate
from plan.engine import ROOT, program_config, read_stack, run_program
from plan.preflight import run, stop_unless_capacity
from tests.conftest import stack_doc, write_stack

REGION = "us-west-2"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
ACCOUNT = json.loads((ROOT / "tests" / "fixtures" / "aws" / "account-us-west-2.json").read_text())


def _config_of(path: Path):
    sf = read_stack(str(path))
    return validate({k.split(":", 1)[1]: v for k, v in program_config(sf).items()
                     if k.startswith(NAMESPACE + ":")}, sf.name), sf


def _dev(tmp_path: Path, **pool: Any):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:gpuPools"][0].update(pool)
    return _config_of(write_stack(tmp_path, doc))


def recorded_account(reservations: list[tuple[dict[str, Any], str]], quotas: list[str],
                     overrides: dict[str, float] | None = None) -> tuple[dict[str, Any], list[Stubber]]:
    """Clients answering from the recording, in the pre-flight's call order: zones, offerings,
    each reservation lookup (expected parameters, recorded answer), then each quota read."""
    creds = {"region_name": REGION, "aws_access_key_id": "recorded", "aws_secret_access_key": "recorded"}
    ec2, sq = boto3.client("ec2", **creds), boto3.client("service-quotas", **creds)
    ec2_stub, sq_stub = Stubber(ec2), Stubber(sq)
    ec2_stub.add_response("describe_availability_zones", ACCOUNT["ec2"]["describe_availability_zones"], {})
    ec2_stub.add_response("describe_instance_type_offerings", ACCOUNT["ec2"]["describe_instance_type_offerings"],
                          {"LocationType": "availability-zone", "Filters": ANY})
    for params, answer in reservations:
        ec2_stub.add_response("describe_capacity_reservations",
                              ACCOUNT["ec2"]["describe_capacity_reservations"][answer], params)
    values = {**ACCOUNT["service-quotas"], **(overrides or {})}
    for code in quotas:
        sq_stub.add_response("get_service_quota", {"Quota": {"ServiceCode": "ec2", "QuotaCode": code,
                                                             "Value": values[code]}},
                             {"ServiceCode": "ec2", "QuotaCode": code})
    ec2_stub.activate()
    sq_stub.activate()
    return {"ec2": ec2, "service-quotas": sq}, [ec2_stub, sq_stub]


BY_TAG = {"Filters": [{"Name": "state", "Values": ["active", "scheduled"]}, {"Name": "tag:team", "Values": ["ml"]}]}


# ------------------------------------------------------------------------------ recorded account

def test_reservation_in_the_clusters_azs_passes(tmp_path, capsys):
    config, sf = _dev(tmp_path, capacityTypes=["reserved", "on-demand"], capacityReservations=[{"tags": {"team": "ml"}}])
    # g5.4xlarge: 4 GPUs x 16 vCPUs = 64 of G on-demand (quota 64); the CPU pool's 64 of Standard.
    clients, stubs = recorded_account([(BY_TAG, "odcr-g5-us-west-2a")], ["L-1216C47A", "L-DB2E81BA"])
    assert run(config, sf, clients=clients) == 0
    for s in stubs:
        s.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "cr-0a1b2c3d4e5f60718  default" in out and "us-west-2a  active    2 / 2" in out, out
    assert "Result: OK" in out


def test_reserved_only_pool_with_a_reservation_outside_the_clusters_azs_fails(tmp_path, capsys):
    config, sf = _dev(tmp_path, instanceTypes=["g5.xlarge", "p5.48xlarge"], capacityTypes=["reserved"],
                      capacityReservations=[{"id": "cr-0f9e8d7c6b5a40312"}])
    clients, stubs = recorded_account([({"CapacityReservationIds": ["cr-0f9e8d7c6b5a40312"]},
                                        "capacity-block-p5-us-west-2d")], ["L-1216C47A"])
    assert run(config, sf, clients=clients) == 1
    for s in stubs:
        s.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "reservation cr-0f9e8d7c6b5a40312 (p5.48xlarge) is in us-west-2d, not in the cluster's AZs" in out, out
    assert "capacity type 'reserved' only" in out and "it could never launch a node" in out


def test_reservations_that_select_nothing_fall_back_with_a_warning(tmp_path, capsys):
    config, sf = _dev(tmp_path, capacityTypes=["reserved", "on-demand"], capacityReservations=[{"tags": {"team": "ml"}}])
    clients, _ = recorded_account([(BY_TAG, "none")], ["L-1216C47A", "L-DB2E81BA"])
    assert run(config, sf, clients=clients) == 0
    out = capsys.readouterr().out
    assert "selects no reservation" in out and "falls back to on-demand" in out, out


def test_spot_gpu_quota_below_the_pools_limit_fails(tmp_path, capsys):
    config, sf = _dev(tmp_path)   # dev: spot + on-demand g5, 4 GPUs; the recording's G spot quota is 8 vCPUs
    clients, _ = recorded_account([], ["L-1216C47A", "L-3819A6DF", "L-DB2E81BA"])
    assert run(config, sf, clients=clients) == 1
    out = capsys.readouterr().out
    assert "G and VT spot vCPU quota too low: needs 64 vCPUs" in out and "L-3819A6DF" in out, out
    clients, _ = recorded_account([], ["L-1216C47A", "L-3819A6DF", "L-DB2E81BA"], {"L-3819A6DF": 64.0})
    assert run(config, sf, clients=clients) == 0


def test_pulumi_up_stops_before_building_when_capacity_is_short(tmp_path, monkeypatch):
    """`cluster.preflight: true` outside the mocks: the failures are Pulumi errors and a RunError."""
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:cluster"]["preflight"] = True
    config, _ = _config_of(write_stack(tmp_path, doc))
    clients, _ = recorded_account([], ["L-1216C47A", "L-3819A6DF", "L-DB2E81BA"])
    errors: list[str] = []
    monkeypatch.setattr(preflight, "under_mocks", lambda: False)
    monkeypatch.setattr(preflight, "check", lambda c, region: preflight.run_preflight(
        boto3.Session(region_name=region), preflight.pool_demands(c), az_count=2, clients=clients))
    monkeypatch.setattr(pulumi.log, "error", errors.append)
    with pytest.raises(pulumi.RunError, match="capacity pre-flight failed"):
        stop_unless_capacity(config, REGION)
    assert any("L-3819A6DF" in e for e in errors), errors


# ------------------------------------------------------------------------------ moto

@pytest.mark.program
def test_program_preflight_never_runs_under_mocks(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the pre-flight reached for AWS under the mocks")

    monkeypatch.setattr(boto3, "Session", boom)
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:cluster"]["preflight"] = True
    plan = run_program(read_stack(str(write_stack(tmp_path, doc, "pf"))))
    assert plan.by_type(NODEPOOL)


@pytest.fixture
def aws_env(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def _stubbed_quotas(values: dict[str, float]) -> tuple[Any, Stubber]:
    sq = boto3.Session(region_name=REGION).client("service-quotas")
    stubber = Stubber(sq)
    for code in sorted(values):
        stubber.add_response("get_service_quota", {"Quota": {"ServiceCode": "ec2", "QuotaCode": code,
                                                             "Value": values[code]}},
                             {"ServiceCode": "ec2", "QuotaCode": code})
    stubber.activate()
    return sq, stubber
def test_preflight_enough_quota_exits_0(tmp_path, aws_env, capsys):


    config, sf = _dev(tmp_path)
    # dev: g5.4xlarge x 4 GPUs = 64 vCPUs of G (spot and on-demand); CPU pool cpuLimit 64 of Standard.
    sq, stubber = _stubbed_quotas({"L-1216C47A": 64.0, "L-3819A6DF": 64.0, "L-DB2E81BA": 64.0})
    assert run(config, sf, clients={"service-quotas": sq}) == 0
    stubber.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "Pool gpu-inference: OK" in out and "Pool platform: OK" in out and "Result: OK" in out


def test_preflight_short_quota_exits_1(tmp_path, aws_env, capsys):


    config, sf = _dev(tmp_path)
    sq, _ = _stubbed_quotas({"L-1216C47A": 64.0, "L-3819A6DF": 64.0, "L-DB2E81BA": 8.0})
    assert run(config, sf, clients={"service-quotas": sq}) == 1
    out = capsys.readouterr().out
    assert "Pool gpu-inference: FAILED" in out and "L-DB2E81BA" in out and "needs 64 vCPUs" in out


def test_preflight_reports_type_not_offered_in_an_az(tmp_path, aws_env, capsys):


    # moto's us-west-2 data: p5e.48xlarge is offered only in us-west-2c; dev uses 2 AZs (a, b).
    config, sf = _dev(tmp_path, instanceTypes=["g5.xlarge", "p5e.48xlarge"], capacityTypes=["on-demand"])
    sq, _ = _stubbed_quotas({"L-1216C47A": 64.0, "L-417A185B": 10000.0, "L-DB2E81BA": 64.0})
    assert run(config, sf, clients={"service-quotas": sq}) == 1
    out = capsys.readouterr().out
    assert "p5e.48xlarge is not offered in any selected AZ (us-west-2a, us-west-2b)" in out, out


def test_preflight_without_credentials_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):


    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the instance metadata service
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    config, sf = _dev(tmp_path)
    assert run(config, sf) == 1
    out = capsys.readouterr().out
    assert "no AWS credentials found" in out and "Result: FAILED" in out


