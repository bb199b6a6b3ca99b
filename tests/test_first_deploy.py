"""Prod's first `pulumi up` within its goal (docs/rehearsal.md): nothing waits on what it does not use.
Each test reads the wiring the rehearsal's estimate rests on and fails on the wiring that made the
first deploy ~41 min."""

from __future__ import annotations

import dataclasses
import tarfile
from types import SimpleNamespace

import yaml

from components import names
from components.config import ModelConfig
from components.model_deployment import s3_prefix
from components.model_weights import WEIGHTS_COMPLETE, copy_seconds
from components.observability import MONITORING_CRDS
from domain.pins import chart_archive
from plan import rehearsal
from plan.engine import Plan
from plan.rehearsal.timing import pod_start, weights_copy
from tests.conftest import release_of, stack_doc

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _models(stack: str) -> dict[str, ModelConfig]:
    return {m["name"]: ModelConfig.model_validate(m) for m in stack_doc(stack)["config"]["agentic-platform:models"]}


def test_model_servers_are_not_awaited(any_plan: Plan):
    """Nothing in the stack needs a model Ready at deploy time: each model's Deployment and Service
    carry pulumi.com/skipAwait, and the rehearsal awaits none of their pods."""
    stack = "prod" if any(r.name == "llama-3-70b-deployment" for r in any_plan.resources) else "dev"
    models = _models(stack)
    world = rehearsal.build_world(any_plan, None)
    for typ in (DEPLOYMENT, SERVICE):
        rs = {r.inputs["metadata"]["name"]: r for r in any_plan.by_type(typ) if r.inputs["metadata"]["name"] in models}
        assert set(rs) == set(models), typ
        for name, r in rs.items():
            assert r.inputs["metadata"]["annotations"][names.PULUMI_SKIP_AWAIT] == "true", (typ, name)
            assert not [ps for ps in rehearsal.awaited_pods(world, r.urn) if ps.awaited], (typ, name)


def test_model_rollout_is_bounded_by_its_progress_deadline(prod_plan: Plan):
    """Not awaited, a rollout is bounded by the Deployment controller's progressDeadlineSeconds
    (ProgressDeadlineExceeded): the model's rollout allowance, the figure the timeouts also keep."""
    for name in _models("prod"):
        (dep,) = [r for r in prod_plan.by_type(DEPLOYMENT) if r.inputs["metadata"]["name"] == name]
        (req,) = [req for req, u in prod_plan.monitor.requests if u == dep.urn]
        deadline = dep.inputs["spec"]["progressDeadlineSeconds"]
        assert deadline > 600 and req.customTimeouts.create == f"{deadline}s", name


def test_databases_and_cache_build_while_eks_does(prod_plan: Plan):
    """RDS instances and the ElastiCache replication group wait for the network only: their final
    snapshot names start with the configured cluster name (a string), not the cluster's output, so
    a ~15 min database starts at the VPC, not after the ~11 min control plane."""
    world = rehearsal.build_world(prod_plan, None)
    (cluster,) = prod_plan.by_type("eks:index:Cluster")
    rds = prod_plan.by_type("aws:rds/instance:Instance")
    stores = [*rds, *prod_plan.by_type("aws:elasticache/replicationGroup:ReplicationGroup")]
    assert len(rds) == 2 and len(stores) == 3    # kagent's and LangFuse's databases, the Redis cache
    for r in stores:
        assert not world.graph.after(r.urn, cluster.urn), r.name
        assert str(r.inputs["finalSnapshotIdentifier"]).startswith(f"{cluster.inputs['name']}-"), r.name


def test_a_deletion_protected_cluster_is_protected(prod_plan: Plan):
    """EKS deletion protection without Pulumi `protect` lets `pulumi destroy` delete everything that
    depends on the cluster before it fails on it; with `protect` it refuses up front."""
    (cluster,) = prod_plan.by_type("eks:index:Cluster")
    assert cluster.inputs["deletionProtection"] is True and cluster.protect
    result = prod_plan.extras["rehearsal"]
    assert not [h for h in result["destroy"]["hazards"] if h["class"] == "deletion-protection"]


def test_kube_prometheus_stack_is_not_awaited(any_plan: Plan):
    """Nothing needs kube-prometheus-stack's pods Ready, only its CRDs (established before the
    release completes): skipAwait, and not atomic, since Helm forces the wait of an atomic install."""
    (kps,) = [r for r in any_plan.by_type(RELEASE) if r.inputs["name"] == names.PROMETHEUS_RELEASE]
    assert kps.inputs["skipAwait"] is True and not kps.inputs.get("atomic")
    world = rehearsal.build_world(any_plan, None)
    assert not [ps for ps in rehearsal.awaited_pods(world, kps.urn) if ps.awaited and not ps.hook]
    assert any(ps.hook for ps in rehearsal.awaited_pods(world, kps.urn))     # its hook Jobs still run


def test_an_atomic_release_is_awaited_whatever_skip_await_says(dev_plan: Plan):
    """Helm sets Wait when Atomic is (pkg/action/install.go): the rehearsal counts the wait."""
    (kps,) = [r for r in dev_plan.by_type(RELEASE) if r.inputs["name"] == names.PROMETHEUS_RELEASE]
    atomic = dataclasses.replace(kps, inputs={**kps.inputs, "atomic": True})
    plan = dataclasses.replace(dev_plan, resources=[atomic if r is kps else r for r in dev_plan.resources],
                               extras={}, policies=[])
    world = rehearsal.build_world(plan, None)
    assert [ps for ps in rehearsal.awaited_pods(world, kps.urn) if ps.awaited and not ps.hook]


MONITORING = "monitoring.coreos.com"


def _chart_yaml(chart: str) -> dict:
    """Chart.yaml inside the vendored archive of a pinned chart."""
    with tarfile.open(chart_archive(chart)) as tar:
        return yaml.safe_load(tar.extractfile(f"{chart}/Chart.yaml").read())


def test_monitoring_crds_are_the_operator_version_kube_prometheus_stack_runs():
    """The CRD release must carry the CRDs of the operator kube-prometheus-stack deploys (both
    charts' appVersion is the operator's tag): bump them together."""
    assert _chart_yaml(MONITORING_CRDS)["appVersion"] == _chart_yaml("kube-prometheus-stack")["appVersion"]


def test_monitoring_crds_are_their_own_release_right_after_the_cluster(any_plan: Plan):
    """The monitoring.coreos.com CRDs come from one awaited release that waits for nothing but the
    cluster's provider (no node, no Namespace: CRDs are cluster-scoped, its record is in
    kube-system); kube-prometheus-stack no longer installs them (crds.enabled, its crds subchart's
    condition), and the plan admits ServiceMonitors against that release's schema."""
    crds, kps = release_of(any_plan, MONITORING_CRDS), release_of(any_plan, "kube-prometheus-stack")
    assert crds.inputs["namespace"] == names.NS_SYSTEM and crds.inputs["atomic"] and not crds.inputs.get("skipAwait")
    assert kps.inputs["values"]["crds"]["enabled"] is False
    defined = {o.manifest["metadata"]["name"]: o.source for o in any_plan.objects
               if o.kind == "CustomResourceDefinition" and o.manifest["spec"]["group"] == MONITORING}
    assert len(defined) == 10 and set(defined.values()) == {crds.urn}
    world = rehearsal.build_world(any_plan, None)
    waits_for = {world.graph.by_urn[u].type for u in world.graph.nodes if world.graph.after(crds.urn, u)}
    assert "eks:index:Cluster" in waits_for
    assert not {t for t in waits_for if t.startswith("kubernetes:") or t.startswith("aws:eks/")}, waits_for


def test_monitoring_crds_outlive_their_release(any_plan: Plan):
    """Helm deletes a release's templated CRDs on uninstall, and every ServiceMonitor, PodMonitor and
    PrometheusRule with them; the rendered CRDs carry helm.sh/resource-policy: keep, so a replaced or
    removed release leaves them (helm pkg/action/uninstall.go)."""
    crds = release_of(any_plan, MONITORING_CRDS)
    kept = [o for o in any_plan.objects if o.source == crds.urn and o.kind == "CustomResourceDefinition"]
    assert len(kept) == 10
    for o in kept:
        assert o.manifest["metadata"]["annotations"][names.HELM_RESOURCE_POLICY] == names.HELM_KEEP, o.name

def test_monitor_users_wait_for_the_crds_not_the_stack(any_plan: Plan):
    """Every ServiceMonitor, PodMonitor and PrometheusRule outside kube-prometheus-stack (Milvus, the
    GPU stack, the models, the collector, the platform's alerts) is created after the CRD release and
    not after kube-prometheus-stack, whose pods need Karpenter's nodes."""
    crds, kps = release_of(any_plan, MONITORING_CRDS), release_of(any_plan, "kube-prometheus-stack")
    world = rehearsal.build_world(any_plan, None)
    users = {o.source for o in any_plan.objects
             if o.group == MONITORING and o.kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule")
             and o.source != kps.urn and not o.controller}
    assert len(users) >= 4, users
    for u in users:
        assert world.graph.after(u, crds.urn), world.graph.by_urn[u].name
        assert not world.graph.after(u, kps.urn), world.graph.by_urn[u].name
    assert world.graph.after(kps.urn, crds.urn)     # its Prometheus, Alertmanager and monitors too


def test_karpenter_resolves_through_the_node_and_waits_for_no_coredns(any_plan: Plan):
    """Karpenter asks the VPC's resolver (dnsPolicy Default: the node's resolv.conf), so neither its
    release nor its CRD release waits for the coredns add-on (which waits for the system nodes); it
    still waits for those nodes and the Pod Identity agent (its credentials)."""
    karpenter, crd = release_of(any_plan, "karpenter"), release_of(any_plan, "karpenter-crd")
    (dep,) = [o for o in any_plan.objects if o.kind == "Deployment" and o.source == karpenter.urn]
    assert dep.manifest["spec"]["template"]["spec"]["dnsPolicy"] == "Default"
    world = rehearsal.build_world(any_plan, None)
    addons = {r.inputs["addonName"]: r.urn for r in any_plan.by_type("aws:eks/addon:Addon")}
    for rel in (karpenter, crd):
        assert not world.graph.after(rel.urn, addons["coredns"]), rel.name
    (nodes,) = any_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert world.graph.after(karpenter.urn, addons["eks-pod-identity-agent"])
    assert world.graph.after(karpenter.urn, nodes.urn)



def test_a_weights_job_is_timed_with_its_copy(prod_plan: Plan):
    """The weights Job's pod copies the model from Hugging Face into S3 before it completes: the
    rehearsal counts that copy (components/model_weights.py copy_seconds, the figures its deadline
    is sized from), not only node, pull and a container start (what it counted before: 6 min
    for the 70B model's ~140 GB)."""
    models = _models("prod")
    world = rehearsal.build_world(prod_plan, SimpleNamespace(models=list(models.values())))
    (job,) = [r for r in prod_plan.by_type("kubernetes:batch/v1:Job") if r.name == "llama-3-70b-weights"]
    (ps,) = rehearsal.awaited_pods(world, job.urn)
    copy = sum(copy_seconds(models["llama-3-70b"]))
    assert weights_copy(world, ps.meta) == copy > 600
    start = pod_start(world, ps, frozenset())
    assert f"weights copy {copy}s" in start.parts and start.expected > copy
    (server,) = [r for r in prod_plan.by_type(DEPLOYMENT) if r.name == "llama-3-70b-deployment"]
    assert not [p for p in rehearsal.awaited_pods(world, server.urn) if weights_copy(world, p.meta)]


def test_weights_jobs_are_not_awaited_and_the_servers_wait_for_the_copy(prod_plan: Plan):
    """Nothing but the model server needs its weights, and the server is not awaited: each weights
    Job carries pulumi.com/skipAwait (the copy bounded by activeDeadlineSeconds), its upload writes
    the completion marker last, and the server's pods wait for that marker before the engine starts."""
    world = rehearsal.build_world(prod_plan, None)
    for name, m in _models("prod").items():
        (job,) = [r for r in prod_plan.by_type("kubernetes:batch/v1:Job") if r.name == f"{name}-weights"]
        assert job.inputs["metadata"]["annotations"][names.PULUMI_SKIP_AWAIT] == "true", name
        assert not [ps for ps in rehearsal.awaited_pods(world, job.urn) if ps.awaited], name
        upload = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"][0]
        assert upload.index("aws s3 sync") < upload.index(WEIGHTS_COMPLETE), name
        (dep,) = [r for r in prod_plan.by_type(DEPLOYMENT) if r.name == f"{name}-deployment"]
        assert job.urn in dep.dependencies
        wait = dep.inputs["spec"]["template"]["spec"]["initContainers"][0]   # before the compile cache's
        env = {e["name"]: e.get("value") for e in wait["env"]}
        assert wait["name"] == "wait-for-weights" and WEIGHTS_COMPLETE in wait["args"][0], name
        # it gives up (exit 1: a visible restart) once the Job's own deadline has passed
        deadline = job.inputs["spec"]["activeDeadlineSeconds"]
        assert f"+ {deadline} ))" in wait["args"][0] and "exit 1" in wait["args"][0], name
        assert env["PREFIX"] == s3_prefix(m), name
