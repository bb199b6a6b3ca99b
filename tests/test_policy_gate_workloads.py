"""The policy gate on the real platform (see tests/test_policy_gate.py), continued: the typed workload
rules, the AWS leaves, the first-up/destroy rules, every rule exercised by the two modules, the
levels per environment and the docs' table, and the memoized stack verdict."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from plan import cache as plan_cache
from plan.engine import ROOT
from policies import ENVIRONMENTS, POLICY_NAMES, aws_rules, eks_rules, k8s_rules, load_policy_config, stack_rules
from tests.policy_recording import (
    BUCKET,
    DEPLOYMENT,
    GPU,
    NAMESPACE,
    NETWORK_POLICY,
    SSE,
    Recording,
    companions,
    flagged,
    is_default_deny,
    owned,
    pod_spec,
)

# ----------------------------------------------------------------------------- typed workloads


def _every_container(change: Callable[[dict], None]) -> Callable[[dict], None]:
    def apply(props):
        for c in pod_spec(props)["containers"] + pod_spec(props).get("initContainers", []):
            change(c)
    return apply


def _no_limits(c):
    c["resources"].pop("limits", None)


def _latest(c):
    c["image"] = c["image"].rsplit(":", 1)[0].split("@")[0] + ":latest"


def _privileged(c):
    c.setdefault("securityContext", {})["privileged"] = True


def _root(props):
    pod_spec(props).setdefault("securityContext", {})["runAsNonRoot"] = False
    for c in pod_spec(props)["containers"]:
        c.setdefault("securityContext", {})["runAsNonRoot"] = False


WORKLOAD_CASES = [
    pytest.param(k8s_rules.k8s_resources_requests_limits, _every_container(_no_limits), id="no-limits"),
    pytest.param(k8s_rules.k8s_images_pinned, _every_container(_latest), id="latest-tag"),
    pytest.param(k8s_rules.k8s_no_privileged, _every_container(_privileged), id="privileged"),
    pytest.param(k8s_rules.k8s_no_privileged, lambda p: pod_spec(p).update(hostNetwork=True), id="host-network"),
    pytest.param(k8s_rules.k8s_run_as_non_root, _root, id="root"),
]


@pytest.mark.parametrize(("rule", "change"), WORKLOAD_CASES)
def test_workload_rules_see_the_models_and_the_mcp_server(rec, rule, change):
    workloads = rec.urns(DEPLOYMENT)
    assert flagged(rec.run(rule), rule.name) == set()
    for urn in workloads:
        rec.edit(urn, change)
    assert flagged(rec.run(rule), rule.name) == set(workloads)


def test_no_loadbalancer_outside_the_gateway(rec):
    rule = k8s_rules.k8s_no_loadbalancer_services
    services = rec.urns("kubernetes:core/v1:Service")
    assert services
    for urn in services:
        rec.edit(urn, lambda p: p["spec"].update(type="LoadBalancer"))
    assert flagged(rec.run(rule), rule.name) == {u for u in services if rec.meta(u, "namespace") != "ai-gateway"}


def test_every_helm_release_is_checked_for_a_pinned_version(rec):
    rule = k8s_rules.helm_release_version_pinned
    releases = rec.urns("kubernetes:helm.sh/v3:Release")
    assert len(releases) >= 10
    for urn in releases:
        rec.edit(urn, lambda p: p.pop("version", None))
    assert flagged(rec.run(rule), rule.name) == set(releases)


def test_gpu_nodepools_need_limits(rec):
    rule = k8s_rules.gpu_nodepool_limits_and_taint
    pools = rec.urns("kubernetes:karpenter.sh/v1:NodePool")
    gpu_pools = [u for u in pools if GPU in rec.inputs(u)["spec"].get("limits", {})]
    assert gpu_pools and len(gpu_pools) < len(pools), "GPU pools and a CPU pool"
    for urn in pools:
        rec.edit(urn, lambda p: p["spec"].get("limits", {}).pop(GPU, None))
    assert flagged(rec.run(rule), rule.name) == set(gpu_pools)


# ----------------------------------------------------------------------------- AWS leaves


def test_imdsv2_on_every_node_template(rec):
    rule = aws_rules.nodes_require_imdsv2
    templates = rec.urns("aws:ec2/launchTemplate:LaunchTemplate")
    classes = rec.urns("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert templates and classes
    for urn in templates:
        rec.edit(urn, lambda p: p["metadataOptions"].update(httpTokens="optional"))
    for urn in classes:
        rec.edit(urn, lambda p: p["spec"]["metadataOptions"].update(httpTokens="optional"))
    assert flagged(rec.run(rule), rule.name) == set(templates) | set(classes)


def test_eks_rules_see_the_cluster(rec):
    (eks,) = rec.urns("eks:index:Cluster")
    rules = [eks_rules.eks_endpoint_not_public, eks_rules.eks_secrets_encryption,
             eks_rules.eks_control_plane_logging, eks_rules.eks_authentication_mode_api]
    assert rec.run(*rules) == []
    # publicAndPrivate with listed CIDRs (what the config allows) passes; without CIDRs it is public.
    rec.edit(eks, lambda p: p.update(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"]))
    assert rec.run(eks_rules.eks_endpoint_not_public) == []

    def open_up(p):
        p.update(endpointPublicAccess=True, authenticationMode="CONFIG_MAP", enabledClusterLogTypes=["api"])
        p.pop("publicAccessCidrs", None)
        p.pop("encryptionConfigKeyArn", None)
    rec.edit(eks, open_up)
    findings = rec.run(*rules)
    assert {f["policy"] for f in findings} == {r.name for r in rules}
    assert {f["urn"] for f in findings} == {eks}


def test_sqs_and_iam_rules_see_their_resources(rec):
    queues = rec.urns("aws:sqs/queue:Queue")
    for urn in queues:
        rec.edit(urn, lambda p: [p.pop(k, None) for k in ("sqsManagedSseEnabled", "kmsMasterKeyId")])
    assert queues and flagged(rec.run(aws_rules.sqs_encryption), "sqs-encryption") == set(queues)

    admin = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    policies = rec.urns("aws:iam/rolePolicy:RolePolicy")
    for urn in policies:
        rec.edit(urn, lambda p: p.update(policy=admin))
    assert policies and flagged(rec.run(aws_rules.iam_no_admin_wildcard), "iam-no-admin-wildcard") == set(policies)


# ----------------------------------------------------------------------------- first up / destroy rules


def test_force_destroy_follows_protection_on_every_bucket(rec, dev_plan):
    """Prod: protected, never forceDestroy; dev: unprotected, always forceDestroy (destroy empties them)."""
    rule = aws_rules.s3_force_destroy_matches_protection
    assert rec.run(rule) == [] and Recording(dev_plan).run(rule, env="dev") == []
    buckets = rec.urns(BUCKET)
    rec.edit(buckets[0], lambda p: p.update(forceDestroy=True))
    assert flagged(rec.run(rule), rule.name) == {buckets[0]}
    dev = Recording(dev_plan)
    dev_buckets = dev.urns(BUCKET)
    dev.edit(dev_buckets[1], lambda p: p.update(forceDestroy=False))
    assert flagged(dev.run(rule, env="dev"), rule.name) == {dev_buckets[1]}


def test_every_pod_identity_role_is_scoped_to_the_cluster(rec):
    rule = aws_rules.pod_identity_trust_scoped
    roles = [u for u in rec.urns("aws:iam/role:Role") if "pods.eks.amazonaws.com" in rec.inputs(u)["assumeRolePolicy"]]
    assert len(roles) >= 7 and rec.run(rule) == []

    def unscoped(p):
        doc = json.loads(p["assumeRolePolicy"])
        doc["Statement"][0]["Condition"]["ArnLike"].pop("aws:SourceArn")
        p["assumeRolePolicy"] = json.dumps(doc)
    for urn in roles:
        rec.edit(urn, unscoped)
    assert flagged(rec.run(rule), rule.name) == set(roles)


def test_access_logging_sees_every_bucket_and_the_destination(rec):
    rule, sse = stack_rules.s3_access_logging, stack_rules.s3_sse_kms
    logging = rec.urns("aws:s3/bucketLogging:BucketLogging")
    (target,) = [b for b in rec.urns(BUCKET) if b.endswith("::access-logs")]
    assert len(logging) == 4 and rec.run(rule, sse) == []
    source = next(b for b in rec.urns(BUCKET) if companions(rec, "aws:s3/bucketLogging:BucketLogging", b))
    (link,) = companions(rec, "aws:s3/bucketLogging:BucketLogging", source)
    rec.drop(link)
    assert flagged(rec.run(rule), rule.name) == {source}
    # the destination with SSE-KMS: S3 could not deliver the logs
    (target_sse,) = companions(rec, SSE, target)
    rec.edit(target_sse, lambda p: p["rules"][0]["applyServerSideEncryptionByDefault"].update(sseAlgorithm="aws:kms"))
    assert flagged(rec.run(sse), sse.name) == {target}


def test_cluster_creator_is_declared_and_has_no_second_entry(rec):
    rule = stack_rules.eks_cluster_creator_declared
    (eks,) = rec.urns("eks:index:Cluster")
    assert rec.run(rule) == []
    deployer = rec.inputs(eks)["clusterTags"]["agentic.platform/cluster-creator-admin"]
    rec.edit(eks, lambda p: p["accessEntries"].update(
        deployer={"principalArn": deployer, "type": "STANDARD"}))
    assert flagged(rec.run(rule), rule.name) == {eks}
    rec.edit(eks, lambda p: p.pop("clusterTags"))
    assert flagged(rec.run(rule), rule.name) == {eks}


def test_every_rule_is_exercised():
    """Every rule of the pack is broken by some mutation of the real plan in the policy gate's modules
    (tests/test_policy_gate*.py)."""
    modules = {"aws_rules": aws_rules, "eks_rules": eks_rules, "k8s_rules": k8s_rules, "stack_rules": stack_rules}
    sources = [f.read_text() for f in sorted(Path(__file__).parent.glob("test_policy_gate*.py"))]
    assert len(sources) == 2, "the policy gate's modules changed: update this test"
    used = {getattr(modules[n.value.id], n.attr).name for src in sources for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
            and n.attr != "POLICIES"}
    assert sorted(set(POLICY_NAMES) - used) == []


def test_levels_for_unprotected_data_per_environment():
    levels = {env: load_policy_config(env)["stateful-resources-protected"]["enforcementLevel"] for env in ENVIRONMENTS}
    assert levels == {"dev": "disabled", "staging": "advisory", "prod": "mandatory"}


def test_docs_table_matches_the_configs():
    """docs/policies.md lists every rule with the levels of policies/config.<env>.json."""
    text = (ROOT / "docs" / "policies.md").read_text()
    rows = {m[0]: (m[1], m[2], m[3]) for m in re.findall(
        r"^\| `([a-z0-9-]+)` \| [^|]+ \| (\w+) \| (\w+) \| (\w+) \|$", text, re.MULTILINE)}
    assert sorted(rows) == sorted(POLICY_NAMES)
    for name, levels in rows.items():
        assert levels == tuple(load_policy_config(env)[name]["enforcementLevel"] for env in ENVIRONMENTS), name


def test_a_stack_verdict_is_remembered_only_for_the_question_it_answered(rec, tmp_path, monkeypatch):
    """The stack rules' verdict is memoized (plan/cache.py) per request: a broken recording is a new
    question, answered afresh; the clean one, asked again, gets its stored answer."""
    monkeypatch.setattr(plan_cache, "CACHE_ROOT", tmp_path)
    rule = stack_rules.namespace_default_deny_network_policy
    assert flagged(rec.run(rule), rule.name) == set()
    (stored,) = (tmp_path / "policies").iterdir()
    ns_urn = next(u for u in rec.urns(NAMESPACE) if rec.meta(u, "name") == "ai-inference")
    clean = list(rec.requests)
    for urn in owned(rec, NETWORK_POLICY, "ai-inference", is_default_deny):
        rec.drop(urn)
    assert flagged(rec.run(rule), rule.name) == {ns_urn}
    assert len(list((tmp_path / "policies").iterdir())) == 2
    stored.write_text(json.dumps([{"policy": rule.name, "level": "mandatory", "urn": "stored", "object": None,
                                   "message": "the stored answer"}]))
    rec.requests = clean
    assert flagged(rec.run(rule), rule.name) == {"stored"}   # a hit is read, not recomputed


def test_a_resource_verdict_is_remembered_only_for_the_question_it_answered(rec, tmp_path, monkeypatch):
    """The resource rules' verdicts are memoized (plan/cache.py) per plan question, each resource's
    findings by its own request: a broken recording is a new question; the clean one, asked again
    in another order, gets its stored answer in its own order."""
    monkeypatch.setattr(plan_cache, "CACHE_ROOT", tmp_path)
    rule = aws_rules.kms_key_rotation
    assert flagged(rec.run(rule), rule.name) == set()
    (stored,) = (tmp_path / "policies-resources").iterdir()
    key = rec.urns("aws:kms/key:Key")[0]
    clean = list(rec.requests)
    rec.edit(key, lambda p: p.update(enableKeyRotation=False))
    assert flagged(rec.run(rule), rule.name) == {key}
    assert len(list((tmp_path / "policies-resources").iterdir())) == 2
    answers = json.loads(stored.read_text())
    mine = next(k for k, found in answers.items() if not found)
    answers[mine] = [{"policy": rule.name, "level": "mandatory", "urn": "stored", "object": None,
                      "message": "the stored answer"}]
    stored.write_text(json.dumps(answers))
    rec.requests = clean[::-1]
    assert "stored" in flagged(rec.run(rule), rule.name)   # a hit is read, not recomputed
