"""The policy gate on the real platform: every rule sees the resources it is meant to govern.

``tests/test_policies.py`` proves each rule on hand-built inputs. Here the input is the recorded
prod plan (``prod_plan``): the real program's ``(RegisterResourceRequest, urn)`` pairs and mocked
outputs, exactly what ``python -m plan`` hands to ``plan.policy_harness.evaluate``. The clean plan has
no mandatory finding; then a copy of the recording is broken in one place (a bucket unprotected, a
namespace's default-deny NetworkPolicy dropped, a model moved to a namespace without GPU quota...)
and the harness must name the expected rule for exactly the expected URNs. A rule that silently
skips a resource of the real plan (wrong type, wrong property path, failed correlation) fails here.

This module: the clean plans, stateful resources and KMS, S3 companions, namespaces, GPU quota; the
workload, AWS and first-up/destroy rules and the pack's coverage: tests/test_policy_gate_workloads.py.
End to end through the CLI (the gate exits 1 naming the rule and the resources): tests/test_cli.py.
"""

from __future__ import annotations

import pytest

from policies import aws_rules, stack_rules
from tests.policy_recording import (
    BUCKET,
    BUCKET_POLICY,
    DEPLOYMENT,
    ELASTICACHE,
    GPU,
    KMS_KEY,
    NAMESPACE,
    NETWORK_POLICY,
    PAB,
    QUOTA,
    RDS,
    SSE,
    VERSIONING,
    Recording,
    companions,
    flagged,
    is_default_deny,
    model_deployments,
    owned,
)

# ----------------------------------------------------------------------------- the clean plans


def test_prod_and_dev_plans_have_no_mandatory_findings(prod_plan, dev_plan):
    for plan in (prod_plan, dev_plan):
        mandatory = [f for f in plan.policies if f["level"] == "mandatory"]
        assert mandatory == [], mandatory
    assert prod_plan.policies == [], "prod runs every rule as mandatory: any finding would block it"


def test_the_plan_holds_what_the_rules_must_see(rec):
    """The inventory the mutations below rely on: if a layer renames or drops these, revisit the gate."""
    buckets = {rec.request(u).name for u in rec.urns(BUCKET)}
    for part in ("documents", "milvus", "models", "langfuse"):
        assert any(part in b for b in buckets), (part, buckets)
    assert len(rec.urns(RDS)) == 2 and len(rec.urns(ELASTICACHE)) == 1
    assert len(rec.urns(KMS_KEY)) >= 5
    namespaces = {rec.meta(u, "name") for u in rec.urns(NAMESPACE)}
    assert {"ai-gateway", "ai-inference", "ai-data", "ai-agents", "observability"} <= namespaces
    models = model_deployments(rec)
    assert len(models) == 3 and {rec.meta(u, "namespace") for u in models} == {"ai-inference"}
    # the rest: the MCP tool servers (ai-agents) and the endpoint pickers of prod's InferencePools
    others = [u for u in rec.urns(DEPLOYMENT) if u not in models]
    pickers = [u for u in others if rec.meta(u, "name").endswith("-epp")]
    mcp = [u for u in others if u not in pickers]
    assert mcp and {rec.meta(u, "namespace") for u in mcp} == {"ai-agents"}
    assert len(pickers) == 3 and {rec.meta(u, "namespace") for u in pickers} == {"ai-inference"}


# ----------------------------------------------------------------------------- stateful + KMS


STATEFUL = (BUCKET, KMS_KEY, RDS, ELASTICACHE)


def test_stateful_resources_protected_sees_every_bucket_key_database_and_cache(rec):
    stateful = [u for t in STATEFUL for u in rec.urns(t)]
    assert all(rec.request(u).protect for u in stateful), "prod protects its data"
    rule = aws_rules.stateful_resources_protected
    assert flagged(rec.run(rule), rule.name) == set()
    for urn in stateful:
        rec.edit(urn, protect=False)
    assert flagged(rec.run(rule), rule.name) == set(stateful)
    assert flagged(rec.run(rule, env="staging"), rule.name, "advisory") == set(stateful)
    assert flagged(rec.run(rule, env="dev"), rule.name) == set()  # disabled in dev


def test_one_unprotected_bucket_is_named(rec):
    docs = next(u for u in rec.urns(BUCKET) if "documents" in u)
    rec.edit(docs, protect=False)
    findings = rec.run(aws_rules.stateful_resources_protected)
    assert flagged(findings, "stateful-resources-protected") == {docs}
    assert rec.request(docs).name in findings[0]["message"]


def test_kms_rotation_sees_every_key(rec):
    keys = rec.urns(KMS_KEY)
    rule = aws_rules.kms_key_rotation
    for urn in keys:
        rec.edit(urn, lambda p: p.update(enableKeyRotation=False))
    assert flagged(rec.run(rule), rule.name) == set(keys)
    assert flagged(rec.run(rule, env="dev"), rule.name, "advisory") == set(keys)


# ----------------------------------------------------------------------------- S3 companions


def _sse_aes256(props: dict) -> None:
    for r in props["rules"]:
        r["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}


def _public_flag_off(props: dict) -> None:
    props["restrictPublicBuckets"] = False


def _suspend(props: dict) -> None:
    props["versioningConfiguration"] = {"status": "Suspended"}


S3_CASES = [
    pytest.param(stack_rules.s3_public_access_blocked, PAB, _public_flag_off, id="public-access-flag-off"),
    pytest.param(stack_rules.s3_sse_kms, SSE, _sse_aes256, id="sse-aes256"),
    pytest.param(stack_rules.s3_versioning, VERSIONING, _suspend, id="versioning-suspended"),
    pytest.param(stack_rules.s3_tls_only, BUCKET_POLICY, None, id="bucket-policy-dropped"),
]


@pytest.mark.parametrize(("rule", "companion", "change"), S3_CASES)
def test_s3_rules_correlate_each_bucket_with_its_own_companion(prod_plan, rule, companion, change):
    """Break one bucket's companion at a time: exactly that bucket is flagged (the other buckets'
    companions are still matched to their buckets, so correlation is right for all of them)."""
    buckets = Recording(prod_plan).urns(BUCKET)
    assert len(buckets) == 5  # documents, Milvus, model weights, LangFuse and the access-log destination
    if rule is stack_rules.s3_sse_kms:  # the access-log destination is SSE-S3 by design (tested below)
        buckets = [b for b in buckets if not b.endswith("::access-logs")]
    for bucket in buckets:
        rec = Recording(prod_plan)
        (target,) = companions(rec, companion, bucket)
        if change is None:
            rec.drop(target)
        else:
            rec.edit(target, change)
        assert flagged(rec.run(rule), rule.name) == {bucket}, (bucket, target)


@pytest.mark.parametrize(("rule", "companion"), [
    (stack_rules.s3_public_access_blocked, PAB), (stack_rules.s3_sse_kms, SSE), (stack_rules.s3_versioning, VERSIONING)])
def test_s3_rules_flag_every_bucket_whose_companion_is_missing(rec, rule, companion):
    for urn in rec.urns(companion):
        rec.drop(urn)
    findings = rec.run(rule)
    assert flagged(findings, rule.name) == set(rec.urns(BUCKET))
    assert all(" has no " in f["message"] or "not have" in f["message"] for f in findings)


def test_tls_only_reads_the_real_bucket_policy(rec):
    """Weaken the deny statement (not drop it): the rule parses the policy JSON the program wrote."""
    import json

    rule = stack_rules.s3_tls_only
    targets = rec.urns(BUCKET_POLICY)
    for urn in targets:
        def allow(props):
            doc = json.loads(props["policy"])
            for st in doc["Statement"]:
                if st.get("Effect") == "Deny":
                    st["Effect"] = "Allow"
            props["policy"] = json.dumps(doc)
        rec.edit(urn, allow)
    assert flagged(rec.run(rule), rule.name) == set(rec.urns(BUCKET))




def test_default_deny_rule_sees_every_namespace(prod_plan):
    namespaces = Recording(prod_plan).urns(NAMESPACE)
    rule = stack_rules.namespace_default_deny_network_policy
    for ns_urn in namespaces:
        rec = Recording(prod_plan)
        ns = rec.meta(ns_urn, "name")
        denies = owned(rec, NETWORK_POLICY, ns, is_default_deny)
        assert denies, f"namespace {ns} has no default-deny policy in the plan"
        for urn in denies:
            rec.drop(urn)
        findings = rec.run(rule)
        assert flagged(findings, rule.name) == {ns_urn}, ns
        assert f"'{ns}'" in findings[0]["message"]


def test_default_deny_needs_both_directions(rec):
    rule = stack_rules.namespace_default_deny_network_policy
    ns_urn = next(u for u in rec.urns(NAMESPACE) if rec.meta(u, "name") == "ai-inference")
    for urn in owned(rec, NETWORK_POLICY, "ai-inference", is_default_deny):
        rec.edit(urn, lambda p: p["spec"].update(policyTypes=["Ingress"]))
    findings = rec.run(rule)
    assert flagged(findings, rule.name) == {ns_urn} and "Egress" in findings[0]["message"]


def test_resource_quota_rule_sees_every_namespace(prod_plan):
    namespaces = Recording(prod_plan).urns(NAMESPACE)
    rule = stack_rules.namespace_resource_quota
    for ns_urn in namespaces:
        rec = Recording(prod_plan)
        ns = rec.meta(ns_urn, "name")
        quotas = owned(rec, QUOTA, ns)
        assert quotas, f"namespace {ns} has no ResourceQuota in the plan"
        for urn in quotas:
            rec.drop(urn)
        assert flagged(rec.run(rule), rule.name) == {ns_urn}, ns
    assert flagged(rec.run(rule, env="dev"), rule.name, "advisory") == {ns_urn}, "advisory in dev"


# ----------------------------------------------------------------------------- GPU quota


def test_model_moved_to_a_namespace_without_gpu_quota_is_flagged(prod_plan):
    rule = stack_rules.gpu_requests_need_gpu_quota
    for model in model_deployments(Recording(prod_plan)):
        rec = Recording(prod_plan)
        rec.edit(model, lambda p: p["metadata"].update(namespace="ai-agents"))  # quota grants 0 GPUs
        findings = rec.run(rule)
        assert flagged(findings, rule.name) == {model}
        assert "'ai-agents'" in findings[0]["message"]


def test_gpu_quota_withdrawn_flags_every_model(rec):
    rule = stack_rules.gpu_requests_need_gpu_quota
    for urn in owned(rec, QUOTA, "ai-inference"):
        rec.edit(urn, lambda p: p["spec"]["hard"].update({f"requests.{GPU}": "0"}))
    assert flagged(rec.run(rule), rule.name) == set(model_deployments(rec))


