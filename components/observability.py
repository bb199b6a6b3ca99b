"""Observability layer: kube-prometheus-stack (Prometheus, Alertmanager, Grafana, kube-state-metrics,
node-exporter), the platform's dashboards and alert rules (data in platform/), the OpenTelemetry
collector and LangFuse (PostgreSQL on RDS or in-cluster, ClickHouse on the official images as the
platform's own StatefulSets in components/langfuse_stores.py, blob storage in S3 through Pod Identity).

Every credential is generated once by pulumi_random (stable across updates), kept as a Pulumi
secret and handed to charts through Kubernetes Secrets referenced by name: no Helm value holds one.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import names
from components.config import ObservabilityConfig, QuotaConfig
from components.k8s import (
    PLATFORM_DIR,
    NodeSource,
    chart_image,
    container_security_context,
    custom_object,
    helm_release,
    labels,
    meta,
    platform_data,
    pod_security_context,
    resources,
    secret,
)
from components.langfuse import LANGFUSE_OTLP, LANGFUSE_SECRET, LANGFUSE_URL

NS = names.NS_OBSERVABILITY
# The release name is part of the Prometheus service name KEDA triggers query (names.PROMETHEUS_URL).
KPS_RELEASE = names.PROMETHEUS_RELEASE
PROMETHEUS_URL = names.PROMETHEUS_URL
GRAFANA_URL = f"http://{KPS_RELEASE}-grafana.{NS}.svc:80"
COLLECTOR = "otel-collector"
# The chart key (platform/charts.yaml) and release name of the monitoring.coreos.com CRDs.
MONITORING_CRDS = "prometheus-operator-crds"
PROM_EXPORTER_PORT = 8889
GRAFANA_SECRET = "grafana-admin"
COLLECTOR_SECRET = "otel-langfuse-auth"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
# node-exporter's one container (prometheus-node-exporter 4.56.1: kubeRBACProxy.enabled false, no
# sidecars or init containers by default); its DaemonSet rolls with maxUnavailable 1 and no surge
# (values.yaml updateStrategy), so observability-node never runs more pods than there are nodes.
NODE_EXPORTER_CPU_M, NODE_EXPORTER_CPU_LIMIT_M = 50, 200
NODE_EXPORTER_MEMORY_MI, NODE_EXPORTER_MEMORY_LIMIT_MI = 64, 128
NODE_EXPORTER_RESOURCES = resources(f"{NODE_EXPORTER_CPU_M}m", f"{NODE_EXPORTER_MEMORY_MI}Mi",
                                    cpu_limit=f"{NODE_EXPORTER_CPU_LIMIT_M}m",
                                    memory_limit=f"{NODE_EXPORTER_MEMORY_LIMIT_MI}Mi")


def node_exporter_quota(max_nodes: int, base: QuotaConfig) -> QuotaConfig:
    """The observability-node quota: a node-exporter pod on each of the most nodes the cluster can
    have (system nodes plus every Karpenter pool at its limits), times the container's requests and
    limits. `base` keeps its object counts and LimitRange defaults."""
    return base.model_copy(update={
        "cpu": f"{max_nodes * NODE_EXPORTER_CPU_M}m", "cpu_limit": f"{max_nodes * NODE_EXPORTER_CPU_LIMIT_M}m",
        "memory": f"{max_nodes * NODE_EXPORTER_MEMORY_MI}Mi",
        "memory_limit": f"{max_nodes * NODE_EXPORTER_MEMORY_LIMIT_MI}Mi", "pods": max_nodes})


@dataclass
class ObservabilityArgs:
    config: ObservabilityConfig
    storage_class: str
    # Resources the Kubernetes objects wait for (the tenancy layer's namespaces).
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # Prometheus, Alertmanager and Grafana volumes: rebuilt from scratch, the cluster's Delete class.
    cache_storage_class: str | None = None
    # Where the pods run (Karpenter's platform NodePool): the releases wait for it.
    nodes: NodeSource | None = None


def cost_dashboard(doc: dict[str, Any], price: float) -> dict[str, Any]:
    """The Cost Tracking dashboard with its `gpu_hour_price` constant set to `price`."""
    out = copy.deepcopy(doc)
    text = f"{price:g}"
    for var in out.get("templating", {}).get("list", []):
        if var.get("name") == "gpu_hour_price":
            var["query"] = text
            var["current"] = {**var.get("current", {}), "text": text, "value": text}
            var["options"] = [{"selected": True, "text": text, "value": text}]
    return out


def dashboards(price: float) -> dict[str, str]:
    """File stem -> dashboard JSON text, from platform/dashboards."""
    out = {}
    for path in sorted((PLATFORM_DIR / "dashboards").glob("*.json")):
        doc = json.loads(path.read_text())
        if path.stem == "cost-tracking":
            doc = cost_dashboard(doc, price)
        out[path.stem] = json.dumps(doc, indent=1, sort_keys=True)
    return out


class Observability(pulumi.ComponentResource):
    """Metrics, dashboards, alerts, traces. Public attributes: `monitoring_crds` (the release of the
    monitoring.coreos.com CRDs: what ServiceMonitor, PodMonitor and PrometheusRule users wait for),
    `otlp_grpc_endpoint`,
    `otlp_http_endpoint` (for agents and the gateway), `prometheus_url`, `grafana_url`,
    `langfuse_url`."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:observability:Observability", name, None, opts)
        cfg = args.config
        self._name = name
        self._ns_ready = ns_ready = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        grafana_secret, pk, sk = self._credentials()
        self.monitoring_crds = self._monitoring_crds()
        # --------------------------------------------------------- kube-prometheus-stack
        metrics_class = args.cache_storage_class or args.storage_class
        nodes = list(args.nodes or ())
        kps_values = kube_prometheus_stack_values(cfg, metrics_class)
        self.kube_prometheus_stack = helm_release(
            f"{name}-kube-prometheus-stack", "kube-prometheus-stack", namespace=NS, release_name=KPS_RELEASE,
            values=kps_values,
            # Nothing needs its pods Ready at deploy time: its users need the CRDs, which Helm
            # creates first and awaits until established (pkg/action/install.go installCRDs) before
            # the release completes; the PrometheusRule webhook stays failurePolicy Ignore with the
            # chart's defaults (admissionWebhooks.failurePolicy "": validatingWebhookConfiguration.yaml,
            # and the patch job patches the policy only when one is set); Grafana's datasource and
            # KEDA's Prometheus triggers retry. So Helm does not wait (nor, hence, roll back).
            await_ready=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, *nodes, grafana_secret,
                                                                 self.monitoring_crds]))
        # Custom resources need their namespace and the CRDs, not the stack (and go before the CRDs
        # on destroy: helm uninstall of the CRD release deletes the CRDs and every custom resource left).
        after_crds = pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, self.monitoring_crds])

        # --------------------------------------------------------- dashboards
        self.dashboards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{stem}",
                metadata=meta(f"grafana-dashboard-{stem}", NS,
                              labels=labels("grafana-dashboard", "dashboard", instance=stem, extra=DASHBOARD_LABEL)),
                data={f"{stem}.json": text}, opts=ns_ready)
            for stem, text in dashboards(cfg.gpu_hour_price).items()
        ]

        # --------------------------------------------------------- alerts and agent scrape
        alerts = platform_data("alerts.yaml")
        self.rules = custom_object(
            f"{name}-alerts", "monitoring.coreos.com/v1", "PrometheusRule", "agentic-platform-alerts",
            namespace=NS, labels=labels("agentic-platform-alerts", "alerts", extra={"release": KPS_RELEASE}),
            spec={"groups": alerts["groups"]}, opts=after_crds)
        # No ServiceMonitor for the agents: kagent 0.9.12 agents serve no /metrics (their Service has
        # one port, `http`, the A2A server: docs/agents.md), so one would select nothing.

        self._collector(cfg, pk, sk, nodes)

        svc = f"{COLLECTOR}.{NS}.svc.cluster.local"
        self.otlp_grpc_endpoint = f"http://{svc}:{names.PORT_OTLP_GRPC}"
        self.otlp_http_endpoint = f"http://{svc}:{names.PORT_OTLP_HTTP}"
        self.prometheus_url = PROMETHEUS_URL
        self.grafana_url = GRAFANA_URL
        self.langfuse_url = LANGFUSE_URL
        self.register_outputs({"otlpGrpcEndpoint": self.otlp_grpc_endpoint, "otlpHttpEndpoint": self.otlp_http_endpoint,
                               "grafanaUrl": GRAFANA_URL, "langfuseUrl": LANGFUSE_URL})


    def _monitoring_crds(self) -> pulumi.Resource:
        """The monitoring.coreos.com CRDs as their own release, right after the cluster (it needs
        nothing else: CRDs are cluster-scoped and the release record goes to kube-system), so every
        ServiceMonitor/PodMonitor/PrometheusRule user waits for the CRDs only, not for the whole
        stack and its nodes. prometheus-operator-crds 31.0.1 is operator v0.93.1, the version
        kube-prometheus-stack 88.5.3 runs (its Chart.yaml appVersion); its CRDs are the same as that
        chart's crds subchart. They are templates (charts/crds/templates), so Helm upgrades them
        with the release, and awaited: Helm's wait holds until each CRD is Established
        (pkg/kube/ready.go). Helm deletes templated CRDs on uninstall, and with them every
        ServiceMonitor, PodMonitor and PrometheusRule in the cluster, Pulumi's or not: the CRDs carry
        helm.sh/resource-policy: keep (the chart's `crds.annotations`, charts/crds/templates), so a
        replaced or removed release leaves them in place."""
        keep = {"crds": {"annotations": {names.HELM_RESOURCE_POLICY: names.HELM_KEEP}}}
        return helm_release(f"{self._name}-{MONITORING_CRDS}", MONITORING_CRDS, namespace=names.NS_SYSTEM,
                            values=keep, opts=pulumi.ResourceOptions(parent=self))

    def _credentials(self) -> tuple[pulumi.Resource, pulumi.Output[str], pulumi.Output[str]]:
        """Generated once: Grafana's admin Secret, LangFuse's credentials (its keys, salt,
        encryption key, store passwords). Returns the Grafana Secret and LangFuse's API key pair."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        # --------------------------------------------------------- generated credentials (once)
        def password(key: str, length: int = 32) -> random.RandomPassword:
            # No special characters: the values end up in URLs and Basic auth headers.
            return random.RandomPassword(f"{name}-{key}", length=length, special=False, opts=child)

        grafana_pw = password("grafana-admin")
        salt = password("langfuse-salt")
        nextauth = password("langfuse-nextauth")
        # 32 random bytes = the 64 hex characters LangFuse's ENCRYPTION_KEY must be. RandomBytes,
        # not RandomId: its outputs are secrets in state and CLI output (pulumi_random RandomBytes
        # marks `hex` and `base64` additional secret outputs; RandomId's are plain text).
        enc_key = random.RandomBytes(f"{name}-langfuse-encryption-key", length=32, opts=child)
        db_pw = password("langfuse-db")
        clickhouse_pw = password("langfuse-clickhouse")
        public_key = password("langfuse-public-key", 24)
        secret_key = password("langfuse-secret-key", 32)
        pk = pulumi.Output.secret(public_key.result.apply(lambda v: f"pk-lf-{v}"))
        sk = pulumi.Output.secret(secret_key.result.apply(lambda v: f"sk-lf-{v}"))

        grafana_secret = self._ns_secret("grafana-admin", GRAFANA_SECRET, "grafana",
                                   {"admin-user": "admin", "admin-password": grafana_pw.result})

        # --------------------------------------------------------- LangFuse credentials
        # Generated here, with the collector's copy of the API keys; the LangFuse release itself is
        # the LangFuse component, built after the data layer whose Redis it uses.
        creds: dict[str, pulumi.Input[str]] = {
            "salt": salt.result, "encryption-key": enc_key.hex, "nextauth-secret": nextauth.result,
            "postgres-password": db_pw.result, "clickhouse-password": clickhouse_pw.result,
            "public-key": pk, "secret-key": sk,
        }
        self.langfuse_credentials = self._ns_secret("langfuse-credentials", LANGFUSE_SECRET, "langfuse", creds)
        self.langfuse_db_password = pulumi.Output.secret(db_pw.result)

        return grafana_secret, pk, sk

    def _ns_secret(self, resource: str, secret_name: str, component: str, data: dict[str, pulumi.Input[str]]):
        return secret(f"{self._name}-{resource}", secret_name, NS, data, component=component, opts=self._ns_ready)

    def _collector(self, cfg: ObservabilityConfig, pk: pulumi.Output[str], sk: pulumi.Output[str],
                   nodes: list[pulumi.Resource]) -> None:
        name = self._name
        # --------------------------------------------------------- OpenTelemetry collector
        basic = pulumi.Output.all(pk, sk).apply(
            lambda ks: "Basic " + base64.b64encode(f"{ks[0]}:{ks[1]}".encode()).decode())
        collector_secret = self._ns_secret("otel-langfuse-auth", COLLECTOR_SECRET, "otel-collector", {"authorization": basic})
        otel_values = collector_values(cfg)
        self.collector = helm_release(
            f"{name}-otel-collector", "opentelemetry-collector", namespace=NS, release_name=COLLECTOR,
            values=otel_values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.monitoring_crds, collector_secret, *nodes]))



def kube_prometheus_stack_values(cfg: ObservabilityConfig, metrics_class: str) -> dict[str, Any]:
    """kube-prometheus-stack's values: Prometheus, Alertmanager, Grafana, kube-state-metrics and
    node-exporter as the platform runs them (metrics volumes on `metrics_class`)."""
    def pvc(size_gib: int) -> dict[str, Any]:
        return {"volumeClaimTemplate": {"spec": {
            "storageClassName": metrics_class, "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{size_gib}Gi"}}}}}
    # The operator's StatefulSets keep their PVCs when the Prometheus/Alertmanager goes
    # (StatefulSet default whenDeleted: Retain); metrics are not data to keep: delete them with it
    # (kube-prometheus-stack 88.5.3 values.yaml `persistentVolumeClaimRetentionPolicy`, passed to
    # the Prometheus/Alertmanager CR and by the operator to the StatefulSet).
    metrics_retention = {"whenDeleted": "Delete", "whenScaled": "Retain"}

    kps_values = {
        "fullnameOverride": KPS_RELEASE,
        # The monitoring.coreos.com CRDs are the prometheus-operator-crds release's (owned once):
        # `crds.enabled` is the condition of the chart's crds subchart (Chart.yaml dependencies), and
        # Helm drops a disabled subchart, its crds/ directory included, before installing.
        "crds": {"enabled": False},
        # EKS runs etcd, the scheduler and the controller manager out of reach; kube-proxy
        # binds its metrics to 127.0.0.1. Scraping them only yields TargetDown alerts.
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "defaultRules": {"rules": {"etcd": False, "kubeSchedulerAlerting": False,
                                   "kubeSchedulerRecording": False, "kubeControllerManager": False,
                                   "kubeProxy": False, "windows": False}},
        "prometheusOperator": {
            "resources": resources("100m", "256Mi", cpu_limit="500m"),
            # The operator gives the config-reloader (and its init twin) in every Prometheus and
            # Alertmanager pod these resources (its --config-reloader-cpu/memory-* flags); the
            # chart's default {} renders them as 0, i.e. none. The certificate hook jobs
            # (admissionWebhooks.patch: `create`, `patch`) also run with none by default.
            "prometheusConfigReloader": {"resources": resources("10m", "32Mi", cpu_limit="100m")},
            "admissionWebhooks": {"patch": {"resources": resources("10m", "32Mi", cpu_limit="100m")}},
        },
        "prometheus": {"prometheusSpec": {
            # Select every ServiceMonitor/PodMonitor/PrometheusRule/Probe in the cluster, not
            # only those labelled with this release.
            "serviceMonitorSelectorNilUsesHelmValues": False,
            "podMonitorSelectorNilUsesHelmValues": False,
            "ruleSelectorNilUsesHelmValues": False,
            "probeSelectorNilUsesHelmValues": False,
            "scrapeConfigSelectorNilUsesHelmValues": False,
            "retention": cfg.prometheus_retention,
            # Keep 10% of the volume free so the TSDB never fills it.
            "retentionSize": f"{int(cfg.prometheus_storage_gib * 0.9)}GB",
            "replicas": cfg.prometheus_replicas,
            "storageSpec": pvc(cfg.prometheus_storage_gib),
            "persistentVolumeClaimRetentionPolicy": metrics_retention,
            "resources": resources("500m", "2Gi", cpu_limit="2", memory_limit="4Gi"),
        }},
        "alertmanager": {"alertmanagerSpec": {
            "storage": pvc(cfg.alertmanager_storage_gib),
            "persistentVolumeClaimRetentionPolicy": metrics_retention,
            "resources": resources("50m", "128Mi", cpu_limit="200m"),
        }},
        "grafana": {
            "admin": {"existingSecret": GRAFANA_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "persistence": {"enabled": True, "type": "pvc", "storageClassName": metrics_class,
                            "size": f"{cfg.grafana_storage_gib}Gi"},
            # grafana 12.11.1 _pod.tpl renders `init-chown-data` (runAsUser 0, runAsNonRoot false,
            # CHOWN/DAC_OVERRIDE, no allowPrivilegeEscalation: false: values.yaml initChownData)
            # whenever persistence is on; Pod Security `restricted` in `observability` rejects the
            # pod. fsGroup 472 (values.yaml securityContext) already gives the volume to Grafana's
            # group (kubelet applies fsGroup on mount). The other containers are restricted as the
            # chart sets them: grafana (containerSecurityContext) and the dashboard/datasource
            # sidecars (sidecar.securityContext: no escalation, ALL dropped, RuntimeDefault; the
            # pod's runAsNonRoot/runAsUser 472).
            "initChownData": {"enabled": False},
            # templates/tests/test.yaml: a `helm.sh/hook: test` pod (bats image) with no
            # resources or security context (testFramework.*: {}), and its RBAC: not installed.
            "testFramework": {"enabled": False},
            "resources": resources("100m", "256Mi", cpu_limit="500m", memory_limit="512Mi"),
            "sidecar": {
                "dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1",
                               "searchNamespace": "ALL"},
                "resources": resources("50m", "128Mi", cpu_limit="200m"),
            },
        },
        "kube-state-metrics": {"resources": resources("50m", "128Mi", cpu_limit="200m", memory_limit="256Mi")},
        "prometheus-node-exporter": {
            # hostNetwork/hostPID/hostPath need Pod Security `privileged`: confined to its own
            # namespace so `observability` stays `restricted`.
            "namespaceOverride": names.NS_HOST_MONITORING,
            # Every node, including tainted GPU and tenant nodes.
            "tolerations": [{"operator": "Exists"}],
            "resources": NODE_EXPORTER_RESOURCES,
        },
    }
    return kps_values


def collector_values(cfg: ObservabilityConfig) -> dict[str, Any]:
    """The OpenTelemetry collector's values: OTLP in; traces to LangFuse, metrics to Prometheus."""
    image = chart_image("otel-collector")
    collector_values = {
        "mode": "deployment",
        "fullnameOverride": COLLECTOR,
        "replicaCount": cfg.collector_replicas,
        "image": image,
        "command": {"name": "otelcol-contrib"},
        "podSecurityContext": pod_security_context(10001),
        "securityContext": container_security_context(),
        "resources": resources("200m", "512Mi", cpu_limit="1", memory_limit="1Gi"),
        "extraEnvs": [{"name": "LANGFUSE_AUTH",
                       "valueFrom": {"secretKeyRef": {"name": COLLECTOR_SECRET, "key": "authorization"}}}],
        "ports": {
            "jaeger-compact": {"enabled": False}, "jaeger-thrift": {"enabled": False},
            "jaeger-grpc": {"enabled": False}, "zipkin": {"enabled": False},
            "metrics": {"enabled": True},
            "prom-exporter": {"enabled": True, "containerPort": PROM_EXPORTER_PORT,
                              "servicePort": PROM_EXPORTER_PORT, "protocol": "TCP"},
        },
        # None deletes the chart's default entries (Helm merge).
        "config": {
            "receivers": {"jaeger": None, "zipkin": None, "prometheus": None},
            "exporters": {
                "debug": None,
                "otlphttp/langfuse": {"endpoint": LANGFUSE_OTLP,
                                      "headers": {"Authorization": "${env:LANGFUSE_AUTH}"}},
                "prometheus": {"endpoint": f"${{env:MY_POD_IP}}:{PROM_EXPORTER_PORT}",
                               "resource_to_telemetry_conversion": {"enabled": True}},
            },
            "service": {"pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"],
                           "exporters": ["otlphttp/langfuse"]},
                "metrics": {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"],
                            "exporters": ["prometheus"]},
                "logs": None,
            }},
        },
        "serviceMonitor": {"enabled": True,
                           "metricsEndpoints": [{"port": "metrics"}, {"port": "prom-exporter"}]},
    }
    return collector_values
