"""The policy gate on the real platform: every rule sees the resources it is meant to govern.

``tests/test_policies.py`` proves each rule on hand-built inputs. Here the input is the recorded
prod plan (``prod_plan``): the real program's ``(RegisterResourceRequest, urn)`` pairs and mocked
outputs, exactly what ``python -m plan`` hands to ``plan.policy_harness.evaluate``. The clean plan has
no mandatory finding; then a copy of the recording is broken in one place (a bucket unprotected, a
namespace's default-deny NetworkPolicy dropped, a model moved to a namespace without GPU quota...)
and the harness must name the expected rule for exactly the expected URNs. A rule that silently
skips a resource of the real plan (wrong type, wrong property path, failed correlation) fails here.

End to end through the CLI (the gate exits 1 naming the rule and the resources): tests/test_cli.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format

from plan import cache as plan_cache
from plan.engine import ROOT, Plan
from plan.policy_harness import evaluate
from policies import ENVIRONMENTS, POLICY_NAMES, aws_rules, eks_rules, k8s_rules, stack_rules

BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "aws:kms/key:Key"
RDS = "aws:rds/instance:Instance"
ELASTICACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
QUOTA = "kubernetes:core/v1:ResourceQuota"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
GPU = "nvidia.com/gpu"


class Recording:
    """A copy of a plan's recorded requests and states that can be broken without touching the plan.

    ``edit`` copies the request protobuf (``CopyFrom``) and applies the same change to its inputs
    (``object``, what resource rules read) and to its mocked state (what stack rules read)."""

    def __init__(self, plan: Plan):
        self.requests: list[tuple[Any, str]] = list(plan.monitor.requests)
        self.states: dict[str, Any] = {urn: reg.state for urn, reg in plan.monitor.resources.items()}
        self._inputs: dict[str, dict] = {}

    def urns(self, typ: str) -> list[str]:
        return [urn for req, urn in self.requests if req.type == typ]

    def request(self, urn: str):
        return next(req for req, u in self.requests if u == urn)

    def inputs(self, urn: str) -> dict:
        """The request's inputs as a dict (a cached copy: change them with `edit`)."""
        if urn not in self._inputs:
            self._inputs[urn] = json_format.MessageToDict(self.request(urn).object)
        return self._inputs[urn]

    def edit(self, urn: str, change: Callable[[dict], None] | None = None, *, protect: bool | None = None) -> None:
        i = next(i for i, (_, u) in enumerate(self.requests) if u == urn)
        old = self.requests[i][0]
        req = type(old)()
        req.CopyFrom(old)
        if change is not None:
            props = json_format.MessageToDict(old.object)
            change(props)
            req.object.Clear()
            req.object.update(props)
            state = copy.deepcopy(self.states[urn]) if urn in self.states else \
                json_format.MessageToDict(old.object)
            change(state)
            self.states[urn] = state
        if protect is not None:
            req.protect = protect
        self.requests[i] = (req, urn)
        self._inputs.pop(urn, None)

    def drop(self, urn: str) -> None:
        self.requests = [(r, u) for r, u in self.requests if u != urn]

    def run(self, *policies, env: str = "prod") -> list[dict]:
        return evaluate(self.requests, self.states, env, list(policies))

    def meta(self, urn: str, key: str) -> str:
        return self.inputs(urn)["metadata"][key]


def flagged(findings: list[dict], policy: str, level: str = "mandatory") -> set[str]:
    found = [f for f in findings if f["policy"] == policy]
    assert all(f["level"] == level for f in found), found
    assert all(f["message"] and not f["message"].startswith("can't run") for f in found), found
    return {f["urn"] for f in found}


@pytest.fixture
def rec(prod_plan) -> Recording:
    return Recording(prod_plan)


def companions(rec: Recording, typ: str, bucket_urn: str) -> list[str]:
    """Companion resources whose `bucket` input depends on the bucket (how a real preview links them)."""
    return [urn for req, urn in rec.requests if req.type == typ
            and bucket_urn in req.propertyDependencies["bucket"].urns]


def pod_spec(props: dict) -> dict:
    return props["spec"]["template"]["spec"]


def model_deployments(rec: Recording) -> list[str]:
    return [u for u in rec.urns(DEPLOYMENT)
            if any(GPU in c.get("resources", {}).get("requests", {}) for c in pod_spec(rec.inputs(u))["containers"])]


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


# ----------------------------------------------------------------------------- namespaces


def _owned(rec: Recording, typ: str, ns: str, pick: Callable[[dict], bool] = lambda p: True) -> list[str]:
    return [u for u in rec.urns(typ) if rec.meta(u, "namespace") == ns and pick(rec.inputs(u))]


def _is_default_deny(props: dict) -> bool:
    spec = props.get("spec", {})
    return not spec.get("podSelector") and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"} \
        and not spec.get("ingress") and not spec.get("egress")


def test_default_deny_rule_sees_every_namespace(prod_plan):
    namespaces = Recording(prod_plan).urns(NAMESPACE)
    rule = stack_rules.namespace_default_deny_network_policy
    for ns_urn in namespaces:
        rec = Recording(prod_plan)
        ns = rec.meta(ns_urn, "name")
        denies = _owned(rec, NETWORK_POLICY, ns, _is_default_deny)
        assert denies, f"namespace {ns} has no default-deny policy in the plan"
        for urn in denies:
            rec.drop(urn)
        findings = rec.run(rule)
        assert flagged(findings, rule.name) == {ns_urn}, ns
        assert f"'{ns}'" in findings[0]["message"]


def test_default_deny_needs_both_directions(rec):
    rule = stack_rules.namespace_default_deny_network_policy
    ns_urn = next(u for u in rec.urns(NAMESPACE) if rec.meta(u, "name") == "ai-inference")
    for urn in _owned(rec, NETWORK_POLICY, "ai-inference", _is_default_deny):
        rec.edit(urn, lambda p: p["spec"].update(policyTypes=["Ingress"]))
    findings = rec.run(rule)
    assert flagged(findings, rule.name) == {ns_urn} and "Egress" in findings[0]["message"]


def test_resource_quota_rule_sees_every_namespace(prod_plan):
    namespaces = Recording(prod_plan).urns(NAMESPACE)
    rule = stack_rules.namespace_resource_quota
    for ns_urn in namespaces:
        rec = Recording(prod_plan)
        ns = rec.meta(ns_urn, "name")
        quotas = _owned(rec, QUOTA, ns)
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
    for urn in _owned(rec, QUOTA, "ai-inference"):
        rec.edit(urn, lambda p: p["spec"]["hard"].update({f"requests.{GPU}": "0"}))
    assert flagged(rec.run(rule), rule.name) == set(model_deployments(rec))


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
    import json

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
    import json

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
    """Every rule of the pack is broken by some mutation of the real plan in this module."""
    import ast

    modules = {"aws_rules": aws_rules, "eks_rules": eks_rules, "k8s_rules": k8s_rules, "stack_rules": stack_rules}
    used = {getattr(modules[n.value.id], n.attr).name for n in ast.walk(ast.parse(open(__file__).read()))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
            and n.attr != "POLICIES"}
    assert sorted(set(POLICY_NAMES) - used) == []


def test_levels_for_unprotected_data_per_environment():
    from policies import load_policy_config

    levels = {env: load_policy_config(env)["stateful-resources-protected"]["enforcementLevel"] for env in ENVIRONMENTS}
    assert levels == {"dev": "disabled", "staging": "advisory", "prod": "mandatory"}


def test_docs_table_matches_the_configs():
    """docs/policies.md lists every rule with the levels of policies/config.<env>.json."""
    import re

    from policies import load_policy_config

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
    for urn in _owned(rec, NETWORK_POLICY, "ai-inference", _is_default_deny):
        rec.drop(urn)
    assert flagged(rec.run(rule), rule.name) == {ns_urn}
    assert len(list((tmp_path / "policies").iterdir())) == 2
    stored.write_text(json.dumps([{"policy": rule.name, "level": "mandatory", "urn": "stored", "object": None,
                                   "message": "the stored answer"}]))
    rec.requests = clean
    assert flagged(rec.run(rule), rule.name) == {"stored"}   # a hit is read, not recomputed
