"""The rehearsal of a first `pulumi up` and a `pulumi destroy` (plan/rehearsal/, docs/rehearsal.md):
dev and prod are clean, the estimate and its critical path hold together, and every hazard class is
triggered by a variation of the real plans (a dependency cut, an option or value changed, a stack
file changed) or by a small synthetic plan."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from components import names
from plan import rehearsal
from plan.engine import Plan, Resource, read_stack, run_program
from plan.objects import K8sObject, declared
from plan.rehearsal.graph import Graph
from plan.rehearsal.timing import list_schedule
from plan.report import summary, to_json
from tests.conftest import stack_doc, write_stack
from tests.test_scaling import with_tenants

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


# ----------------------------------------------------------------------------------- helpers

def variant(plan: Plan, resources: list[Resource] | None = None, objects: list[K8sObject] | None = None) -> Plan:
    """A copy of a plan with other resources or objects (the monitor, for mocked values, is shared)."""
    return dataclasses.replace(plan, resources=list(plan.resources if resources is None else resources),
                               objects=list(plan.objects if objects is None else objects), extras={}, policies=[])


def edit(plan: Plan, pick: Callable[[Resource], bool], change: Callable[[Resource], dict[str, Any]]) -> Plan:
    out = [dataclasses.replace(r, **change(r)) if pick(r) else r for r in plan.resources]
    assert out != plan.resources, "the variation changed nothing"
    return variant(plan, resources=out)


def strip(plan: Plan, pick: Callable[[Resource], bool], drop: Callable[[str], bool]) -> Plan:
    """`pick`ed resources no longer depend on the URNs `drop` selects (explicitly or through inputs)."""
    def change(r: Resource) -> dict[str, Any]:
        opts = copy.deepcopy(r.options)
        opts["dependsOn"] = [u for u in opts.get("dependsOn", []) if not drop(u)]
        opts["inputDependencies"] = {k: [u for u in v if not drop(u)] for k, v in opts.get("inputDependencies", {}).items()}
        return {"dependencies": [u for u in r.dependencies if not drop(u)], "options": opts}
    return edit(plan, pick, change)


def release(plan: Plan, name: str) -> Resource:
    (r,) = [r for r in plan.by_type(RELEASE) if r.inputs["name"] == name]
    return r


def one(plan: Plan, typ: str, name: str) -> Resource:
    (r,) = [r for r in plan.by_type(typ) if r.name == name]
    return r


def found(result: dict[str, Any], cls: str, level: str = "mandatory") -> list[dict[str, Any]]:
    return [h for part in ("up", "destroy") for h in result[part]["hazards"] if h["class"] == cls and h["level"] == level]


def rehearse(plan: Plan) -> dict[str, Any]:
    return rehearsal.rehearse(plan, None)


def synthetic(resources: list[Resource], objects: list[K8sObject], stack: str = "synthetic") -> Plan:
    return Plan("agentic-platform", stack, resources, {}, None, objects=objects)  # type: ignore[arg-type]


def res(name: str, typ: str, deps: list[str] = (), inputs: dict | None = None, **kw: Any) -> Resource:
    urn = f"urn:pulumi:synthetic::agentic-platform::{typ}::{name}"
    return Resource(urn=urn, type=typ, name=name, parent=None, custom=True, protect=kw.pop("protect", False),
                    dependencies=list(deps), inputs=inputs or {}, options=kw.pop("options", {}), **kw)


# ----------------------------------------------------------------------------- dev and prod

def test_dev_and_prod_have_no_mandatory_hazards(any_plan):
    """The other layers' fixes (dependencies on node sources, controllers, the EBS CSI driver,
    await timeouts of model servers, API access rules, snapshot names) are what keeps this empty."""
    result = any_plan.extras["rehearsal"]
    bad = rehearsal.mandatory(result)
    assert bad == [], "\n".join(f"[{h['class']}] {h['message']}" for h in bad)
    assert not [f for f in any_plan.extras["admission"] if f["check"] == "rehearsal"]


def test_the_plan_json_carries_the_rehearsal_and_the_options(dev_plan):
    doc = to_json(dev_plan)
    up, down = doc["rehearsal"]["up"], doc["rehearsal"]["destroy"]
    assert up["minutes"] >= up["criticalPathMinutes"] > 15
    assert {"urn", "name", "type", "startMinutes", "minutes", "why", "after"} <= set(up["criticalPath"][0])
    assert isinstance(up["hazards"], list) and isinstance(down["hazards"], list)
    for r in doc["resources"]:
        assert {"customTimeouts", "deleteBeforeReplace", "retainOnDelete", "ignoreChanges", "dependsOn"} <= set(r["options"])
    text = summary(dev_plan)
    assert "Rehearsal:" in text and f"first deploy ≈ {int(-(-up['minutes'] // 1))} min" in text


def test_options_are_those_the_engine_received(prod_plan):
    dep = one(prod_plan, DEPLOYMENT, "llama-3-70b-deployment")
    timeouts = dep.options["customTimeouts"]
    assert set(timeouts) == {"create", "update"} and timeouts["create"] == timeouts["update"]
    probe = dep.inputs["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert rehearsal.seconds(timeouts["create"]) > probe["periodSeconds"] * probe["failureThreshold"]
    (ng,) = prod_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert ng.options["ignoreChanges"] == ["scalingConfig.desiredSize"]
    pool = next(p for p in prod_plan.by_type(NODEPOOL) if p.inputs["metadata"]["name"] == "platform")
    assert release(prod_plan, "karpenter").urn in pool.options["dependsOn"]
    # explicit dependsOn and input dependencies are told apart: the RDS instance's snapshot name
    # comes from the stack's random suffix (an input), not from a dependsOn -- and not the cluster
    db = one(prod_plan, "aws:rds/instance:Instance", "langfuse-db")
    snap = db.options["inputDependencies"]["finalSnapshotIdentifier"]
    assert any("random:" in u for u in snap) and not any("eks:index:Cluster" in u for u in snap)
    assert not any("random:" in u for u in db.options["dependsOn"])


def test_critical_path_is_a_chain_of_waits(any_plan):
    up = any_plan.extras["rehearsal"]["up"]
    path = up["criticalPath"]
    assert path[0]["startMinutes"] == 0 and path[0]["after"] is None
    for prev, step in zip(path, path[1:], strict=False):
        assert step["after"] in ("dependsOn", "input", "parent", "provider"), step
        assert step["startMinutes"] == pytest.approx(prev["startMinutes"] + prev["minutes"], abs=0.15), (prev, step)
    by_urn = {r.urn: r for r in any_plan.resources}
    assert all(by_urn[s["urn"]].type == s["type"] for s in path)
    assert up["criticalPathMinutes"] == pytest.approx(path[-1]["startMinutes"] + path[-1]["minutes"], abs=0.15)
    assert up["minutes"] >= up["criticalPathMinutes"]   # slots (--parallel) only add to the unbounded path


def test_prod_over_its_goal_names_levers(prod_plan):
    up = prod_plan.extras["rehearsal"]["up"]
    assert up["goalMinutes"] == 20
    if up["minutes"] <= 20:
        return
    levers = up["levers"]
    if not levers:   # every edge on the path is one a rule needs: the summary says so
        assert any("no lever" in line for line in rehearsal.summary_lines(prod_plan.extras["rehearsal"]))
        return
    after = [lv["criticalPathAfter"] for lv in levers]
    assert after == sorted(after, reverse=True) and after[0] < up["criticalPathMinutes"]
    assert all(lv["minutesSaved"] >= 0.5 for lv in levers)
    # the model servers are not awaited (pulumi.com/skipAwait): no lever may name them
    served = (":apps/v1:Deployment::llama-3-70b", ":core/v1:Service::llama-3-70b")
    assert not any(lv["kind"] == "await" and any(s in u for u in lv["resources"] for s in served) for lv in levers)
    # no lever drops an edge a rule needs (the node group before Karpenter, Karpenter before its NodePools)
    needed = {release(prod_plan, "karpenter").urn, prod_plan.by_type("aws:eks/nodeGroup:NodeGroup")[0].urn}
    assert not [lv for lv in levers if lv["kind"] == "dependsOn" and needed & set(lv["from"])]


@pytest.mark.slow
def test_fast_and_linear(any_plan):
    best = min(_timed(lambda: rehearsal.rehearse(any_plan, None)) for _ in range(5))
    assert best < 0.5, f"{best:.2f}s"


@pytest.mark.slow
def test_time_grows_linearly_with_tenants_and_models(tmp_path):
    """The rehearsal of prod with 1 and 8 more tenants, each with a model (tests/test_scaling.py's
    variation): the time per resource stays flat (no quadratic step). Without a goal, so without
    the lever search: that adds at most 8 rounds of a bounded number of linear passes, a number
    that depends on the path's shape rather than on the count of resources."""
    rate = {}
    for n in (1, 8):
        plan = run_program(read_stack(str(write_stack(tmp_path, with_tenants(n, n), f"scale{n}"))))
        plan.objects = declared(plan)
        config = SimpleNamespace(environment="scale", models=[])
        # best of 5: milliseconds, so a busy neighbour's noise is filtered out
        best = min(_timed(lambda plan=plan, config=config: rehearsal.rehearse(plan, config)) for _ in range(5))
        rate[n] = best / len(plan.resources)
    assert rate[8] <= 2.5 * rate[1], {n: f"{r * 1e6:.0f} us/resource" for n, r in rate.items()}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --------------------------------------------------------------------------------- up: CRDs

def test_custom_resource_before_its_crd(dev_plan):
    crd = release(dev_plan, "karpenter-crd").urn
    karpenter = release(dev_plan, "karpenter").urn
    cut = strip(dev_plan, lambda r: r.type in (NODEPOOL, NODECLASS), lambda u: u in (crd, karpenter) or "EC2NodeClass" in u)
    hz = found(rehearse(cut), "crd-order")
    assert {h["objects"][0] for h in hz} >= {"_cluster/NodePool/platform", "_cluster/EC2NodeClass/platform"}
    assert all(crd in h["resources"] for h in hz)


def _crd(group: str, kind: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{kind.lower()}s.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "names": {"kind": kind, "plural": f"{kind.lower()}s"},
                     "versions": [{"name": "v1", "served": True, "storage": True}]}}


@pytest.mark.parametrize(("template", "hazardous"), [("widgets/crds/widget.yaml", False),
                                                      ("widgets/templates/crd.yaml", True)])
def test_crd_and_custom_resource_in_one_release(template, hazardous):
    """Helm installs a chart's crds/ before its templates; a CRD among the templates does not come first."""
    rel = res("widgets", RELEASE, inputs={"name": "widgets", "chart": "widgets-1.0.0.tgz", "version": "1.0.0"})
    cr = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}}
    objs = [K8sObject(_crd("example.com", "Widget"), rel.urn, release="widgets", template=template),
            K8sObject(cr, rel.urn, release="widgets", template="widgets/templates/widget.yaml")]
    hz = found(rehearse(synthetic([rel], objs)), "crd-order")
    assert bool(hz) is hazardous, hz


# ----------------------------------------------------------------------------- up: webhooks

def lbc_service_webhook(source: str) -> K8sObject:
    """The chart's Service mutator (aws-load-balancer-controller 3.5.0 templates/webhook.yaml with
    enableServiceMutatorWebhook: true): failurePolicy Fail, every namespace, every Service CREATE."""
    return K8sObject({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "aws-load-balancer-webhook-services"},
        "webhooks": [{"name": "mservice.elbv2.k8s.aws", "failurePolicy": "Fail", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"service": {"name": "aws-load-balancer-webhook-service",
                                                   "namespace": "kube-system", "path": "/mutate-v1-service"}},
                      "objectSelector": {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "NotIn",
                                                               "values": ["aws-load-balancer-controller"]}]},
                      "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                 "resources": ["services"]}], "sideEffects": "None"}]},
        source, release="aws-load-balancer-controller", template="aws-load-balancer-controller/templates/webhook.yaml")


def test_fail_webhook_admits_services_of_releases_not_after_it(dev_plan):
    lbc = release(dev_plan, "aws-load-balancer-controller")
    hz = found(rehearse(variant(dev_plan, objects=[*dev_plan.objects, lbc_service_webhook(lbc.urn)])), "webhook-order")
    creators = {u for h in hz for u in h["resources"]} - {lbc.urn}
    assert release(dev_plan, "keda").urn in creators        # KEDA's Services, created while the webhook cannot answer
    assert release(dev_plan, "karpenter").urn in creators
    assert all("mservice.elbv2.k8s.aws" in h["message"] for h in hz)
    # its own Service is excluded by the objectSelector; releases after it are fine
    after_lbc = {u for u in creators if dev_plan.by_type(RELEASE) and lbc.urn in _ancestors(dev_plan, u)}
    assert not after_lbc


def _ancestors(plan: Plan, urn: str) -> set[str]:
    w = rehearsal.build_world(plan, None)
    return {u for u in w.graph.nodes if w.graph.after(urn, u)}


def test_fail_webhook_scoped_by_namespace_selector_admits_nothing_else(dev_plan):
    lbc = release(dev_plan, "aws-load-balancer-controller")
    hook = lbc_service_webhook(lbc.urn)
    hook.manifest["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"elbv2.k8s.aws/service-webhook": "enabled"}}
    assert found(rehearse(variant(dev_plan, objects=[*dev_plan.objects, hook])), "webhook-order") == []


# ------------------------------------------------------------------------- up: node sources

def test_release_not_after_the_nodepool_its_pods_need(dev_plan):
    kps = release(dev_plan, "kube-prometheus-stack")
    pools = {p.urn for p in dev_plan.by_type(NODEPOOL)} | {release(dev_plan, "karpenter").urn}
    cut = strip(dev_plan, lambda r: r.urn == kps.urn, lambda u: u in pools or "Karpenter" in u)
    hz = [h for h in found(rehearse(cut), "node-source") if kps.urn in h["resources"]]
    assert hz and "NodePool platform" in hz[0]["message"]


def test_pods_that_fit_no_node_source(dev_plan):
    dep = next(o for o in dev_plan.objects if o.kind == "Deployment" and names.MODEL_LABEL in
               (o.manifest["spec"]["template"]["metadata"].get("labels") or {}))
    bad = copy.deepcopy(dep.manifest)
    bad["spec"]["template"]["spec"]["nodeSelector"][names.GPU_NAME_LABEL] = "b200"   # no pool has it
    objs = [dataclasses.replace(o, manifest=bad) if o is dep else o for o in dev_plan.objects]
    hz = found(rehearse(variant(dev_plan, objects=objs)), "node-source")
    assert any("fit no node source" in h["message"] and dep.ref in h["objects"] for h in hz)


def test_gpu_pods_before_the_device_plugin(dev_plan):
    plugin = release(dev_plan, "nvidia-device-plugin").urn
    cut = strip(dev_plan, lambda r: r.type in (DEPLOYMENT, SERVICE), lambda u: u == plugin)
    # the model Deployments are not awaited: their pods pend until the plugin advertises the GPUs
    # (the scheduler retries), so the deploy does not fail -- advisory; awaited, it would be mandatory
    hz = found(rehearse(cut), "node-source", "advisory")
    assert any("NVIDIA device plugin" in h["message"] for h in hz)
    model = next(r for r in cut.by_type(DEPLOYMENT) if r.name.endswith("-deployment") and
                 names.PULUMI_SKIP_AWAIT in (r.inputs["metadata"].get("annotations") or {}))
    awaited = annotated(cut, model.urn, {names.PULUMI_SKIP_AWAIT: None})
    hz = found(rehearse(awaited), "node-source")
    assert any("NVIDIA device plugin" in h["message"] and model.urn in h["resources"] for h in hz)


# --------------------------------------------------------------------------------- up: awaits

def annotated(plan: Plan, urn: str, annotations: dict[str, str | None]) -> Plan:
    """A copy of a plan whose objects from `urn` carry other annotations (None removes one)."""
    objs = []
    for o in plan.objects:
        if o.source == urn:
            m = copy.deepcopy(o.manifest)
            ann = m["metadata"].setdefault("annotations", {})
            for k, v in annotations.items():
                ann.pop(k, None) if v is None else ann.__setitem__(k, v)
            o = dataclasses.replace(o, manifest=m)
        objs.append(o)
    return variant(plan, objects=objs)


def test_model_service_on_the_default_await(prod_plan):
    """A model Service awaited without customTimeouts waits pulumi-kubernetes' 10 minutes; its pods
    may take a GPU node, the image and the model's startup budget."""
    svc = one(prod_plan, SERVICE, "llama-3-70b-service")
    probe = one(prod_plan, DEPLOYMENT, "llama-3-70b-deployment").inputs["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    budget = probe["periodSeconds"] * probe["failureThreshold"]
    awaited = annotated(prod_plan, svc.urn, {names.PULUMI_SKIP_AWAIT: None})
    cut = edit(awaited, lambda r: r.urn == svc.urn, lambda r: {"options": {**r.options, "customTimeouts": {}}})
    (h,) = [h for h in found(rehearse(cut), "await-timeout") if svc.urn in h["resources"]]
    assert "Pulumi waits 600s" in h["message"] and f"startup {budget}s" in h["message"], h["message"]
    # with the program's customTimeouts (the model's rollout budget) it is covered
    assert not [h for h in found(prod_plan.extras["rehearsal"], "await-timeout") if svc.urn in h["resources"]]


def test_helm_timeout_shorter_than_its_pods(dev_plan):
    kps = release(dev_plan, "kube-prometheus-stack")
    cut = edit(dev_plan, lambda r: r.urn == kps.urn, lambda r: {"inputs": {**r.inputs, "timeout": 60}})
    hz = [h for h in found(rehearse(cut), "await-timeout") if kps.urn in h["resources"]]
    # not atomic (it is not awaited): the hooks' wait still fails the install, with no rollback
    assert hz and "Helm waits 60s" in hz[0]["message"] and "rolled back" not in hz[0]["message"]


def test_skip_await_has_no_timeout(prod_plan):
    svc = one(prod_plan, SERVICE, "llama-3-70b-service")
    cut = edit(annotated(prod_plan, svc.urn, {names.PULUMI_SKIP_AWAIT: "true"}), lambda r: r.urn == svc.urn,
               lambda r: {"options": {**r.options, "customTimeouts": {}}})
    assert not [h for h in found(rehearse(cut), "await-timeout") if svc.urn in h["resources"]]


# ----------------------------------------------------------------------------- up: API access

def test_private_endpoint_without_access_rules(prod_plan):
    rules = [r for r in prod_plan.resources if r.name.startswith("cluster-api-from-")]
    assert rules
    cut = variant(prod_plan, resources=[r for r in prod_plan.resources if r not in rules])
    hz = found(rehearse(cut), "api-access")
    assert any("no ingress rule on 443" in h["message"] for h in hz)


def test_provider_not_waiting_for_the_access_rules(prod_plan):
    cut = strip(prod_plan, lambda r: r.type == "pulumi:providers:kubernetes", lambda u: "cluster-api-from-" in u)
    hz = found(rehearse(cut), "api-access")
    assert any("does not wait for the API access rules" in h["message"] for h in hz)


@pytest.mark.program
def test_access_path_inside_the_vpc_it_creates(tmp_path):
    """A stack file whose apiAccess CIDR lies in the VPC the stack creates: no deployer is there yet."""
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:cluster"]["apiAccess"] = {"cidrs": ["10.0.128.0/20"]}
    plan = run_program(read_stack(str(write_stack(tmp_path, doc, "inside"))))
    plan.objects = declared(plan)
    hz = found(rehearse(plan), "api-access")
    assert any("10.0.128.0/20 lies inside the VPC" in h["message"] for h in hz)


# ------------------------------------------------------------------------------- up: namespaces

def test_object_before_its_namespace(dev_plan):
    ns = next(r for r in dev_plan.by_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == names.NS_DATA)
    secret = next(r for r in dev_plan.by_type("kubernetes:core/v1:Secret") if r.inputs["metadata"]["namespace"] == names.NS_DATA)
    cut = strip(dev_plan, lambda r: r.urn == secret.urn, lambda u: u == ns.urn)
    hz = found(rehearse(cut), "namespace-order")
    assert [h["resources"] for h in hz] == [[secret.urn, ns.urn]] or any(secret.urn in h["resources"] for h in hz)


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


def test_the_estimate_does_not_depend_on_registration_order():
    """Resources registered from callbacks come in a different order from run to run; with more ready
    steps than slots the schedule's ties once followed that order (prod's estimate read 26.5 or 26.7
    minutes from the same code). Ties now break by URN: both orders give one schedule."""
    durations = [300, 60, 240, 120, 180, 30]
    resources = [res(f"step-{i}", "aws:ec2/vpc:Vpc") for i in range(len(durations))]
    dur = {r.urn: d for r, d in zip(resources, durations, strict=True)}
    forward = list_schedule(Graph(resources, set()), dur, parallel=2)
    backward = list_schedule(Graph(resources[::-1], set()), dur, parallel=2)
    assert forward == backward
