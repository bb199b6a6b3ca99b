"""Compute layer: Karpenter IAM, interruption queue and rules, chart, node classes and pools
(the node specs themselves: tests/test_node_pools.py; the pre-flight: tests/test_preflight*.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components import names
from components.config import NAMESPACE, ConfigError, validate
from plan.engine import ROOT, Plan, program_config, read_stack, run_program
from tests.conftest import dev_pool_problems, release_of, stack_doc, write_stack

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
REGION = "us-west-2"


def _release(plan: Plan, chart: str):
    return release_of(plan, chart)


def _controller_policy(plan: Plan) -> dict[str, Any]:
    (r,) = [r for r in plan.by_type("aws:iam/rolePolicy:RolePolicy") if r.name.startswith("karpenter-controller")]
    return json.loads(r.inputs["policy"])


def _actions(stmt: dict[str, Any]) -> list[str]:
    a = stmt["Action"]
    return [a] if isinstance(a, str) else a


def _config_of(path: Path):
    sf = read_stack(str(path))
    return validate({k.split(":", 1)[1]: v for k, v in program_config(sf).items()
                     if k.startswith(NAMESPACE + ":")}, sf.name), sf


# ------------------------------------------------------------------------------------ IAM

def test_controller_never_terminates_without_this_clusters_tag(any_plan):
    cluster = any_plan.outputs["clusterName"]
    policy = _controller_policy(any_plan)
    dangerous = {"ec2:TerminateInstances", "ec2:DeleteLaunchTemplate", "ec2:*", "*"}
    seen = False
    for stmt in policy["Statement"]:
        assert stmt["Effect"] == "Allow"
        hits = dangerous & set(_actions(stmt))
        assert not hits & {"ec2:*", "*"}, stmt
        if hits:
            seen = True
            cond = stmt.get("Condition", {})
            assert cond["StringEquals"][f"aws:ResourceTag/kubernetes.io/cluster/{cluster}"] == "owned", stmt
            assert cond["StringLike"]["aws:ResourceTag/karpenter.sh/nodepool"] == "*", stmt
    assert seen, "the controller must be able to terminate its own instances"


def test_controller_policy_is_scoped(any_plan):
    cluster = any_plan.outputs["clusterName"]
    stmts = _controller_policy(any_plan)["Statement"]
    (node_role,) = [r for r in any_plan.by_type("aws:iam/role:Role") if r.name == "karpenter-node"]
    for s in stmts:
        acts = set(_actions(s))
        if "iam:PassRole" in acts:  # only the node role, only to EC2
            assert s["Resource"] == f"arn:aws:iam::123456789012:role/{node_role.inputs['name']}"
            assert s["Condition"]["StringEquals"]["iam:PassedToService"][0] == "ec2.amazonaws.com"
        if "ec2:CreateLaunchTemplate" in acts or ("ec2:CreateTags" in acts and s["Sid"] != "AllowScopedResourceTagging"):
            assert s["Condition"]["StringEquals"][f"aws:RequestTag/kubernetes.io/cluster/{cluster}"] == "owned"
        if any(a.startswith("sqs:") for a in acts):
            assert s["Resource"].endswith(f":{cluster}-karpenter")
        if "eks:DescribeCluster" in acts:
            assert s["Resource"].endswith(f":cluster/{cluster}")
        if "ssm:GetParameter" in acts:
            assert s["Resource"].endswith("::parameter/aws/service/*")
        if any(a.startswith("iam:") and "InstanceProfile" in a and a not in READ_ONLY_PROFILE_ACTIONS for a in acts):
            assert "Condition" in s, s
        if s["Resource"] == "*":
            assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in acts), s


# Every action of the upstream Karpenter v1.14 controller policy (aws/karpenter-provider-aws tag
# v1.14.1, website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml:
# NodeLifecycle, IAMIntegration, EKSIntegration, Interruption and ResourceDiscovery policies).
UPSTREAM_V114_ACTIONS = {
    "ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateTags",
    "ec2:TerminateInstances", "ec2:DeleteLaunchTemplate",
    "iam:PassRole", "iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile", "iam:ListInstanceProfiles",
    "iam:GetInstanceProfile",
    "eks:DescribeCluster",
    "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage",
    "ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplates",
    "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups", "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets", "ssm:GetParameter", "pricing:GetProducts",
}
# Its ZonalShiftPolicy is only used with settings.enableZonalShift (left off, asserted below).
UPSTREAM_ONLY_WITH_ZONAL_SHIFT = {"arc-zonal-shift:GetManagedResource"}
READ_ONLY_PROFILE_ACTIONS = {"iam:GetInstanceProfile", "iam:ListInstanceProfiles"}


def test_controller_policy_has_every_upstream_v1_14_action(any_plan):
    stmts = _controller_policy(any_plan)["Statement"]
    granted = {a for s in stmts for a in _actions(s)}
    assert not UPSTREAM_V114_ACTIONS - granted, sorted(UPSTREAM_V114_ACTIONS - granted)
    assert not granted - UPSTREAM_V114_ACTIONS, sorted(granted - UPSTREAM_V114_ACTIONS)  # nothing beyond upstream
    assert not UPSTREAM_ONLY_WITH_ZONAL_SHIFT & granted
    assert not _release(any_plan, "karpenter").inputs["values"]["settings"].get("enableZonalShift")
    (access,) = [s for s in stmts if s["Sid"] == "AllowScopedEC2InstanceAccessActions"]
    kinds = {r.split(":")[-1].split("/")[0] for r in access["Resource"]}
    assert kinds == {"image", "snapshot", "security-group", "subnet", "capacity-reservation", "placement-group"}


def test_every_tagging_and_mutating_ec2_statement_is_tag_scoped(any_plan):
    cluster = any_plan.outputs["clusterName"]
    mutating = {"ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate", "ec2:CreateTags"}
    for s in _controller_policy(any_plan)["Statement"]:
        if not mutating & set(_actions(s)) or s["Sid"] == "AllowScopedEC2InstanceAccessActions":
            continue  # that one: the launch's read-only inputs (AMIs, subnets, SGs, reservations)
        eq = s["Condition"]["StringEquals"]
        assert (eq.get(f"aws:RequestTag/kubernetes.io/cluster/{cluster}") == "owned"
                or eq.get(f"aws:ResourceTag/kubernetes.io/cluster/{cluster}") == "owned"), s
        like = s["Condition"]["StringLike"]
        assert "*" in (like.get("aws:RequestTag/karpenter.sh/nodepool"), like.get("aws:ResourceTag/karpenter.sh/nodepool"))
        if "ec2:CreateTags" in _actions(s) and s["Sid"] == "AllowScopedResourceCreationTagging":
            assert set(eq["ec2:CreateAction"]) == {"RunInstances", "CreateFleet", "CreateLaunchTemplate"}
        if s["Sid"] == "AllowScopedResourceTagging":  # retagging its own instances: only these keys
            assert set(s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]) == {
                "eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"}


def test_node_role_and_access_entry(prod_plan):
    (role,) = [r for r in prod_plan.by_type("aws:iam/role:Role") if r.name == "karpenter-node"]
    attached = {r.inputs["policyArn"].rsplit("/", 1)[-1] for r in prod_plan.by_type(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.name.startswith("karpenter-node-")}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly",
                        "AmazonSSMManagedInstanceCore"}
    (entry,) = [r for r in prod_plan.by_type("aws:eks/accessEntry:AccessEntry") if r.name == "karpenter-node"]
    assert entry.inputs["type"] == "EC2_LINUX" and entry.inputs["principalArn"].endswith(role.inputs["name"])
    (assoc,) = [r for r in prod_plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
                if r.inputs["serviceAccount"] == "karpenter"]
    assert assoc.inputs["namespace"] == "kube-system"


# ------------------------------------------------------------------------- queue and rules

def _names(plan: Plan) -> set[str]:
    out = {r.inputs["name"] for r in plan.by_type("aws:sqs/queue:Queue") if r.name.startswith("karpenter")}
    out |= {r.inputs["name"] for r in plan.by_type("aws:cloudwatch/eventRule:EventRule")}
    out |= {r.inputs["name"] for r in plan.by_type("aws:iam/role:Role") if r.name == "karpenter-node"}
    return out


def test_queue_and_rules(prod_plan):
    (queue,) = [r for r in prod_plan.by_type("aws:sqs/queue:Queue") if r.name == "karpenter-interruption"]
    assert queue.inputs["name"] == "agentic-prod-karpenter"
    assert queue.inputs["sqsManagedSseEnabled"] is True and queue.inputs["messageRetentionSeconds"] == 300
    (qp,) = prod_plan.by_type("aws:sqs/queuePolicy:QueuePolicy")
    allow, deny = json.loads(qp.inputs["policy"])["Statement"]
    assert set(allow["Principal"]["Service"]) == {"events.amazonaws.com", "sqs.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = prod_plan.by_type("aws:cloudwatch/eventRule:EventRule")
    detail_types = {json.loads(r.inputs["eventPattern"])["detail-type"][0] for r in rules}
    assert detail_types == {"AWS Health Event", "EC2 Spot Instance Interruption Warning",
                            "EC2 Instance Rebalance Recommendation", "EC2 Instance State-change Notification",
                            "EC2 Capacity Reservation Instance Interruption Warning"}
    targets = prod_plan.by_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 5 and all(t.inputs["arn"].endswith(":agentic-prod-karpenter") for t in targets)
    assert all(n.startswith("agentic-prod-") for n in _names(prod_plan))


def test_two_stacks_never_collide(prod_plan, tmp_path):
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:cluster"]["name"] = "agentic-prod-eu"
    other = run_program(read_stack(str(write_stack(tmp_path, doc, "prod2"))))
    a, b = _names(prod_plan), _names(other)
    assert len(a) == len(b) == 7  # queue, five rules, node role
    assert not a & b, a & b


# ---------------------------------------------------------------------------- Helm releases

def test_crds_owned_once_and_controller_values(any_plan):
    crd = _release(any_plan, "karpenter-crd")
    ctrl = _release(any_plan, "karpenter")
    assert ctrl.inputs["skipCrds"] is True and not crd.inputs.get("skipCrds")
    assert crd.urn in ctrl.dependencies
    assert ctrl.inputs["version"] == crd.inputs["version"] == "1.14.1"
    v = ctrl.inputs["values"]
    assert ctrl.inputs["namespace"] == "kube-system" and v["replicas"] == 2
    assert v["settings"]["clusterName"] == any_plan.outputs["clusterName"]
    assert v["settings"]["interruptionQueue"] == f"{any_plan.outputs['clusterName']}-karpenter"
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in v["tolerations"]
    assert v["nodeSelector"] == {"agentic.platform/node-role": "system"}
    assert v["podDisruptionBudget"]["maxUnavailable"] == 1
    res = v["controller"]["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] == res["limits"]["memory"]
    # The chart's own ServiceMonitor would be skipped (no monitoring.coreos.com/v1 at install time);
    # the GPU stack declares it instead (tests/test_gpu_stack.py).
    assert v["serviceMonitor"] == {"enabled": False}
    deps = " ".join(ctrl.dependencies)
    assert "PodIdentityAssociation::karpenter-controller-pod-identity" in deps
    assert "aws:eks/nodeGroup:NodeGroup::cluster-system" in deps


# -------------------------------------------------------------------- node classes and pools

def _pools(plan: Plan) -> dict[str, Any]:
    return {r.inputs["metadata"]["name"]: r for r in plan.by_type(NODEPOOL)}


def test_every_gpu_pool_is_limited_and_tainted(any_plan):
    pools = _pools(any_plan)
    assert "gpu-inference" in pools and "platform" in pools
    for name, r in pools.items():
        spec = r.inputs["spec"]
        taints = spec["template"]["spec"].get("taints", [])
        if name == "platform":
            assert names.GPU_TAINT not in taints and "nvidia.com/gpu" not in spec.get("limits", {})
            continue
        assert int(spec["limits"]["nvidia.com/gpu"]) >= 1, name
        assert names.GPU_TAINT in taints, name
        reqs = {q["key"]: q for q in spec["template"]["spec"]["requirements"]}
        assert reqs["node.kubernetes.io/instance-type"]["operator"] == "In"
        assert reqs["karpenter.sh/capacity-type"]["values"]


def test_prod_pools_are_the_seeds(prod_plan):
    pools = _pools(prod_plan)
    inf = pools["gpu-inference"].inputs["spec"]
    assert inf["limits"] == {"nvidia.com/gpu": "64", "cpu": "1000", "memory": "4000Gi"}
    assert inf["weight"] == 100
    assert inf["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m",
                                 "budgets": [{"nodes": "20%"},
                                             {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h"}]}
    spot = pools["gpu-spot"].inputs["spec"]
    assert spot["limits"]["nvidia.com/gpu"] == "32" and spot["weight"] == 50
    assert spot["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert {"key": "karpenter.sh/capacity-type", "value": "spot", "effect": "NoSchedule"} in \
        spot["template"]["spec"]["taints"]
    assert pools["platform"].inputs["spec"]["limits"] == {"cpu": "512"}


def test_every_node_class_is_hardened(any_plan):
    classes = any_plan.by_type(NODECLASS)
    assert len(classes) == len(_pools(any_plan))
    cluster = any_plan.outputs["clusterName"]
    for r in classes:
        spec = r.inputs["spec"]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        roots = [d for d in spec["blockDeviceMappings"] if d.get("rootVolume")]
        assert len(roots) == 1
        assert all(d["ebs"]["encrypted"] is True and d["ebs"]["volumeType"] == "gp3" for d in spec["blockDeviceMappings"])
        assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": cluster}}]
        assert spec["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": cluster}}]
        assert spec["amiSelectorTerms"][0]["alias"].startswith(("al2023@", "bottlerocket@"))
    gpu = next(r for r in classes if r.inputs["metadata"]["name"] == "gpu-inference").inputs["spec"]
    assert gpu["instanceStorePolicy"] == "RAID0"  # g5/p4d/p5 all have NVMe instance store
    root = gpu["blockDeviceMappings"][0]["ebs"]["volumeSize"]
    assert root == ("500Gi" if any_plan.stack == "prod" else "200Gi")


def test_prod_gpu_root_volume_has_the_seeds_performance(prod_plan):
    classes = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in prod_plan.by_type(NODECLASS)}
    ebs = classes["gpu-inference"]["blockDeviceMappings"][0]["ebs"]
    assert (ebs["iops"], ebs["throughput"]) == (10000, 500)
    assert ebs["throughput"] / ebs["iops"] <= 0.25 and ebs["iops"] <= 500 * int(ebs["volumeSize"][:-2])
    # the node-isolated tenant's pool copies gpu-inference; the CPU pool keeps the gp3 baseline
    assert classes[names.tenant_pool_name("tenant-b")]["blockDeviceMappings"][0]["ebs"]["iops"] == 10000
    assert "iops" not in classes["platform"]["blockDeviceMappings"][0]["ebs"]


def test_pools_and_classes_depend_on_the_controller(any_plan):
    release = _release(any_plan, "karpenter").urn
    for r in any_plan.by_type(NODEPOOL) + any_plan.by_type(NODECLASS):
        assert release in r.dependencies, r.name
    classes = {r.inputs["metadata"]["name"]: r.urn for r in any_plan.by_type(NODECLASS)}
    for name, r in _pools(any_plan).items():
        assert classes[name] in r.dependencies


@pytest.mark.program
def test_node_isolated_tenant_gets_a_dedicated_pool(tmp_path):
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:tenants"] = [
        {"name": "acme", "isolation": "node", "gpuPools": ["gpu-spot"], "quota": {"gpu": 8}},
        {"name": "shared", "quota": {"gpu": 2}}]
    doc["config"]["agentic-platform:gateway"].pop("tenantBudgets")   # prod's name tenant-a and tenant-b
    plan = run_program(read_stack(str(write_stack(tmp_path, doc, "tenants"))))
    pools = _pools(plan)
    assert names.tenant_pool_name("shared") not in pools
    spec = pools[names.tenant_pool_name("acme")].inputs["spec"]
    assert spec["limits"]["nvidia.com/gpu"] == "8"
    taints = spec["template"]["spec"]["taints"]
    assert names.GPU_TAINT in taints
    assert {"key": names.TENANT_TAINT_KEY, "value": "acme", "effect": "NoSchedule"} in taints
    assert spec["template"]["metadata"]["labels"][names.TENANT_LABEL] == "acme"
    types = {q["key"]: q["values"] for q in spec["template"]["spec"]["requirements"]}
    assert types["node.kubernetes.io/instance-type"] == ["g5.12xlarge", "g5.24xlarge", "g5.48xlarge"]


# ------------------------------------------------------------------------------ bad config

def _plan_exit(tmp_path: Path, doc: dict[str, Any]) -> tuple[int, str]:
    path = write_stack(tmp_path, doc)
    res = subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    return res.returncode, res.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p.pop("gpuLimit"), "agentic-platform:gpuPools[0].gpuLimit: is required"),
    (lambda p: p.update(instanceTypes=["m7i.xlarge"]),
     "agentic-platform:gpuPools[0].instanceTypes[0]: 'm7i.xlarge' is not a GPU instance type"),
    (lambda p: p.update(instanceTypes=["p9.mega"]),
     "agentic-platform:gpuPools[0].instanceTypes[0]: 'p9.mega' is not in platform/instances.yaml"),
    (lambda p: p.update(gpuLimit=0), "agentic-platform:gpuPools[0].gpuLimit:"),
])
def test_bad_gpu_pool_is_a_key_path_error(tmp_path, change, expected):
    doc = stack_doc("dev")
    change(doc["config"]["agentic-platform:gpuPools"][0])
    code, err = _plan_exit(tmp_path, doc)
    assert code == 2 and expected in err and "Traceback" not in err, err


def _validate_dev(**pool: Any) -> list[tuple[str, str]]:
    return dev_pool_problems("gpuPools[0].rootVolume", **pool)


@pytest.mark.parametrize(("pool", "path", "message"), [
    ({"rootVolumeIops": 2999}, "gpuPools[0].rootVolumeIops", ""),
    ({"rootVolumeIops": 16001}, "gpuPools[0].rootVolumeIops", ""),
    ({"rootVolumeThroughput": 124}, "gpuPools[0].rootVolumeThroughput", ""),
    ({"rootVolumeThroughput": 1001}, "gpuPools[0].rootVolumeThroughput", ""),
    ({"rootVolumeIops": 3996, "rootVolumeThroughput": 1000}, "gpuPools[0].rootVolumeThroughput",
     "1000 MiB/s exceeds 0.25 MiB/s per IOPS of 3996 IOPS"),
    ({"rootVolumeThroughput": 751}, "gpuPools[0].rootVolumeThroughput",  # unset IOPS: the 3000 baseline
     "751 MiB/s exceeds 0.25 MiB/s per IOPS of 3000 IOPS"),
    ({"rootVolumeGiB": 20, "rootVolumeIops": 16000}, "gpuPools[0].rootVolumeIops",
     "16000 IOPS need a volume of at least 32 GiB"),
])
def test_bad_gp3_performance_is_a_key_path_error(pool, path, message):
    problems = _validate_dev(**pool)
    assert [p for p, _ in problems] == [path], problems
    assert message in problems[0][1]


@pytest.mark.parametrize("pool", [
    {"rootVolumeIops": 4000, "rootVolumeThroughput": 1000},  # exactly 0.25 MiB/s per IOPS
    {"rootVolumeIops": 16000, "rootVolumeThroughput": 1000, "rootVolumeGiB": 32},
    {"rootVolumeThroughput": 750}, {"rootVolumeIops": 3000, "rootVolumeThroughput": 125},
])
def test_gp3_limits_accept_the_edges(pool):
    assert _validate_dev(**pool) == []


def test_node_isolated_tenant_without_gpu_quota_is_rejected():
    doc = stack_doc("dev")
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc["config"].items()
           if k.startswith(NAMESPACE + ":")}
    raw["tenants"] = json.dumps([{"name": "acme", "isolation": "node", "quota": {"gpu": 0}}])
    with pytest.raises(ConfigError) as err:
        validate(raw, "dev")
    assert any(p == "tenants[0].quota.gpu" for p, _ in err.value.problems), err.value


@pytest.mark.slow
def test_long_cluster_name_and_restricted_label_are_key_path_errors(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:cluster"]["name"] = "a" * 42
    doc["config"]["agentic-platform:gpuPools"][0]["labels"] = {"karpenter.sh/foo": "x"}
    code, err = _plan_exit(tmp_path, doc)
    assert code == 2, err
    assert "agentic-platform:gpuPools[0].labels.karpenter.sh/foo: label domain 'karpenter.sh'" in err, err
    doc["config"]["agentic-platform:gpuPools"][0].pop("labels")
    code, err = _plan_exit(tmp_path, doc)
    assert code == 2 and "agentic-platform:cluster.name: 'aaaa" in err, err
