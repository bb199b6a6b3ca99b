"""The rehearsal of a first `pulumi up` and a `pulumi destroy` (plan/rehearsal/, docs/rehearsal.md):
dev and prod are clean, the estimate and its critical path hold together, and every hazard class is
triggered by a variation of the real plans (a dependency cut, an option or value changed, a stack
file changed) or by a small synthetic plan."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from components import names
from plan import rehearsal
from plan.engine import Plan, read_stack, run_program
from plan.objects import K8sObject, declared
from plan.report import summary, to_json
from tests.conftest import stack_doc, write_stack
from tests.rehearsal_cases import (
    DEPLOYMENT,
    NODECLASS,
    NODEPOOL,
    RELEASE,
    SERVICE,
    annotated,
    edit,
    found,
    one,
    rehearse,
    release,
    res,
    strip,
    synthetic,
    variant,
)

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
