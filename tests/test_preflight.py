"""Tests for domain/instances.py and plan/preflight/ (no network).

EC2 offerings come from moto (its bundled per-AZ data for us-west-2: 4 AZs a-d;
g5.* are offered in a-c only, p5e.48xlarge only in c). Service Quotas come from a
botocore Stubber, since moto only knows ``vpc`` quotas.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

from domain.instances import (
    InstanceFacts,
    instance_facts,
    is_gpu,
    known_instance_types,
)
from plan.preflight import PoolDemand, format_report, run_preflight
from plan.preflight.aws import first_azs
from plan.preflight.quotas import EC2_VCPU_QUOTAS, family_group

REGION = "us-west-2"

# --------------------------------------------------------------------------- instances.py


def test_known_gpu_type_has_correct_facts() -> None:
    p5 = instance_facts("p5.48xlarge")
    assert p5 == InstanceFacts(
        instance_type="p5.48xlarge",
        family="p5",
        gpus=8,
        gpu_model="H100",
        gpu_memory_gib=80,
        vcpu=192,
        memory_gib=2048,
        instance_store_gib=30400,
        efa=True,
    )
    g5 = instance_facts("g5.xlarge")
    assert g5 is not None and (g5.gpus, g5.gpu_model, g5.vcpu, g5.efa) == (1, "A10G", 4, False)
    p4d = instance_facts("p4d.24xlarge")
    assert p4d is not None and (p4d.gpus, p4d.gpu_memory_gib, p4d.vcpu, p4d.memory_gib) == (8, 40, 96, 1152)
    assert is_gpu("g6e.48xlarge")
    assert not is_gpu("m7i.large")


def test_unknown_type_returns_none() -> None:
    assert instance_facts("g5.3xlarge") is None
    assert instance_facts("") is None
    assert not is_gpu("nope.large")


def test_required_types_are_listed() -> None:
    sizes = ["xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"]
    required = {f"{fam}.{s}" for fam in ("g5", "g6", "g6e") for s in sizes}
    required |= {"p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge"}
    assert required <= set(known_instance_types())
    assert known_instance_types() == sorted(known_instance_types())


@pytest.mark.parametrize("name", known_instance_types())
def test_every_entry_is_sane(name: str) -> None:
    f = instance_facts(name)
    assert f is not None
    assert f.family == name.split(".")[0]
    assert f.vcpu > 0 and f.memory_gib > 0 and f.instance_store_gib >= 0
    assert isinstance(f.efa, bool)
    if f.family[0] in "gp":
        assert f.gpus > 0 and f.gpu_model in {"A10G", "L4", "L40S", "A100", "H100", "H200"}
        assert f.gpu_memory_gib >= 24
        assert f.vcpu % f.gpus == 0
    else:
        assert (f.gpus, f.gpu_model, f.gpu_memory_gib) == (0, None, 0)
    assert family_group(f.family) is not None  # every listed type has a quota mapping


def test_family_groups() -> None:
    assert family_group("g6e") == "G and VT"
    assert family_group("p4d") == "P"
    assert family_group("p5en") == "P5"
    assert family_group("m7i") == "Standard"
    assert family_group("inf2") is None and family_group("trn1") is None
    assert EC2_VCPU_QUOTAS[("P5", "on-demand")] == EC2_VCPU_QUOTAS[("P", "on-demand")]
    assert first_azs(["us-west-2c", "us-west-2a", "us-west-2b"], 2) == ["us-west-2a", "us-west-2b"]


# --------------------------------------------------------------------------- preflight.py


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _quota(code: str, value: float) -> dict[str, Any]:
    return {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "Value": value}}


def _stub_quotas(session: boto3.Session, answers: list[tuple[str, str, Any]]) -> tuple[Any, Stubber]:
    """answers: (operation, quota code, value or error code), in call order."""
    sq = session.client("service-quotas")
    stubber = Stubber(sq)
    for op, code, answer in answers:
        params = {"ServiceCode": "ec2", "QuotaCode": code}
        if isinstance(answer, str):
            stubber.add_client_error(op, service_error_code=answer, service_message=f"{answer} for {code}", expected_params=params)
        else:
            stubber.add_response(op, _quota(code, answer), params)
    stubber.activate()
    return sq, stubber


GET = "get_service_quota"
DEFAULT = "get_aws_default_service_quota"


def test_enough_quota_is_ok(session: boto3.Session) -> None:
    pools = [
        PoolDemand("gpu-l4", ["g6.xlarge", "g6.12xlarge"], ["on-demand", "spot"], gpu_limit=8),
        PoolDemand("system", ["m7i.large", "m7i.xlarge"], ["on-demand"], gpu_limit=0, vcpu_limit=32),
    ]
    # g6.12xlarge: ceil(8/4)*48 = 96 > g6.xlarge: 8*4 = 32 -> 96 vCPUs of G quota.
    sq, stubber = _stub_quotas(
        session,
        [(GET, "L-1216C47A", 64.0), (GET, "L-3819A6DF", 96.0), (GET, "L-DB2E81BA", 128.0)],
    )
    report = run_preflight(session, pools, az_count=3, clients={"service-quotas": sq})
    stubber.assert_no_pending_responses()

    assert report.ok, format_report(report)
    assert report.availability_zones == ["us-west-2a", "us-west-2b", "us-west-2c"]
    gpu = report.pools[0]
    assert gpu.offerings["g6.xlarge"] == ["us-west-2a", "us-west-2b", "us-west-2c"]
    needs = {(q.capacity_type, q.quota_code): q.needed_vcpus for q in gpu.quotas}
    assert needs == {("on-demand", "L-DB2E81BA"): 96, ("spot", "L-3819A6DF"): 96}
    assert all(q.ok and q.source == "applied" for q in gpu.quotas)
    assert report.pools[1].quotas[0].needed_vcpus == 32
    assert "Result: OK" in format_report(report)


def test_short_quota_fails_naming_pool_group_and_numbers(session: boto3.Session) -> None:
    pools = [PoolDemand("gpu-h100", ["p5.48xlarge"], ["on-demand"], gpu_limit=16)]
    # No applied value -> the AWS default (0 for P) is used.
    sq, stubber = _stub_quotas(
        session, [(GET, "L-417A185B", "NoSuchResourceException"), (DEFAULT, "L-417A185B", 0.0)]
    )
    report = run_preflight(session, pools, az_count=3, clients={"service-quotas": sq})
    stubber.assert_no_pending_responses()

    assert not report.ok
    (check,) = report.pools[0].quotas
    assert (check.needed_vcpus, check.available_vcpus, check.source) == (384, 0.0, "default")
    (msg,) = report.pools[0].failures
    for part in ("gpu-h100", "P5", "on-demand", "384", "L-417A185B", " is 0 "):
        assert part in msg, msg
    assert "SHORT" in format_report(report) and "Result: FAILED" in format_report(report)


def test_p5_spot_falls_back_to_p_spot_quota_when_missing(session: boto3.Session) -> None:
    pools = [PoolDemand("gpu-h200", ["p5en.48xlarge"], ["spot"], gpu_limit=8)]
    sq, stubber = _stub_quotas(
        session,
        [
            (GET, "L-C4BD4855", "NoSuchResourceException"),
            (DEFAULT, "L-C4BD4855", "NoSuchResourceException"),
            (GET, "L-7212CCBC", 192.0),
        ],
    )
    report = run_preflight(session, pools, availability_zones=["us-west-2a"], clients={"service-quotas": sq})
    stubber.assert_no_pending_responses()
    assert report.ok, format_report(report)
    assert report.pools[0].quotas[0].quota_code == "L-7212CCBC"
    assert any("L-C4BD4855" in w for w in report.warnings)


def test_type_missing_in_some_az_warns_and_in_all_fails(session: boto3.Session) -> None:
    pools = [PoolDemand("gpu-mixed", ["g5.xlarge", "p5e.48xlarge"], ["on-demand"], gpu_limit=0)]
    report = run_preflight(session, pools, az_count=4)
    pr = report.pools[0]
    assert pr.ok  # warnings only
    assert pr.offerings["p5e.48xlarge"] == ["us-west-2c"]
    assert any("g5.xlarge is not offered in us-west-2d" in w for w in pr.warnings), pr.warnings
    assert any("p5e.48xlarge" in w and "us-west-2a, us-west-2b, us-west-2d" in w for w in pr.warnings)

    pools = [PoolDemand("gpu-a10g", ["g5.xlarge"], ["on-demand"], gpu_limit=0)]
    report = run_preflight(session, pools, availability_zones=["us-west-2d"])
    assert not report.ok
    assert report.pools[0].offerings["g5.xlarge"] == []
    assert any("gpu-a10g" in f and "g5.xlarge" in f and "us-west-2d" in f for f in report.pools[0].failures)


def test_unknown_instance_type_fails(session: boto3.Session) -> None:
    pools = [PoolDemand("gpu-typo", ["g5.xlarge", "g5.3xlarge"], ["on-demand"], gpu_limit=4)]
    sq, stubber = _stub_quotas(session, [(GET, "L-DB2E81BA", 64.0)])
    report = run_preflight(session, pools, az_count=3, clients={"service-quotas": sq})
    stubber.assert_no_pending_responses()
    assert not report.ok
    failures = report.pools[0].failures
    assert any("unknown instance type 'g5.3xlarge'" in f and "gpu-typo" in f for f in failures), failures


def test_pools_sharing_a_quota_are_summed(session: boto3.Session) -> None:
    pools = [
        PoolDemand("a", ["g6.xlarge"], ["on-demand"], gpu_limit=8),
        PoolDemand("b", ["g6e.xlarge"], ["on-demand"], gpu_limit=8),
    ]
    sq, _ = _stub_quotas(session, [(GET, "L-DB2E81BA", 48.0)])
    report = run_preflight(session, pools, az_count=3, clients={"service-quotas": sq})
    assert report.ok  # 32 each fits; 64 together is only a warning
    assert any("together need 64" in w and "L-DB2E81BA" in w for w in report.warnings)


def test_access_denied_is_a_clear_failure(session: boto3.Session) -> None:
    pools = [PoolDemand("gpu", ["g6.xlarge"], ["on-demand"], gpu_limit=1)]
    sq, _ = _stub_quotas(session, [(GET, "L-DB2E81BA", "AccessDeniedException")])
    report = run_preflight(session, pools, az_count=3, clients={"service-quotas": sq})
    assert not report.ok
    (msg,) = report.pools[0].failures
    assert "AccessDeniedException" in msg and "servicequotas:GetServiceQuota" in msg


def test_missing_credentials_is_a_failure_not_a_traceback(session: boto3.Session) -> None:
    class NoCredsEc2:
        def describe_availability_zones(self) -> None:
            raise NoCredentialsError()

    pools = [PoolDemand("gpu", ["g6.xlarge"], ["on-demand"], gpu_limit=1)]
    report = run_preflight(session, pools, clients={"ec2": NoCredsEc2()})
    assert not report.ok and report.pools == []
    assert "no AWS credentials found" in report.failures[0]
    assert "FAIL" in format_report(report)


def test_bad_arguments(session: boto3.Session) -> None:
    with pytest.raises(ValueError, match="either az_count or availability_zones"):
        run_preflight(session, [], az_count=2, availability_zones=["us-west-2a"])
    report = run_preflight(session, [], az_count=9)
    assert not report.ok and "az_count 9" in report.failures[0]
    report = run_preflight(session, [PoolDemand("x", ["m7i.large"], ["dedicated"], gpu_limit=0)], az_count=1)
    assert any("capacity_types" in f for f in report.pools[0].failures)
