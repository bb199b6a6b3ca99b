"""Admission checks, each with a case the API server (or an admission plugin) would reject and one
it would accept. The objects are small hand-written manifests; the plan runs the same functions over
every declared and rendered object (tests/test_render.py checks both stacks have none rejected)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from plan.admission import images, pod_identity, quota, references, schema
from plan.admission.admit import admit, conflicts, max_nodes
from plan.objects import K8sObject

KUBE = "1.34.0"
SAFE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"}}
RES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


def obj(manifest: dict[str, Any], source: str = "urn:test") -> K8sObject:
    return K8sObject(manifest, source)


def ns(name: str, level: str = "restricted") -> K8sObject:
    return obj({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}})


def deployment(name: str, namespace: str = "app", *, replicas: int = 1, container: dict | None = None,
               pod: dict | None = None) -> K8sObject:
    c = {"name": "main", "image": "example.com/app:1.0", "securityContext": SAFE, "resources": RES, **(container or {})}
    spec = {"containers": [c], **(pod or {})}
    return obj({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})


def checks(findings: list[dict]) -> list[str]:
    return [f["check"] for f in findings]


# --------------------------------------------------------------------------------------- schema

def test_schema_accepts_a_valid_deployment_and_rejects_an_unknown_field():
    assert schema.check([deployment("ok")], KUBE) == []
    bad = deployment("bad", container={"bogus": 1})
    [(o, msg)] = schema.check([bad], KUBE)
    assert o is bad and "bogus" in msg


def test_schema_of_a_custom_resource_comes_from_the_installed_crd():
    crd = obj({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                            "type": "object", "properties": {"spec": {"type": "object", "properties": {
                                "size": {"type": "integer", "minimum": 1},
                                "port": {"x-kubernetes-int-or-string": True}}}}}}}]}})
    good = obj({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "app"},
                "spec": {"size": 2, "port": "http"}})
    assert schema.check([crd, good], KUBE) == []
    too_small = obj({**good.manifest, "spec": {"size": 0}})
    unknown = obj({**good.manifest, "spec": {"size": 1, "colour": "red"}})
    found = dict((o.manifest["spec"].get("colour", o.manifest["spec"]["size"]), m)
                 for o, m in schema.check([crd, too_small, unknown], KUBE))
    assert "minimum" in found[0] and "colour" in found["red"]
    # Without its CRD the API server answers "no matches for kind".
    [(_, msg)] = schema.check([good], KUBE)
    assert msg.startswith('no matches for kind "Widget"')


# --------------------------------------------------------------------------------- pod security

def test_pod_security_follows_the_namespace_enforce_level():
    root = deployment("root", container={"securityContext": {"runAsUser": 0}})
    found = admit([ns("app"), root], [], kube_version=KUBE)
    assert "podSecurity" in checks(found)
    assert "podSecurity" not in checks(admit([ns("app", "baseline"), root], [], kube_version=KUBE))
    assert admit([ns("app"), deployment("fine")], [], kube_version=KUBE) == []


# ---------------------------------------------------------------------------- quota, limitrange

def quota_obj(hard: dict[str, str], namespace: str = "app") -> K8sObject:
    return obj({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": namespace},
                "spec": {"hard": hard}})


def limit_range(**limits: dict[str, str]) -> K8sObject:
    return obj({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr", "namespace": "app"},
                "spec": {"limits": [{"type": "Container", **limits}]}})


def test_quota_rejects_a_container_without_the_limits_it_constrains():
    bare = deployment("bare", container={"resources": {}})
    [(_, check, msg)] = quota.check([quota_obj({"limits.cpu": "4"}), bare], 10)
    assert check == "resourceQuota" and "must specify limits.cpu for: main" in msg
    # A LimitRange default fills it in, as the LimitRanger plugin does before the quota is checked.
    assert quota.check([quota_obj({"limits.cpu": "4"}), limit_range(default={"cpu": "1"}), bare], 10) == []


def test_quota_counts_replicas_and_autoscaler_maxima():
    app = deployment("app", replicas=3)                            # 3 x 200m = 600m limits
    assert quota.check([quota_obj({"limits.cpu": "1"}), app], 10) == []
    [(_, _, msg)] = quota.check([quota_obj({"limits.cpu": "500m"}), app], 10)
    assert "configured replicas" in msg
    hpa = obj({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s", "namespace": "app"},
               "spec": {"scaleTargetRef": {"name": "app"}, "maxReplicaCount": 10}})
    [(_, _, msg)] = quota.check([quota_obj({"limits.cpu": "1"}), app, hpa], 10)
    assert "autoscalers' maxima" in msg


def test_quota_counts_a_daemonset_on_every_node():
    ds = deployment("exporter").manifest | {"kind": "DaemonSet"}
    ds["spec"] = {k: v for k, v in ds["spec"].items() if k != "replicas"}
    assert quota.check([quota_obj({"pods": "20"}), obj(ds)], 20) == []
    [(_, _, msg)] = quota.check([quota_obj({"pods": "20"}), obj(ds)], 21)
    assert "pods" in msg


def test_limit_range_maximum():
    big = deployment("big", container={"resources": {"limits": {"cpu": "4", "memory": "1Gi"}}})
    [(_, check, msg)] = quota.check([limit_range(max={"cpu": "2"}), big], 1)
    assert check == "limitRange" and "maximum cpu" in msg


def test_quantities():
    assert quota.quantity("500m") == 0.5 and quota.quantity("2Gi") == 2 ** 31 and quota.quantity(4) == 4
    assert quota.quantity("1e3") == 1000
    with pytest.raises(ValueError):
        quota.quantity("lots")


# ----------------------------------------------------------------------------------- references

def test_references_must_exist():
    pod = {"volumes": [{"name": "c", "configMap": {"name": "settings"}},
                       {"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}],   # made by kube-controller-manager
           "serviceAccountName": "runner"}
    app = deployment("app", pod=pod, container={"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}},
                                                         {"name": "O", "valueFrom": {"secretKeyRef": {"name": "opt", "key": "o",
                                                                                                     "optional": True}}}]})
    missing = sorted(m.split(": ")[1].split(" does")[0] for _, m in references.check([app]))
    assert missing == ["ConfigMap app/settings", "Secret app/token", "ServiceAccount app/runner"]
    provided = [obj({"apiVersion": "v1", "kind": k, "metadata": {"name": n, "namespace": "app"}})
                for k, n in (("ConfigMap", "settings"), ("Secret", "token"), ("ServiceAccount", "runner"))]
    assert references.check([app, *provided]) == []


def test_storage_class_must_exist():
    pvc = obj({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "app"},
               "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}})
    [(_, msg)] = references.check([pvc])
    assert "StorageClass 'fast'" in msg
    fast = obj({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
                "provisioner": "ebs.csi.aws.com"})
    assert references.check([pvc, fast]) == []


# --------------------------------------------------------------------------------------- images

@pytest.mark.parametrize("image, pinned", [
    ("example.com/app:1.0", True), ("example.com:5000/app:1.0", True), ("app@sha256:" + "a" * 64, True),
    ("example.com/app", False), ("example.com:5000/app", False), ("app:latest", False)])
def test_images_are_pinned(image, pinned):
    assert (images.image_problem(image) is None) == pinned
    assert bool(images.check([deployment("a", container={"image": image})])) != pinned


# ---------------------------------------------------------------------------------- pod identity

@dataclass
class Res:
    type: str
    urn: str
    inputs: dict[str, Any] = field(default_factory=dict)


def test_pod_identity_association_needs_a_service_account_some_pod_runs_as():
    assoc = Res(pod_identity.ASSOCIATION, "urn:assoc", {"namespace": "app", "serviceAccount": "runner"})
    sa = obj({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "app"}})
    [(urn, msg)] = pod_identity.check([], [assoc])
    assert urn == "urn:assoc" and "does not exist" in msg
    [(_, msg)] = pod_identity.check([sa, deployment("app")], [assoc])
    assert "no pod runs as" in msg
    assert pod_identity.check([sa, deployment("app", pod={"serviceAccountName": "runner"})], [assoc]) == []
    # An EKS add-on's own service account counts (it creates and runs as it).
    addon = Res(pod_identity.ASSOCIATION, "urn:cni", {"namespace": "kube-system", "serviceAccount": "aws-node"})
    assert pod_identity.check([], [addon], [("kube-system", "aws-node")]) == []


# ------------------------------------------------------------------------------- conflicts, nodes

def test_two_objects_of_one_name_conflict():
    [found] = conflicts([deployment("app"), K8sObject(deployment("app").manifest, "urn:chart", release="chart")])
    assert found["check"] == "conflict" and found["release"] == "chart"


def test_max_nodes_from_node_groups_and_nodepool_limits():
    group = Res("aws:eks/nodeGroup:NodeGroup", "urn:ng", {"scalingConfig": {"maxSize": 4}})
    pool = obj({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
                "spec": {"limits": {"nvidia.com/gpu": "16"}, "template": {"spec": {"requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.xlarge", "g5.12xlarge"]}]}}}})
    assert max_nodes([pool], [group]) == 4 + 16   # 16 GPUs / 1 GPU per g5.xlarge


def test_secrets_that_controllers_and_hook_jobs_create_count_as_existing():
    reader = deployment("operator", namespace="mon", pod={"volumes": [{"name": "tls", "secret": {"secretName": "op-admission"}}]})
    certgen = obj({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "op-admission-create", "namespace": "mon"},
                   "spec": {"template": {"spec": {"containers": [{
                       "name": "create", "image": "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.1",
                       "args": ["create", "--host=op", "--namespace=mon", "--secret-name=op-admission"]}]}}}})
    assert references.check([reader])   # nobody makes it
    assert references.check([reader, certgen]) == []
    def keda(rotate: str) -> K8sObject:
        return deployment("keda", namespace="mon",
                          container={"args": [f"--enable-cert-rotation={rotate}", "--cert-secret-name=op-admission"]})
    assert references.check([reader, keda("true")]) == []
    assert references.check([reader, keda("false")])


def test_quota_sums_that_equal_the_limit_fit():
    """3 x 0.1 cores is 0.30000000000000004 in float arithmetic: a namespace whose pods add up
    exactly to its hard limit is admitted, as the quota controller's exact Quantity arithmetic does."""
    pods = [deployment(f"p{i}", container={"resources": {"limits": {"cpu": "100m", "memory": "1Mi"}}}) for i in range(3)]
    assert quota.check([quota_obj({"limits.cpu": "300m"}), *pods], 1) == []
    assert quota.check([quota_obj({"limits.cpu": "299m"}), *pods], 1)


def test_quota_counts_sidecars_with_the_app_containers():
    """A native sidecar (an init container with restartPolicy Always, KEP-753) keeps running: the
    pods evaluator adds it to the app containers, and a later init container to what it charges;
    counted as a plain init container (the larger of it and the app) it was left out."""
    def limits(cpu: str) -> dict[str, Any]:
        return {"resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}
    spec = {"initContainers": [{"name": "save", "restartPolicy": "Always", **limits("100m")},
                               {"name": "wait", **limits("950m")}],
            "containers": [{"name": "app", **limits("800m")}]}
    usage = quota.pod_usage(spec, [])
    assert usage["limits.cpu"] == pytest.approx(1.05)   # the wait step (950m) with the sidecar (100m)
    spec["initContainers"][1] = {"name": "wait", **limits("100m")}
    assert quota.pod_usage(spec, [])["limits.cpu"] == pytest.approx(0.9)   # app 800m + sidecar 100m
    app = obj({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "app"}, "spec": spec})
    [(_, _, msg)] = quota.check([quota_obj({"limits.cpu": "850m"}), app], 1)
    assert "limits.cpu" in msg
