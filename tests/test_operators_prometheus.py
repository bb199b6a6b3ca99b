"""plan/operators/: the StatefulSets and Services prometheus-operator creates from the platform's
Prometheus and Alertmanager resources, checked against what the operator's source (at the pinned
version) builds, and admitted by Pod Security like any other pod."""

from __future__ import annotations

import copy

from plan.operators import operator_objects, pins
from tests.operator_objects import CONTAINER_DEFAULT, RESTRICTED_POD, by_ref, container, obj, pod_spec, violations

# --------------------------------------------------------------------------------------------- prometheus-operator

# The Prometheus and Alertmanager CRs kube-prometheus-stack 88.5.3 renders with the platform's values
# (components/observability.py), trimmed to the fields that shape the pods.
PROMETHEUS = {
    "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
    "metadata": {"name": "kube-prometheus-stack-prometheus", "namespace": "observability",
                 "labels": {"app": "kube-prometheus-stack-prometheus", "app.kubernetes.io/managed-by": "Helm",
                            "release": "kube-prometheus-stack"}},
    "spec": {"image": "quay.io/prometheus/prometheus:v3.14.0-distroless", "imagePullPolicy": "IfNotPresent",
             "version": "v3.14.0-distroless", "replicas": 2, "shards": 1, "logLevel": "info", "logFormat": "logfmt",
             "listenLocal": False, "enableOTLPReceiver": False, "enableAdminAPI": False,
             "externalUrl": "http://kube-prometheus-stack-prometheus.observability:9090",
             "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
             "retention": "30d", "retentionSize": "180GB", "walCompression": True, "routePrefix": "/",
             "serviceAccountName": "kube-prometheus-stack-prometheus", "securityContext": RESTRICTED_POD,
             "storage": {"volumeClaimTemplate": {"spec": {"storageClassName": "gp3-encrypted", "accessModes": ["ReadWriteOnce"],
                                                          "resources": {"requests": {"storage": "200Gi"}}}}},
             "portName": "http-web", "hostNetwork": False},
}
ALERTMANAGER = {
    "apiVersion": "monitoring.coreos.com/v1", "kind": "Alertmanager",
    "metadata": {"name": "kube-prometheus-stack-alertmanager", "namespace": "observability",
                 "labels": {"app": "kube-prometheus-stack-alertmanager", "release": "kube-prometheus-stack"}},
    "spec": {"image": "quay.io/prometheus/alertmanager:v0.34.0", "version": "v0.34.0", "replicas": 1,
             "serviceAccountName": "kube-prometheus-stack-alertmanager", "automountServiceAccountToken": True,
             "externalUrl": "http://kube-prometheus-stack-alertmanager.observability:9093", "retention": "120h",
             "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
             "routePrefix": "/", "securityContext": RESTRICTED_POD, "portName": "http-web",
             "storage": {"volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "10Gi"}}}}}},
}
# templates/prometheus-operator/deployment.yaml of the chart, args only.
OPERATOR = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "kube-prometheus-stack-operator", "namespace": "observability"},
    "spec": {"template": {"spec": {"containers": [{"name": "kube-prometheus-stack", "args": [
        "--localhost=127.0.0.1", "--prometheus-config-reloader=registry.example/prometheus-config-reloader:v0.93.1",
        "--config-reloader-cpu-request=10m", "--config-reloader-cpu-limit=0",
        "--config-reloader-memory-request=32Mi", "--config-reloader-memory-limit=64Mi"]}]}}},
}


def test_prometheus_statefulset_as_the_operator_builds_it():
    out = by_ref(operator_objects([obj(PROMETHEUS, "urn:kps", "kube-prometheus-stack")]))
    sts = out["observability/StatefulSet/prometheus-kube-prometheus-stack-prometheus"]
    assert sts.source == "urn:kps" and sts.release is None
    assert sts.controller == f"prometheus-operator {pins()['prometheus-operator']['version']}" == "prometheus-operator v0.93.1"
    spec = sts.manifest["spec"]
    assert spec["serviceName"] == "prometheus-operated" and spec["replicas"] == 2
    assert spec["podManagementPolicy"] == "Parallel"
    selector = {"app.kubernetes.io/managed-by": "prometheus-operator", "app.kubernetes.io/name": "prometheus",
                "app.kubernetes.io/instance": "kube-prometheus-stack-prometheus", "prometheus": "kube-prometheus-stack-prometheus",
                "operator.prometheus.io/name": "kube-prometheus-stack-prometheus", "operator.prometheus.io/shard": "0"}
    assert spec["selector"]["matchLabels"] == selector
    labels = spec["template"]["metadata"]["labels"]
    assert labels == {**selector, "app.kubernetes.io/version": "3.14.0-distroless"}
    # the selector labels override the CR's managed-by: Helm on the StatefulSet
    assert sts.metadata["labels"]["app.kubernetes.io/managed-by"] == "prometheus-operator"
    assert sts.metadata["labels"]["operator.prometheus.io/mode"] == "server"
    pod = pod_spec(sts)
    assert pod["serviceAccountName"] == "kube-prometheus-stack-prometheus"
    assert pod["securityContext"] == RESTRICTED_POD and pod["terminationGracePeriodSeconds"] == 600
    assert [c["name"] for c in pod["containers"]] == ["prometheus", "config-reloader"]
    assert [c["name"] for c in pod["initContainers"]] == ["init-config-reloader"]
    prom = container(sts, "prometheus")
    assert prom["image"] == "quay.io/prometheus/prometheus:v3.14.0-distroless"
    assert prom["ports"] == [{"name": "http-web", "containerPort": 9090, "protocol": "TCP"}]
    assert prom["securityContext"] == CONTAINER_DEFAULT
    assert prom["resources"] == PROMETHEUS["spec"]["resources"]
    # Prometheus >= 3.11 takes retention from the config file, not flags
    assert prom["args"] == ["--config.file=/etc/prometheus/config_out/prometheus.env.yaml", "--web.enable-lifecycle",
                            "--web.external-url=http://kube-prometheus-stack-prometheus.observability:9090",
                            "--web.route-prefix=/", "--storage.tsdb.path=/prometheus", "--storage.tsdb.wal-compression",
                            "--web.config.file=/etc/prometheus/web_config/web-config.yaml"]
    reloader = container(sts, "config-reloader")
    # the kps chart's --prometheus-config-reloader flag and its "0" resources (nothing set)
    assert reloader["image"] == "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"
    assert reloader["resources"] == {} and reloader["securityContext"] == CONTAINER_DEFAULT
    assert "--reload-url=http://127.0.0.1:9090/-/reload" in reloader["args"]
    assert reloader["ports"] == [{"name": "reloader-web", "containerPort": 8080, "protocol": "TCP"}]
    assert container(sts, "init-config-reloader", "initContainers")["ports"][0]["containerPort"] == 8081
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"] == {"name": "config", "secret": {"secretName": "prometheus-kube-prometheus-stack-prometheus"}}
    assert volumes["web-config"]["secret"]["secretName"] == "prometheus-kube-prometheus-stack-prometheus-web-config"
    assert volumes["prometheus-kube-prometheus-stack-prometheus-rulefiles-1"]["configMap"]["optional"] is True
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "prometheus-kube-prometheus-stack-prometheus-db"
    # the Secrets/ConfigMap the pod needs, and the governing Service
    for ref in ("Secret/prometheus-kube-prometheus-stack-prometheus",
                "Secret/prometheus-kube-prometheus-stack-prometheus-tls-assets-0",
                "Secret/prometheus-kube-prometheus-stack-prometheus-web-config",
                "ConfigMap/prometheus-kube-prometheus-stack-prometheus-rulefiles-0"):
        assert f"observability/{ref}" in out
    svc = out["observability/Service/prometheus-operated"].manifest
    assert svc["spec"] == {"clusterIP": "None", "ports": [{"name": "http-web", "port": 9090, "targetPort": "http-web"}],
                           "selector": {"app.kubernetes.io/name": "prometheus"}}


def test_prometheus_pod_security_comes_from_the_cr():
    """The operator sets no pod securityContext itself: without spec.securityContext the pods fail
    `restricted` (runAsNonRoot, seccomp); with the chart's (the platform's) they pass."""
    (sts,) = [o for o in operator_objects([obj(PROMETHEUS)]) if o.kind == "StatefulSet"]
    assert violations(sts) == []
    bare = copy.deepcopy(PROMETHEUS)
    del bare["spec"]["securityContext"]
    (sts,) = [o for o in operator_objects([obj(bare)]) if o.kind == "StatefulSet"]
    assert set(violations(sts)) == {"runAsNonRoot", "seccompProfile_restricted"}
    assert violations(sts, "baseline") == []


def test_prometheus_containers_are_strategic_merged():
    cr = copy.deepcopy(PROMETHEUS)
    cr["spec"]["containers"] = [
        {"name": "prometheus", "securityContext": {"allowPrivilegeEscalation": True},
         "env": [{"name": "GOMEMLIMIT", "value": "3GiB"}]},
        {"name": "oauth-proxy", "image": "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"},
    ]
    (sts,) = [o for o in operator_objects([obj(cr)]) if o.kind == "StatefulSet"]
    assert [c["name"] for c in pod_spec(sts)["containers"]] == ["prometheus", "config-reloader", "oauth-proxy"]
    prom = container(sts, "prometheus")
    assert prom["securityContext"] == {**CONTAINER_DEFAULT, "allowPrivilegeEscalation": True}
    assert prom["env"] == [{"name": "GOMEMLIMIT", "value": "3GiB"}] and prom["args"][0].startswith("--config.file=")
    assert "allowPrivilegeEscalation" in violations(sts) and "capabilities_restricted" in violations(sts)


def test_operator_deployment_flags_drive_the_reloader():
    out = operator_objects([obj(PROMETHEUS), obj(OPERATOR, release="kube-prometheus-stack")])
    (sts,) = [o for o in out if o.kind == "StatefulSet"]
    reloader = container(sts, "config-reloader")
    assert reloader["image"] == "registry.example/prometheus-config-reloader:v0.93.1"
    assert reloader["resources"] == {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}


def test_prometheus_without_storage_and_shards():
    cr = copy.deepcopy(PROMETHEUS)
    del cr["spec"]["storage"]
    cr["spec"]["shards"] = 2
    cr["spec"]["image"] = None
    cr["spec"]["version"] = "v3.5.0"
    out = [o for o in operator_objects([obj(cr)]) if o.kind == "StatefulSet"]
    assert [o.name for o in out] == ["prometheus-kube-prometheus-stack-prometheus",
                                     "prometheus-kube-prometheus-stack-prometheus-shard-1"]
    pod = pod_spec(out[1])
    assert {"name": "prometheus-kube-prometheus-stack-prometheus-db", "emptyDir": {}} in pod["volumes"]
    prom = container(out[1], "prometheus")
    assert prom["image"] == "quay.io/prometheus/prometheus:v3.5.0"  # --prometheus-default-base-image + version
    assert "--storage.tsdb.retention.time=30d" in prom["args"]       # < 3.11: retention flags
    assert {"name": "SHARD", "value": "1"} in container(out[1], "config-reloader")["env"]


def test_alertmanager_statefulset_and_service():
    out = by_ref(operator_objects([obj(ALERTMANAGER, "urn:kps")]))
    sts = out["observability/StatefulSet/alertmanager-kube-prometheus-stack-alertmanager"]
    am_name = "kube-prometheus-stack-alertmanager"
    selector = {"app.kubernetes.io/name": "alertmanager", "app.kubernetes.io/managed-by": "prometheus-operator",
                "app.kubernetes.io/instance": am_name, "alertmanager": am_name}
    assert sts.manifest["spec"]["selector"]["matchLabels"] == selector
    assert sts.manifest["spec"]["template"]["metadata"]["labels"] == {**selector, "app.kubernetes.io/version": "0.34.0"}
    pod = pod_spec(sts)
    assert pod["serviceAccountName"] == "kube-prometheus-stack-alertmanager" and pod["terminationGracePeriodSeconds"] == 120
    am = container(sts, "alertmanager")
    assert am["image"] == "quay.io/prometheus/alertmanager:v0.34.0" and am["securityContext"] == CONTAINER_DEFAULT
    assert [p["name"] for p in am["ports"]] == ["http-web", "mesh-tcp", "mesh-udp"]
    assert "--cluster.listen-address=" in am["args"]  # one replica: no cluster
    assert "--cluster.peer=alertmanager-kube-prometheus-stack-alertmanager-0.alertmanager-operated:9094" in am["args"]
    assert {"name": "SHARD", "value": "-1"} in container(sts, "config-reloader")["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config-volume"]["secret"]["secretName"] == "alertmanager-kube-prometheus-stack-alertmanager-generated"
    assert volumes["cluster-tls-config"]["secret"]["secretName"] == f"alertmanager-{am_name}-cluster-tls-config"
    for suffix in ("generated", "tls-assets-0", "web-config", "cluster-tls-config"):
        assert f"observability/Secret/alertmanager-kube-prometheus-stack-alertmanager-{suffix}" in out
    svc = out["observability/Service/alertmanager-operated"].manifest["spec"]
    assert svc["publishNotReadyAddresses"] is True and [p["port"] for p in svc["ports"]] == [9093, 9094, 9094]
    assert violations(sts) == []


def test_governing_services_are_created_once_per_namespace():
    second = copy.deepcopy(PROMETHEUS)
    second["metadata"]["name"] = "second"
    out = operator_objects([obj(PROMETHEUS), obj(second)])
    assert [o.name for o in out if o.kind == "Service"] == ["prometheus-operated"]
    assert {o.name for o in out if o.kind == "StatefulSet"} == {"prometheus-kube-prometheus-stack-prometheus", "prometheus-second"}


