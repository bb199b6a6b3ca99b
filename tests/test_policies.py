"""Every policy rule: a violating input it catches and a compliant input it passes.

Inputs are ``RegisterResourceRequest``s fed to ``plan.policy_harness.evaluate`` -- the same interface the
offline plan uses -- built directly (``Res``, tests/policy_builders.py; the cases: tests/policy_cases.py)
or recorded from a small program under Pulumi mocks (``plan.engine.execute``). Assertions are on the
harness output: policy name and level.
"""

from __future__ import annotations

import re

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import ResourceValidationPolicy

from plan.policy_harness import evaluate
from policies import ALL_POLICIES, ENVIRONMENTS, POLICY_NAMES, load_policy_config
from policies.common import TypedResourcePolicy
from tests.policy_builders import (
    CREATOR_TAG,
    DEPLOYER,
    GOOD_CONTAINER,
    ROOT,
    TLS_POLICY,
    Res,
    bucket,
    eks_component,
    eks_leaf,
    gpu_workload,
    hits,
    iam_doc,
    meta,
    namespace,
    nodepool,
    recorded_requests,
    release,
    run,
)
from tests.policy_cases import CASES


def test_every_rule_has_cases():
    assert sorted(CASES) == sorted(POLICY_NAMES)
    assert len(set(POLICY_NAMES)) == len(POLICY_NAMES)


def test_rules_are_documented():
    for p in ALL_POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", p.name), p.name
        assert p.description and p.severity is not None and p.remediation_steps, p.name


VIOLATIONS = [pytest.param(name, case, id=f"{name}-violating-{i}")
              for name, (bad, _) in CASES.items() for i, case in enumerate(bad)]
COMPLIANT = [pytest.param(name, case, id=f"{name}-compliant-{i}")
             for name, (_, good) in CASES.items() for i, case in enumerate(good)]


@pytest.mark.parametrize(("policy", "resources"), VIOLATIONS)
def test_rule_catches_violation(policy, resources):
    found = hits(run(resources, "prod"), policy)
    assert found, f"{policy} missed a violation"
    assert {f["level"] for f in found} == {"mandatory"}
    assert all(f["message"] and not f["message"].startswith("can't run") for f in found)
    assert all(f["urn"] in {r.urn for r in resources} for f in found)


@pytest.mark.parametrize(("policy", "resources"), COMPLIANT)
def test_rule_passes_compliant(policy, resources):
    assert hits(run(resources, "prod"), policy) == []


# ----------------------------------------------------------------------------- configs per environment


def test_config_files_cover_every_rule():
    for env in ENVIRONMENTS:
        cfg = load_policy_config(env)
        assert sorted(cfg) == sorted(POLICY_NAMES), env
        for name, entry in cfg.items():
            assert entry["enforcementLevel"] in {"advisory", "mandatory", "disabled"}, (env, name)


def test_prod_is_at_least_as_strict_as_staging_and_dev():
    rank = {"disabled": 0, "advisory": 1, "mandatory": 2}
    lvl = {env: {k: rank[v["enforcementLevel"]] for k, v in load_policy_config(env).items()} for env in ENVIRONMENTS}
    for name in POLICY_NAMES:
        assert lvl["dev"][name] <= lvl["staging"][name] <= lvl["prod"][name], name
    assert all(v == 2 for v in lvl["prod"].values())


def test_unknown_environment_is_an_error():
    with pytest.raises(ValueError, match="unknown environment"):
        load_policy_config("qa")


def test_levels_differ_between_dev_and_prod():
    unversioned = bucket(versioning=False)
    assert [f["level"] for f in hits(run(unversioned, "dev"), "s3-versioning")] == ["advisory"]
    assert [f["level"] for f in hits(run(unversioned, "prod"), "s3-versioning")] == ["mandatory"]
    unprotected = bucket(protect=False)
    assert hits(run(unprotected, "dev"), "stateful-resources-protected") == []  # disabled in dev
    assert [f["level"] for f in hits(run(unprotected, "staging"), "stateful-resources-protected")] == ["advisory"]
    assert [f["level"] for f in hits(run(unprotected, "prod"), "stateful-resources-protected")] == ["mandatory"]


def test_config_properties_reach_rules(monkeypatch):
    svc = Res("kubernetes:core/v1:Service", "svc", {"metadata": meta("svc", "edge"), "spec": {"type": "LoadBalancer"}})
    assert hits(run([svc]), "k8s-no-loadbalancer-services")
    cfg = load_policy_config("prod")
    cfg["k8s-no-loadbalancer-services"]["allowedNamespaces"] = ["edge"]
    monkeypatch.setattr("plan.policy_harness.load_policy_config", lambda env: cfg)
    assert hits(run([svc]), "k8s-no-loadbalancer-services") == []


def test_clean_platform_slice_has_no_findings():
    resources = [eks_component(), eks_leaf(), *bucket(), *namespace("ai-inference", gpu=4),
                 gpu_workload("ai-inference"), nodepool(), release("1.14.1"),
                 Res("aws:kms/key:Key", "k", {"enableKeyRotation": True}, protect=True)]
    for env in ENVIRONMENTS:
        assert run(resources, env) == [], env


def test_harness_returns_the_agreed_shape():
    findings = run([eks_component(authenticationMode=None), *namespace("x", quota=False)], "dev")
    assert findings
    for f in findings:
        assert set(f) == {"policy", "level", "urn", "object", "message"}
        assert f["level"] in {"mandatory", "advisory"}
    assert {f["policy"]: f["level"] for f in findings} == {
        "eks-authentication-mode-api": "mandatory", "namespace-resource-quota": "advisory"}


def test_subset_of_policies():
    from plan.policy_harness import evaluate as ev
    from policies import eks_rules

    r = eks_component(authenticationMode=None)
    obj = struct_pb2.Struct()
    obj.update(r.props)
    req = proto.RegisterResourceRequest(type=r.type, name=r.name, object=obj)
    out = ev([(req, r.urn)], {}, "prod", policies=[eks_rules.eks_secrets_encryption])
    assert out == []


def test_pack_requirements_match_root_pins():
    def pins(path):
        return {line.split("~=")[0].strip(): line.strip() for line in path.read_text().splitlines()
                if "~=" in line and not line.lstrip().startswith("#")}
    pack, root = pins(ROOT / "policies" / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert pack and all(root.get(k) == v for k, v in pack.items()), (pack, root)


def test_pack_entry_point_only_builds_the_pack():
    text = (ROOT / "policies" / "__main__.py").read_text()
    assert "PolicyPack(" in text and "ResourceValidationPolicy" not in text
    assert "runtime:\n  name: python" in (ROOT / "policies" / "PulumiPolicy.yaml").read_text()


# ----------------------------------------------------------------------------- through Pulumi mocks


@pytest.mark.layer
def test_recorded_program_under_mocks():
    """A real (tiny) Pulumi program under mocks -> SafeMonitor records -> harness."""
    import pulumi
    import pulumi_aws as aws
    import pulumi_eks as eks
    import pulumi_kubernetes as k8s

    from plan.engine import execute

    def build(secure):
        def program():
            key = aws.kms.Key("key", enable_key_rotation=secure, opts=pulumi.ResourceOptions(protect=secure))
            eks.Cluster("eks", skip_default_node_group=True, endpoint_public_access=not secure,
                        endpoint_private_access=True, authentication_mode="API" if secure else None,
                        encryption_config_key_arn=key.arn if secure else None,
                        enabled_cluster_log_types=["api", "audit", "authenticator"],
                        cluster_tags={CREATOR_TAG: DEPLOYER} if secure else None)
            b = aws.s3.Bucket("docs", opts=pulumi.ResourceOptions(protect=secure))
            if secure:
                aws.s3.BucketLogging("docs-logs", bucket=b.id, target_bucket="access-logs-bkt", target_prefix="docs/")
            aws.s3.BucketPublicAccessBlock("docs-pab", bucket=b.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True,
                                           restrict_public_buckets=secure)
            aws.s3.BucketServerSideEncryptionConfiguration(
                "docs-sse", bucket=b.id, rules=[{"apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms" if secure else "AES256", "kms_master_key_id": key.arn}}])
            aws.s3.BucketVersioning("docs-ver", bucket=b.id, versioning_configuration={"status": "Enabled"})
            aws.s3.BucketPolicy("docs-pol", bucket=b.id, policy=TLS_POLICY if secure else iam_doc())
            ns = k8s.core.v1.Namespace("ns", metadata={"name": "ai-agents"})
            k8s.networking.v1.NetworkPolicy("deny", metadata={"name": "default-deny", "namespace": ns.metadata.name},
                                            spec={"pod_selector": {}, "policy_types": ["Ingress", "Egress"]})
            k8s.core.v1.ResourceQuota("quota", metadata={"name": "quota", "namespace": "ai-agents"},
                                      spec={"hard": {"requests.cpu": "4"}})
            k8s.apps.v1.Deployment("app", metadata={"name": "app", "namespace": "ai-agents"}, spec={
                "selector": {"match_labels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}}, "spec": {
                    "security_context": {"run_as_non_root": True},
                    "containers": [{"name": "a", "image": "busybox:1.36" if secure else "busybox",
                                    "resources": GOOD_CONTAINER["resources"]}]}}})
        # the plan's own mock engine records the requests the harness analyses
        monitor = execute(program, stack="policy-test", config={}).monitor
        return evaluate(monitor.requests, {urn: r.state for urn, r in monitor.resources.items()}, "prod")

    assert build(True) == []
    names = {f["policy"] for f in build(False)}
    assert names == {"kms-key-rotation", "stateful-resources-protected", "eks-endpoint-not-public",
                     "eks-authentication-mode-api", "eks-secrets-encryption", "s3-public-access-blocked",
                     "s3-sse-kms", "s3-tls-only", "k8s-images-pinned", "s3-access-logging",
                     "eks-cluster-creator-declared", "s3-force-destroy-matches-protection"}


def test_every_resource_rule_names_the_types_it_reads():
    """The harness sends a resource only through the rules that read its type (TypedResourcePolicy);
    a rule's validate is never called for another type, under preview as in the plan."""
    resource_rules = [p for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)]
    assert resource_rules and all(isinstance(p, TypedResourcePolicy) and p.resource_types for p in resource_rules)
    imds = next(p for p in resource_rules if p.name == "nodes-require-imdsv2")
    assert imds.reads("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")   # a glob over API versions
    assert imds.reads("kubernetes:karpenter.k8s.aws/v1beta1:EC2NodeClass")
    assert not imds.reads("kubernetes:karpenter.sh/v1:NodePool")
    seen = []
    rule = TypedResourcePolicy(name="only-queues", description="d", resource_types=("aws:sqs/queue:Queue",),
                               validate=lambda args, report: (seen.append(args.resource_type), report("no")))
    findings = evaluate([(req, urn) for req, urn, _ in recorded_requests([Res("aws:kms/key:Key", "k", {}),
                                                                  Res("aws:sqs/queue:Queue", "q", {})])],
                        {}, "prod", [rule])
    assert seen == ["aws:sqs/queue:Queue"] and [f["urn"] for f in findings] == [Res("aws:sqs/queue:Queue", "q", {}).urn]
