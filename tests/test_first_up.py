"""A first `pulumi up` and `pulumi destroy` that succeed (1): the deployer reaches a private endpoint,
the creator's admin entry is visible and never duplicated, every AWS name fits its limit, unprotected
buckets empty on destroy, final snapshots are named per incarnation, drains end."""

from __future__ import annotations

import json

import pytest

from components import names
from components.config import validate
from plan.engine import ROOT
from tests.conftest import stack_doc
from tests.first_up_cases import BUCKET, DEPLOYER, EKS, SG_RULE, cluster, plan_doc, plan_exit, problems_of

# ----------------------------------------------------------------------- 1. the way to a private endpoint

@pytest.mark.slow
def test_private_endpoint_without_an_access_path_is_a_key_path_error(tmp_path):
    doc = stack_doc("prod")
    cluster(doc).pop("apiAccess")
    proc = plan_exit(doc, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if "agentic-platform:cluster.apiAccess:" in x)
    assert "endpoint 'private'" in line and "apiAccess.cidrs" in line and "securityGroupIds" in line
    assert "publicAndPrivate" in line  # the other way out


@pytest.mark.parametrize(("access", "path", "text"), [
    ({"cidrs": ["0.0.0.0/0"]}, "cluster.apiAccess.cidrs[0]", "every address"),
    ({"securityGroupIds": ["sg-nope"]}, "cluster.apiAccess.securityGroupIds[0]", "not a security group id"),
    ({"cidrs": ["10.100.0.0/22", "10.100.0.0/22"]}, "cluster.apiAccess.cidrs[1]", "listed twice"),
])
def test_bad_access_paths_are_key_path_errors(tmp_path, access, path, text):
    doc = stack_doc("prod")
    cluster(doc)["apiAccess"] = access
    lines = problems_of(doc, tmp_path)
    assert any(x.startswith(f"agentic-platform:{path}: ") and text in x for x in lines), lines


def test_access_path_becomes_443_rules_on_the_cluster_security_group(prod_plan, tmp_path):
    rules = [r for r in prod_plan.by_type(SG_RULE) if r.name.startswith("cluster-api-from-")]
    assert [(r.inputs["cidrIpv4"], r.inputs["fromPort"], r.inputs["toPort"], r.inputs["ipProtocol"])
            for r in rules] == [("10.100.0.0/22", 443, 443, "tcp")]
    assert rules[0].inputs["securityGroupId"] == "sg-mock-agentic-prod"  # the EKS cluster security group
    # the Kubernetes provider (hence every Kubernetes object) waits for the way in
    (provider,) = prod_plan.by_type("pulumi:providers:kubernetes")
    assert rules[0].urn in provider.dependencies
    # a runner's security group works the same way
    doc = stack_doc("prod")
    cluster(doc)["apiAccess"] = {"securityGroupIds": ["sg-0123456789abcdef0"]}
    plan = plan_doc(doc, tmp_path)
    (rule,) = [r for r in plan.by_type(SG_RULE) if r.name.startswith("cluster-api-from-")]
    assert rule.inputs["referencedSecurityGroupId"] == "sg-0123456789abcdef0" and rule.inputs["fromPort"] == 443


def test_prod_placeholder_access_path_is_not_the_vpc():
    import ipaddress

    c = stack_doc("prod")["config"]
    vpc = ipaddress.ip_network(c["agentic-platform:network"]["cidr"])
    for cidr in c["agentic-platform:cluster"]["apiAccess"]["cidrs"]:
        net = ipaddress.ip_network(cidr)
        assert net.is_private and not net.overlaps(vpc), cidr
    assert "PLACEHOLDER" in (ROOT / "Pulumi.prod.yaml").read_text()


# ----------------------------------------------------------------------- 2. the creator's admin entry

def test_deployer_is_required(tmp_path):
    doc = stack_doc("dev")
    cluster(doc).pop("deployer")
    lines = problems_of(doc, tmp_path)
    assert any(x.startswith("agentic-platform:cluster.deployer: is required") for x in lines), lines


@pytest.mark.slow
def test_deployer_listed_as_admin_is_a_key_path_error(tmp_path):
    doc = stack_doc("prod")
    cluster(doc)["admins"].append({"name": "deployer", "arn": DEPLOYER})
    proc = plan_exit(doc, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "agentic-platform:cluster.admins[2].arn: is cluster.deployer" in proc.stderr
    assert "409" in proc.stderr


def test_deployer_as_a_tenant_role_and_a_session_arn_are_refused(tmp_path):
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:tenants"][0]["iamRoles"][0]["arn"] = DEPLOYER
    assert any(x.startswith("agentic-platform:tenants[0].iamRoles[0].arn: already mapped by cluster.deployer")
               for x in problems_of(doc, tmp_path))
    doc = stack_doc("prod")
    cluster(doc)["deployer"] = {"arn": "arn:aws:sts::111122223333:assumed-role/PulumiDeployer/ci-run-42"}
    lines = problems_of(doc, tmp_path)
    assert any(x.startswith("agentic-platform:cluster.deployer.arn: ") and
               "arn:aws:iam::111122223333:role/PulumiDeployer" in x for x in lines), lines


def test_deployer_is_visible_in_the_plan(any_plan):
    (eks,) = any_plan.by_type(EKS)
    assert eks.inputs["clusterTags"] == {"agentic.platform/cluster-creator-admin": DEPLOYER}
    assert any_plan.outputs["clusterCreatorAdmin"] == DEPLOYER
    assert DEPLOYER not in {e["principalArn"] for e in eks.inputs.get("accessEntries", {}).values()}


def test_pulumi_eks_offers_no_way_to_turn_the_creator_admin_off():
    """Why cluster.deployer exists: the pinned pulumi-eks takes neither argument."""
    import inspect

    import pulumi_eks

    params = inspect.signature(pulumi_eks.ClusterArgs.__init__).parameters
    assert "bootstrap_cluster_creator_admin_permissions" not in params and "access_config" not in params


# ----------------------------------------------------------------------- 6. names derived from cluster.name

def test_cluster_name_over_29_characters_is_refused_with_the_limit(tmp_path):
    doc = stack_doc("dev")
    cluster(doc)["name"] = "a" * 30
    lines = problems_of(doc, tmp_path)
    (line,) = [x for x in lines if x.startswith("agentic-platform:cluster.name: ")]
    assert "system node group" in line and "limit of 63" in line and "at most 29 characters" in line
    cluster(doc)["name"] = "a" * 29
    assert problems_of(doc, tmp_path) == []


def test_every_derived_name_of_the_longest_valid_cluster_name_fits():
    longest = "c" * names.max_cluster_name_length()
    assert names.max_cluster_name_length() == 29
    for what, build, limit, _ in names.CLUSTER_DERIVED_NAMES:
        assert len(build(longest)) <= limit, what
    assert len(names.system_node_group_prefix(longest + "c")) + names.PREFIX_UNIQUE_SUFFIX == 64  # the binding one
    assert names.cluster_name_problems(longest) == []
    assert len(names.cluster_name_problems("c" * 42)) == 3  # node group 63, ElastiCache 40, EventBridge 64


def test_default_cluster_name_of_a_long_stack_fits():
    cfg = validate({"environment": "dev", "cluster": json.dumps({
        "deployer": {"arn": DEPLOYER}, "apiAccess": {"cidrs": ["10.100.0.0/22"]}})},
        "a-very-long-stack-name-for-a-feature-branch")
    assert len(cfg.cluster_name) <= 29 and not cfg.cluster_name.endswith("-")


def test_layers_build_the_names_the_config_checks(prod_plan):
    c = "agentic-prod"
    (ng,) = prod_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert ng.inputs["nodeGroupNamePrefix"] == names.system_node_group_prefix(c)
    (rg,) = prod_plan.by_type("aws:elasticache/replicationGroup:ReplicationGroup")
    assert rg.inputs["replicationGroupId"] == names.redis_group_id(c)
    assert {r.inputs["name"] for r in prod_plan.by_type("aws:cloudwatch/eventRule:EventRule")} == {
        names.karpenter_rule_name(c, k) for k in names.KARPENTER_RULE_KEYS}
    assert prod_plan.by_type("aws:sqs/queue:Queue")[0].inputs["name"] == names.karpenter_queue_name(c)
    assert names.karpenter_node_role_name(c) in {r.inputs.get("name") for r in prod_plan.by_type("aws:iam/role:Role")}


# ----------------------------------------------------------------------- 9. unprotected buckets empty on destroy

def test_force_destroy_is_not_protect_data_for_every_bucket(dev_plan, prod_plan):
    for plan, protected in ((dev_plan, False), (prod_plan, True)):
        buckets = plan.by_type(BUCKET)
        assert len(buckets) >= 4
        for b in buckets:
            assert b.protect is protected and b.inputs["forceDestroy"] is (not protected), (plan.stack, b.name)


# ----------------------------------------------------------------------- 10. final snapshots per incarnation

def test_final_snapshot_names_come_from_a_random_id_of_the_stack(prod_plan):
    by_urn = {r.urn: r for r in prod_plan.resources}
    stateful = prod_plan.by_type("aws:rds/instance:Instance") + prod_plan.by_type(
        "aws:elasticache/replicationGroup:ReplicationGroup")
    assert len(stateful) == 3  # LangFuse and kagent databases, the platform Redis
    seen = set()
    for r in stateful:
        ident = r.inputs["finalSnapshotIdentifier"]
        randoms = [by_urn[d] for d in r.dependencies
                   if d in by_urn and by_urn[d].type == "random:index/randomId:RandomId"]
        assert len(randoms) == 1, r.name
        assert randoms[0].inputs["byteLength"] == names.SNAPSHOT_SUFFIX_BYTES
        assert ident.startswith("agentic-prod-") and ident.endswith(f"-final-{'0123456789abcdef'[:8]}"), ident
        seen.add(ident)
        if r.type == "aws:rds/instance:Instance":
            assert r.inputs["skipFinalSnapshot"] is False
    assert len(seen) == 3


# ----------------------------------------------------------------------- 12. drains end

def test_every_node_pool_has_a_termination_grace_period(prod_plan):
    periods = {r.inputs["metadata"]["name"]: r.inputs["spec"]["template"]["spec"]["terminationGracePeriod"]
               for r in prod_plan.resources if r.type == "kubernetes:karpenter.sh/v1:NodePool"}
    assert periods == {"gpu-inference": "2h", "gpu-spot": "2h", "platform": "30m", "tenant-tenant-b": "2h"}


@pytest.mark.parametrize(("value", "ok"), [("45m", True), ("1h30m", True), ("0s", False), ("Never", False)])
def test_termination_grace_period_is_configurable_and_finite(tmp_path, value, ok):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:gpuPools"][0]["terminationGracePeriod"] = value
    lines = problems_of(doc, tmp_path)
    if ok:
        assert lines == []
    else:
        assert any(x.startswith("agentic-platform:gpuPools[0].terminationGracePeriod: ") for x in lines), lines
