"""Pod DNS as the API server validates it (kubernetes pkg/apis/core/validation/validation.go,
validateDNSPolicy / validatePodDNSConfig; the cases follow its validation_test.go table), and the DNS
flow of a dnsPolicy Default pod when the VPC's resolver is unknown."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from plan import connections
from plan.admission import pod_dns
from plan.admission.admit import admit
from plan.connections.platform import dns
from tests.test_admission import KUBE, checks, deployment, ns
from tests.test_flows import plan_of


@pytest.mark.parametrize("spec, problem", [
    ({}, None),
    ({"dnsPolicy": "Default"}, None),
    ({"dnsPolicy": "ClusterFirst", "dnsConfig": {"searches": ["svc.local"], "options": [{"name": "ndots", "value": "2"}]}}, None),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.0.0.2", "fd00::53"]}}, None),
    ({"dnsPolicy": "FakePolicy"}, "Unsupported value 'FakePolicy'"),
    ({"dnsPolicy": "None"}, "must provide `dnsConfig` when `dnsPolicy` is None"),
    ({"dnsPolicy": "None", "dnsConfig": {}}, "must provide at least one DNS nameserver"),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4", "5.6.7.8", "9.8.0.1", "2.3.4.5"]}},
     "more than 3 nameservers"),
    ({"dnsConfig": {"nameservers": ["1.2.3.c"]}}, "'1.2.3.c' must be a valid IP address"),
    ({"dnsConfig": {"searches": [f"d{i}.example" for i in range(33)]}}, "more than 32 search paths"),
    ({"dnsConfig": {"searches": ["a" * 63 + "." + "b" * 63] * 17}}, "more than 2048 characters"),
    ({"dnsConfig": {"options": [{"value": "2"}]}}, "options[0].name: Required value"),
])
def test_pod_dns_validation(spec, problem):
    found = pod_dns.spec_problems(spec)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found


def test_admission_rejects_a_dns_policy_none_pod_without_nameservers():
    bad = deployment("resolver", pod={"dnsPolicy": "None", "dnsConfig": {"nameservers": []}})
    found = admit([ns("app"), bad], [], kube_version=KUBE)
    assert checks(found) == ["podDNS"]
    assert found[0]["message"].startswith("spec.template.spec.dnsConfig.nameservers: Required value")
    fine = deployment("resolver", pod={"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.0.0.2"]}})
    assert admit([ns("app"), fine], [], kube_version=KUBE) == []


def test_a_default_dns_pod_with_no_known_vpc_resolver_is_unresolved_not_allowed(prod_plan):
    """(Derivation.vpc_resolver is None when the VPC's CIDR is unknown.) Karpenter runs with
    dnsPolicy Default: its DNS must be reported, not silently dropped."""
    plan = plan_of("prod")
    d = connections.build(SimpleNamespace(objects=plan.objects, resources=plan.resources, region=plan.region))
    d.vpc_resolver = None
    before = len(d.unresolved)
    dns(d)
    new = d.unresolved[before:]
    assert new and all(u["to"] == "the VPC's Route 53 Resolver" for u in new)
    assert any("karpenter" in ref for u in new for ref in u["from"])
