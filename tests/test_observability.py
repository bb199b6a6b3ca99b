"""Observability layer: kube-prometheus-stack, dashboards, alerts, the collector, LangFuse."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from components import names
from components.config import ConfigError, QuotaConfig, validate
from components.model_weights import WEIGHTS_OF_LABEL
from components.observability import NODE_EXPORTER_RESOURCES, node_exporter_quota
from plan.admission.pod_security import check_pod
from plan.engine import ROOT
from tests.conftest import rendered, stack_doc, write_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
RDS = "aws:rds/instance:Instance"


def release(plan, name):
    (r,) = [r for r in plan.by_type(RELEASE) if r.inputs.get("name") == name]
    return r


def obs_config(stack):
    return stack_doc(stack)["config"]["agentic-platform:observability"]


def test_kube_prometheus_stack_release(dev_plan):
    r = release(dev_plan, "kube-prometheus-stack")
    v = r.inputs["values"]
    assert r.inputs["namespace"] == "observability" and r.inputs["version"] == "88.5.3"
    spec = v["prometheus"]["prometheusSpec"]
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues",
                "ruleSelectorNilUsesHelmValues"):
        assert spec[key] is False
    assert spec["retention"] == obs_config("dev")["prometheusRetention"]
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == names.STORAGE_CLASS_CACHE   # metrics: the Delete class
    assert claim["resources"]["requests"]["storage"] == f"{obs_config('dev')['prometheusStorageGiB']}Gi"
    for part in ("kubeEtcd", "kubeScheduler", "kubeControllerManager", "kubeProxy"):
        assert v[part]["enabled"] is False
    assert v["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert v["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    ne = v["prometheus-node-exporter"]
    assert ne["namespaceOverride"] == "observability-node"
    assert {"operator": "Exists"} in ne["tolerations"]
    # the prometheus-operator-crds release owns the CRDs (tests/test_first_deploy.py)
    assert v["crds"]["enabled"] is False


def test_dashboards_are_labelled_configmaps_and_price_follows_config(dev_plan, prod_plan):
    for plan, stack in ((dev_plan, "dev"), (prod_plan, "prod")):
        cms = [r for r in plan.by_type(CONFIGMAP) if r.inputs["metadata"]["name"].startswith("grafana-dashboard-")]
        assert len(cms) == 4
        for cm in cms:
            assert cm.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
            assert cm.inputs["metadata"]["namespace"] == "observability"
            (text,) = cm.inputs["data"].values()
            json.loads(text)
        (cost,) = [c for c in cms if c.inputs["metadata"]["name"] == "grafana-dashboard-cost-tracking"]
        doc = json.loads(cost.inputs["data"]["cost-tracking.json"])
        (var,) = [x for x in doc["templating"]["list"] if x["name"] == "gpu_hour_price"]
        price = f"{obs_config(stack)['gpuHourPrice']:g}"
        assert var["query"] == var["current"]["value"] == var["options"][0]["value"] == price


def test_alert_rules_and_no_agent_monitor(dev_plan):
    (rule,) = [r for r in dev_plan.by_type(RULE) if r.inputs["metadata"]["name"] == "agentic-platform-alerts"]
    rules = {r["alert"]: r for g in rule.inputs["spec"]["groups"] for r in g["rules"]}
    assert "> 10" in rules["AgentHighLatency"]["expr"] and rules["AgentHighLatency"]["for"] == "5m"
    assert "> 0.05" in rules["AgentHighErrorRate"]["expr"]
    # kagent 0.9.12 agents serve no metrics port (their Service has one port, `http`): a monitor
    # on port `metrics` selected nothing. None is declared, and no Service of the agents' namespace
    # is labelled for one.
    assert not [m for m in dev_plan.by_type(MONITOR) if m.inputs["metadata"]["name"] == "agent-metrics"]
    assert not [r for r in dev_plan.resources if "kagent.dev/monitored" in json.dumps(r.inputs)]
    # Custom resources wait for the release that brings their CRDs.
    assert release(dev_plan, "prometheus-operator-crds").urn in rule.dependencies


def test_grafana_runs_restricted_without_chown_init_or_test_pod(dev_plan):
    """grafana 12.11.1: `init-chown-data` (root, CHOWN/DAC_OVERRIDE) renders with persistence unless
    initChownData.enabled is false; fsGroup 472 gives the volume to Grafana. testFramework renders
    a `helm.sh/hook: test` pod with no resources. Checked on the values, and on the real render when
    the vendored archive and Helm are here."""
    g = release(dev_plan, "kube-prometheus-stack").inputs["values"]["grafana"]
    assert g["persistence"]["enabled"] is True and g["initChownData"] == {"enabled": False}
    assert g["testFramework"] == {"enabled": False}
    objects = rendered(dev_plan, "kube-prometheus-stack")
    (deploy,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-grafana")]
    pod = deploy["spec"]["template"]
    assert not pod["spec"].get("initContainers")
    assert pod["spec"]["securityContext"]["fsGroup"] == 472
    assert check_pod(pod.get("metadata") or {}, pod["spec"], "restricted") == []
    assert not [o for o in objects if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]


def test_metrics_volumes_go_with_their_statefulsets(any_plan):
    """Prometheus and Alertmanager PVCs are deleted with them (kube-prometheus-stack
    persistentVolumeClaimRetentionPolicy), on the cache class; Grafana on the cache class too."""
    v = release(any_plan, "kube-prometheus-stack").inputs["values"]
    for spec in (v["prometheus"]["prometheusSpec"], v["alertmanager"]["alertmanagerSpec"]):
        assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    assert v["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]["storageClassName"] \
        == names.STORAGE_CLASS_CACHE
    assert v["grafana"]["persistence"]["storageClassName"] == names.STORAGE_CLASS_CACHE


def test_langfuse_bundled_stores_are_off(any_plan):
    """The chart's bitnami subcharts (frozen bitnamilegacy images) are not deployed: the platform's own
    StatefulSets on official images are its stores (tests/test_langfuse_stores.py); no subchart key
    beyond the connection settings is set."""
    v = release(any_plan, "langfuse").inputs["values"]
    assert v["clickhouse"]["deploy"] is False and v["postgresql"]["deploy"] is False
    assert set(v["clickhouse"]) <= {"deploy", "host", "httpPort", "nativePort", "auth", "clusterEnabled"}
    assert set(v["postgresql"]) <= {"deploy", "host", "port", "auth"}
    assert "bitnami" not in json.dumps(v)
    pins = yaml.safe_load((ROOT / "platform" / "images.yaml").read_text())
    assert "langfuse-zookeeper" not in pins
    assert not [k for k, pin in pins.items() if "bitnami" in pin["repository"] or pin.get("maintained") is False]


def test_langfuse_waits_for_its_pod_identity_and_nodes(any_plan):
    """Pods that start before the association get no S3 credentials (IMDS is closed by hop limit 1)."""
    lf = release(any_plan, "langfuse")
    (assoc,) = [a for a in any_plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
                if a.inputs["namespace"] == "observability" and a.inputs["serviceAccount"] == "langfuse"]
    assert assoc.urn in lf.dependencies
    assert lf.inputs["values"]["langfuse"]["serviceAccount"]["name"] == assoc.inputs["serviceAccount"]


def test_dev_langfuse_postgres_volume_goes_with_its_statefulset(dev_plan, prod_plan):
    """protectData false (dev): the in-cluster PostgreSQL's PVC is deleted with its StatefulSet; prod
    (protectData) keeps ClickHouse's claims (and the data StorageClass their volumes)."""
    (pg,) = [o for o in dev_plan.objects if o.kind == "StatefulSet" and o.name == "langfuse-postgresql-server"]
    assert pg.manifest["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete",
                                                                           "whenScaled": "Retain"}
    (ch,) = [o for o in prod_plan.objects if o.kind == "StatefulSet" and o.name == "langfuse-clickhouse-server"]
    assert ch.manifest["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_node_exporter_quota_follows_the_node_count():

    q = node_exporter_quota(137, QuotaConfig(services=3))
    hard = q.hard()
    assert NODE_EXPORTER_RESOURCES["limits"] == {"cpu": "200m", "memory": "128Mi"}
    assert (hard["limits.cpu"], hard["limits.memory"], hard["pods"]) == ("27400m", "17536Mi", "137")
    assert (hard["requests.cpu"], hard["requests.memory"], hard["services"]) == ("6850m", "8768Mi", "3")


def test_collector(dev_plan):
    r = release(dev_plan, "otel-collector")
    v = r.inputs["values"]
    assert r.inputs["version"] == "0.170.0" and v["mode"] == "deployment"
    assert v["image"]["repository"] and v["image"]["tag"] and v["image"]["tag"] != "latest"
    assert v["ports"]["metrics"]["enabled"] is True
    exporters = v["config"]["exporters"]
    assert exporters["otlphttp/langfuse"]["endpoint"].endswith("/api/public/otel")
    assert exporters["otlphttp/langfuse"]["headers"]["Authorization"] == "${env:LANGFUSE_AUTH}"
    assert v["config"]["service"]["pipelines"]["traces"]["exporters"] == ["otlphttp/langfuse"]
    assert v["serviceMonitor"]["enabled"] is True
    assert v["securityContext"]["runAsNonRoot"] is True and v["resources"]["limits"]


def test_prod_langfuse_on_protected_rds(prod_plan):
    (db,) = [r for r in prod_plan.by_type(RDS) if r.name == "langfuse-db"]
    i = db.inputs
    assert db.protect is True
    assert i["storageEncrypted"] is True and i["kmsKeyId"]
    assert i["deletionProtection"] is True and i["multiAz"] is True
    assert i["skipFinalSnapshot"] is False and i["backupRetentionPeriod"] >= 1
    assert i["password"] == "[secret]"
    v = release(prod_plan, "langfuse").inputs["values"]
    assert v["postgresql"]["deploy"] is False
    assert v["postgresql"]["auth"]["existingSecret"] == "langfuse-credentials"
    assert v["s3"]["deploy"] is False


def test_dev_has_no_rds(dev_plan):
    assert not [r for r in dev_plan.by_type(RDS) if r.name.startswith("langfuse-")]
    v = release(dev_plan, "langfuse").inputs["values"]["postgresql"]
    assert v["deploy"] is False and v["host"] == "langfuse-postgresql-server.observability.svc.cluster.local"


def test_langfuse_uses_the_platform_redis_from_the_data_layer_secret(any_plan):
    v = release(any_plan, "langfuse").inputs["values"]
    assert v["redis"]["deploy"] is False and not v["redis"].get("host"), "no bundled Valkey, no host in values"
    env = v["langfuse"]["additionalEnv"]
    by_name = {e["name"]: e for e in env}
    names_in_order = [e["name"] for e in env]
    # $(VAR) expands only variables defined earlier in the list
    assert names_in_order.index("LANGFUSE_REDIS_URL") < names_in_order.index("REDIS_CONNECTION_STRING")
    assert by_name["REDIS_CONNECTION_STRING"] == {"name": "REDIS_CONNECTION_STRING", "value": "$(LANGFUSE_REDIS_URL)"}
    refs = {n: by_name[n]["valueFrom"]["secretKeyRef"] for n in ("LANGFUSE_REDIS_URL", "REDIS_TLS_ENABLED")}
    # the Secret the data layer really declares in observability, with the keys read here
    (conn,) = [r for r in any_plan.by_type("kubernetes:core/v1:Secret")
               if r.inputs["metadata"]["name"] == "redis-connection"
               and r.inputs["metadata"]["namespace"] == "observability"]
    for ref in refs.values():
        assert ref["name"] == "redis-connection" and ref["key"] in conn.inputs["stringData"]
    assert (refs["LANGFUSE_REDIS_URL"]["key"], refs["REDIS_TLS_ENABLED"]["key"]) == ("url", "tls")
    # the release waits for nothing it no longer uses: no Redis password of its own
    (creds,) = [r for r in any_plan.by_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == "langfuse-credentials"]
    assert "redis-password" not in creds.inputs["stringData"]


def test_no_generated_secret_in_plain_text(dev_plan, prod_plan):
    for plan in (dev_plan, prod_plan):
        for r in plan.by_type(RELEASE):
            assert "mock-generated-" not in json.dumps(r.inputs.get("values")), r.name
        assert "mock-generated-" not in json.dumps([r.inputs for r in plan.resources])
        v = release(plan, "langfuse").inputs["values"]["langfuse"]
        assert v["salt"] == {"secretKeyRef": {"name": "langfuse-credentials", "key": "salt"}}
        assert v["nextauth"]["secret"]["secretKeyRef"]["key"] == "nextauth-secret"


def test_stack_outputs(dev_plan):
    assert dev_plan.outputs["grafanaUrl"].startswith("http://kube-prometheus-stack-grafana.observability.svc")
    assert dev_plan.outputs["langfuseUrl"].startswith("http://langfuse-web.observability.svc")


@pytest.mark.slow
def test_bad_config_names_the_key(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:observability"] = {"gpuHourPrice": -1, "langfuse": {"database": "aurora",
                                                                                       "clickhouseReplicas": 2}}
    path = write_stack(tmp_path, doc)
    out = subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "agentic-platform:observability.gpuHourPrice" in text
    assert "agentic-platform:observability.langfuse.database" in text


def test_clickhouse_quorum_rule():

    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v))
           for k, v in stack_doc("dev")["config"].items() if k.startswith("agentic-platform:")}
    raw["observability"] = json.dumps({"langfuse": {"clickhouseReplicas": 2}})
    try:
        validate(raw, "dev")
    except ConfigError as err:
        assert "observability.langfuse.clickhouseReplicas" in str(err)
    else:
        raise AssertionError("2 ClickHouse replicas were accepted")


def test_alerts_data_parses():
    assert yaml.safe_load((ROOT / "platform" / "alerts.yaml").read_text())["groups"]


def test_the_weights_job_alert_selects_the_weights_jobs_and_no_other(any_plan):   # dev: none of either
    """ModelWeightsJobFailed (platform/alerts.yaml) matches Jobs by name: every weights Job the
    plan declares (its `weights-of` label), none of the charts' Jobs; and the PrometheusRule the
    plan admits carries it."""
    rules = [r for o in any_plan.objects if o.kind == "PrometheusRule"
             for g in o.manifest["spec"]["groups"] for r in g["rules"] if r.get("alert") == "ModelWeightsJobFailed"]
    assert len(rules) == 1
    (pattern,) = set(re.findall(r'job_name=~"([^"]+)"', rules[0]["expr"]))
    jobs = [o for o in any_plan.objects if o.kind == "Job"]
    weights = {o.name for o in jobs if WEIGHTS_OF_LABEL in (o.metadata.get("labels") or {})}
    assert {o.name for o in jobs if re.fullmatch(pattern, o.name)} == weights
    assert weights or not [o for o in any_plan.objects if o.kind == "Deployment" and o.name == "llama-3-70b"]
