"""The rehearsal of `pulumi destroy` (plan/rehearsal/destroy.py) and the rehearsal's plumbing."""

from __future__ import annotations

import pytest

from components import names
from plan import rehearsal
from plan.engine import read_stack, run_program
from plan.objects import K8sObject, declared
from tests.conftest import stack_doc, write_stack
from tests.rehearsal_cases import (
    NODECLASS,
    NODEPOOL,
    RELEASE,
    SERVICE,
    edit,
    found,
    one,
    rehearse,
    release,
    res,
    strip,
    synthetic,
)

# ------------------------------------------------------------------------------- destroy rules

def test_nodepools_not_depending_on_karpenter(dev_plan):
    karpenter = release(dev_plan, "karpenter").urn
    cut = strip(dev_plan, lambda r: r.type in (NODEPOOL, NODECLASS), lambda u: u == karpenter or "EC2NodeClass" in u)
    hz = found(rehearse(cut), "controller-outlives")
    objs = {o for h in hz for o in h["objects"]}
    assert {"_cluster/NodePool/platform", "_cluster/EC2NodeClass/platform"} <= objs
    assert all("VPC" in h["message"] for h in hz)


def test_node_class_not_depending_on_its_node_role(dev_plan):
    role = next(r for r in dev_plan.by_type("aws:iam/role:Role") if r.name == "karpenter-node")
    cls = next(r for r in dev_plan.by_type(NODECLASS) if r.inputs["metadata"]["name"] == "platform")
    assert role.urn in cls.dependencies           # the program: spec.role is the role's name output
    cut = strip(dev_plan, lambda r: r.urn == cls.urn, lambda u: u == role.urn or "helm.sh" in u)
    hz = [h for h in found(rehearse(cut), "controller-outlives") if role.urn in h["resources"]]
    assert hz and "DeleteConflict" in hz[0]["message"]


def test_load_balancer_service_not_depending_on_the_controller(prod_plan):
    lbc = release(prod_plan, "aws-load-balancer-controller").urn
    nlb = one(prod_plan, SERVICE, "gateway-nlb")
    # directly, and through the Gateway (which depends on the controller too)
    cut = strip(prod_plan, lambda r: r.urn == nlb.urn, lambda u: u == lbc or "gateway.networking.k8s.io/v1:Gateway" in u)
    (h,) = [h for h in found(rehearse(cut), "controller-outlives") if nlb.urn in h["resources"]]
    assert lbc in h["resources"] and "load balancer" in h["message"]


def test_namespace_with_volume_claims_not_depending_on_the_ebs_csi_driver(dev_plan):
    ebs = next(r.urn for r in dev_plan.by_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "aws-ebs-csi-driver")
    ns = next(r for r in dev_plan.by_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == names.NS_DATA)
    cut = strip(dev_plan, lambda r: r.urn == ns.urn, lambda u: u == ebs)
    hz = [h for h in found(rehearse(cut), "controller-outlives") if ns.urn in h["resources"]]
    assert hz and ebs in hz[0]["resources"] and "namespace ai-data" in hz[0]["message"]


def test_bucket_without_force_destroy(dev_plan):
    b = one(dev_plan, "aws:s3/bucket:Bucket", "data-documents")
    cut = edit(dev_plan, lambda r: r.urn == b.urn, lambda r: {"inputs": {**r.inputs, "forceDestroy": False}})
    assert [h["resources"] for h in found(rehearse(cut), "bucket-not-empty")] == [[b.urn]]
    kept = edit(cut, lambda r: r.urn == b.urn, lambda r: {"protect": True})
    assert found(rehearse(kept), "bucket-not-empty") == []


def test_final_snapshot_named_from_names_only(prod_plan):
    db = one(prod_plan, "aws:rds/instance:Instance", "langfuse-db")
    fixed = edit(prod_plan, lambda r: r.urn == db.urn, lambda r: {
        "inputs": {**r.inputs, "finalSnapshotIdentifier": "agentic-prod-langfuse-final"},
        "dependencies": [u for u in r.dependencies if "random:" not in u]})
    (h,) = found(rehearse(fixed), "snapshot-name")
    assert h["resources"] == [db.urn] and "next incarnation" in h["message"]
    missing = edit(prod_plan, lambda r: r.urn == db.urn, lambda r: {"inputs": {k: v for k, v in r.inputs.items()
                                                                                if k != "finalSnapshotIdentifier"}})
    assert any("no finalSnapshotIdentifier" in h["message"] for h in found(rehearse(missing), "snapshot-name"))


@pytest.mark.program
def test_deletion_protection_without_protect(tmp_path):
    """prod's cluster has deletionProtection and so `protect` (components/cluster.py); with
    protectData off and the cluster not protected, the destroy would delete the platform and then
    fail on the cluster: the guard works, but late (advisory: the failure is what the stack asked for)."""
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:protectData"] = False
    plan = run_program(read_stack(str(write_stack(tmp_path, doc, "unprotected"))))
    plan.objects = declared(plan)
    assert not found(rehearse(plan), "deletion-protection", level="advisory")
    cut = edit(plan, lambda r: r.type == "eks:index:Cluster", lambda r: {"protect": False})
    hz = found(rehearse(cut), "deletion-protection", level="advisory")
    assert [h["resources"][0].rsplit("::", 1)[-1] for h in hz] == ["cluster"]
    assert found(rehearse(cut), "deletion-protection") == []


def test_retained_load_balancer_blocks_the_vpc(dev_plan, prod_plan):
    nlb = one(dev_plan, SERVICE, "gateway-nlb")
    cut = edit(dev_plan, lambda r: r.urn == nlb.urn, lambda r: {"options": {**r.options, "retainOnDelete": True}})
    hz = found(rehearse(cut), "vpc-blocked")
    assert hz and nlb.urn in hz[0]["resources"] and "DependencyViolation" in hz[0]["message"]
    # prod's destroy keeps the VPC (--exclude-protected keeps what the protected databases use)
    pnlb = one(prod_plan, SERVICE, "gateway-nlb")
    kept_vpc = edit(prod_plan, lambda r: r.urn == pnlb.urn, lambda r: {"options": {**r.options, "retainOnDelete": True}})
    assert found(rehearse(kept_vpc), "vpc-blocked") == []


def test_helm_keep_policy_on_a_load_balancer_blocks_the_vpc():
    vpc = res("vpc", "aws:ec2/vpc:Vpc", inputs={"cidrBlock": "10.0.0.0/16"})
    rel = res("ingress", RELEASE, [vpc.urn], inputs={"name": "ingress", "chart": "ingress-1.0.0.tgz", "version": "1.0.0"})
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "lb", "namespace": "default", "annotations": {"helm.sh/resource-policy": "keep"}},
           "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}
    hz = found(rehearse(synthetic([vpc, rel], [K8sObject(svc, rel.urn, release="ingress")])), "vpc-blocked")
    assert hz and "resource-policy: keep" in hz[0]["message"]


def test_controllers_known_by_chart_without_renders():
    """Without rendered objects (no Helm) the Karpenter release is still known by its chart."""
    karpenter = res("karpenter", RELEASE, inputs={"name": "karpenter", "chart": "platform/charts/karpenter-1.14.1.tgz",
                                                   "version": "1.14.1"})
    pool = res("pool", NODEPOOL, inputs={"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "p"}})
    objs = [K8sObject({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "p"}, "spec": {}}, pool.urn)]
    (h,) = found(rehearse(synthetic([karpenter, pool], objs)), "controller-outlives")
    assert karpenter.urn in h["resources"] and "does not depend on karpenter" in h["message"]


# ------------------------------------------------------------------------------------- plumbing

def test_rejections_are_admission_style_findings():
    result = {"up": {"hazards": [rehearsal.hazard("crd-order", "mandatory", "m", ["urn:a"], ["ns/Kind/x"]),
                                 rehearsal.hazard("api-access", "advisory", "a")]},
              "destroy": {"hazards": []}}
    assert rehearsal.rejections(result) == [{"object": "ns/Kind/x", "source": "urn:a", "release": None,
                                             "check": "rehearsal", "message": "crd-order: m"}]


def test_custom_timeouts_parse():
    assert [rehearsal.seconds(t) for t in ("3830s", "10m", "1h30m", "", None)] == [3830, 600, 5400, None, None]


def test_every_figure_names_its_source():
    d = rehearsal.durations()
    for table in ("resources", "images", "charts"):
        for key, entry in d[table].items():
            entries = entry.values() if key == "default" and table == "resources" else [entry]
            assert all(e.get("source") for e in entries), (table, key)
    assert all(v.get("source") for v in d["nodes"].values())
    assert all(v.get("source") for v in d["addons"].values())
    # a Deployment add-on says what its pods tolerate and how long they take to start
    assert all(v.get("tolerations") and v.get("podStart") for v in d["addons"].values() if v["workload"] == "Deployment")
