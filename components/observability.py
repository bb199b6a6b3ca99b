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
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import langfuse_stores as stores
from components import names
from components.aws import PostgresSpec, pod_identity_role, policy_json, secure_bucket
from components.aws import postgres as postgres_database
from components.config import LangfuseConfig, ObservabilityConfig, QuotaConfig
from components.data import REDIS_SECRET
from components.k8s import (
    PLATFORM_DIR,
    NodeSource,
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

NS = names.NS_OBSERVABILITY
# The release name is part of the Prometheus service name KEDA triggers query (names.PROMETHEUS_URL).
KPS_RELEASE = names.PROMETHEUS_RELEASE
PROMETHEUS_URL = names.PROMETHEUS_URL
GRAFANA_URL = f"http://{KPS_RELEASE}-grafana.{NS}.svc:80"
COLLECTOR = "otel-collector"
LANGFUSE_RELEASE = "langfuse"
LANGFUSE_URL = f"http://{LANGFUSE_RELEASE}-web.{NS}.svc:{names.PORT_LANGFUSE}"
# LangFuse v3 ingests OTLP/HTTP traces here; otlphttp appends /v1/traces.
LANGFUSE_OTLP = f"{LANGFUSE_URL}/api/public/otel"
PROM_EXPORTER_PORT = 8889
GRAFANA_SECRET = "grafana-admin"
LANGFUSE_SECRET = "langfuse-credentials"
COLLECTOR_SECRET = "otel-langfuse-auth"
# LangFuse's queues on the platform's Redis. The chart (1.5.41) takes only the host as a value; a
# REDIS_CONNECTION_STRING in langfuse.additionalEnv replaces its own (and its REDIS_TLS_ENABLED), and
# its check for one looks at `value` only, so the URL (password URL-encoded, rediss:// for ElastiCache)
# comes from the data layer's Secret through a variable the `value` expands ($(VAR), defined first).
REDIS_ENV = (
    {"name": "LANGFUSE_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": REDIS_SECRET, "key": "url"}}},
    {"name": "REDIS_CONNECTION_STRING", "value": "$(LANGFUSE_REDIS_URL)"},
    {"name": "REDIS_TLS_ENABLED", "valueFrom": {"secretKeyRef": {"name": REDIS_SECRET, "key": "tls"}}},
)
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


def _image(key: str) -> dict[str, str]:
    pin = platform_data("images.yaml")[key]
    return {"repository": pin["repository"], "tag": str(pin["tag"])}


class Observability(pulumi.ComponentResource):
    """Metrics, dashboards, alerts, traces. Public attributes: `otlp_grpc_endpoint`,
    `otlp_http_endpoint` (for agents and the gateway), `prometheus_url`, `grafana_url`,
    `langfuse_url`."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:observability:Observability", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        ns_ready = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)

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

        def ns_secret(resource: str, secret_name: str, component: str, data: dict[str, pulumi.Input[str]]):
            return secret(f"{name}-{resource}", secret_name, NS, data, component=component, opts=ns_ready)

        grafana_secret = ns_secret("grafana-admin", GRAFANA_SECRET, "grafana",
                                   {"admin-user": "admin", "admin-password": grafana_pw.result})

        # --------------------------------------------------------- kube-prometheus-stack
        metrics_class = args.cache_storage_class or args.storage_class
        nodes = list(args.nodes or ())

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
            "crds": {"enabled": True},  # the chart owns the monitoring.coreos.com CRDs (once)
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
        self.kube_prometheus_stack = helm_release(
            f"{name}-kube-prometheus-stack", "kube-prometheus-stack", namespace=NS, release_name=KPS_RELEASE,
            values=kps_values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, *nodes, grafana_secret]))
        # Custom resources need the chart's CRDs and operator (and go before them on destroy).
        after_kps = pulumi.ResourceOptions(parent=self, depends_on=[self.kube_prometheus_stack])

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
            spec={"groups": alerts["groups"]}, opts=after_kps)
        # No ServiceMonitor for the agents: kagent 0.9.12 agents serve no /metrics (their Service has
        # one port, `http`, the A2A server: docs/agents.md), so one would select nothing.

        # --------------------------------------------------------- LangFuse credentials
        # Generated here, with the collector's copy of the API keys; the LangFuse release itself is
        # the LangFuse component, built after the data layer whose Redis it uses.
        creds: dict[str, pulumi.Input[str]] = {
            "salt": salt.result, "encryption-key": enc_key.hex, "nextauth-secret": nextauth.result,
            "postgres-password": db_pw.result, "clickhouse-password": clickhouse_pw.result,
            "public-key": pk, "secret-key": sk,
        }
        self.langfuse_credentials = ns_secret("langfuse-credentials", LANGFUSE_SECRET, "langfuse", creds)
        self.langfuse_db_password = pulumi.Output.secret(db_pw.result)

        # --------------------------------------------------------- OpenTelemetry collector
        basic = pulumi.Output.all(pk, sk).apply(
            lambda ks: "Basic " + base64.b64encode(f"{ks[0]}:{ks[1]}".encode()).decode())
        collector_secret = ns_secret("otel-langfuse-auth", COLLECTOR_SECRET, "otel-collector", {"authorization": basic})
        image = _image("otel-collector")
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
        self.collector = helm_release(
            f"{name}-otel-collector", "opentelemetry-collector", namespace=NS, release_name=COLLECTOR,
            values=collector_values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.kube_prometheus_stack, collector_secret, *nodes]))

        svc = f"{COLLECTOR}.{NS}.svc.cluster.local"
        self.otlp_grpc_endpoint = f"http://{svc}:{names.PORT_OTLP_GRPC}"
        self.otlp_http_endpoint = f"http://{svc}:{names.PORT_OTLP_HTTP}"
        self.prometheus_url = PROMETHEUS_URL
        self.grafana_url = GRAFANA_URL
        self.langfuse_url = LANGFUSE_URL
        self.register_outputs({"otlpGrpcEndpoint": self.otlp_grpc_endpoint, "otlpHttpEndpoint": self.otlp_http_endpoint,
                               "grafanaUrl": GRAFANA_URL, "langfuseUrl": LANGFUSE_URL})


@dataclass
class LangFuseArgs:
    config: LangfuseConfig
    cluster_name: pulumi.Input[str]          # the cluster's output: Pod Identity binds to the live cluster
    name_prefix: str                         # the configured cluster name: the final snapshot's name
    protect_data: bool
    storage_class: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    cluster_security_group_id: pulumi.Input[str]
    tags: dict[str, str]
    credentials: k8s.core.v1.Secret          # Observability.langfuse_credentials
    db_password: pulumi.Input[str]           # Observability.langfuse_db_password (secret)
    # The namespace, and the data layer's `redis-connection` Secret LangFuse's pods read at start.
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # Where its pods run (Karpenter's platform NodePool): the release waits for it.
    nodes: NodeSource | None = None


class LangFuse(pulumi.ComponentResource):
    """LangFuse: traces and LLM analytics. PostgreSQL on RDS (or in-cluster), ClickHouse (both
    in-cluster stores on maintained official images, components/langfuse_stores.py; the chart's
    bitnami subcharts off), blob storage in S3 through Pod Identity, queues on the platform's Redis.
    Built after the data layer so its release waits for the Redis connection Secret."""

    def __init__(self, name: str, args: LangFuseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:observability:LangFuse", name, None, opts)
        lf = args.config
        child = pulumi.ResourceOptions(parent=self)

        bucket = secure_bucket(f"{name}-blobs", purpose="langfuse", protect=args.protect_data,
                               tags=args.tags, opts=child)
        self.langfuse_bucket = bucket.bucket
        identity = pod_identity_role(f"{name}", cluster_name=args.cluster_name, namespace=NS,
                          service_account=LANGFUSE_RELEASE, policy=policy_json(bucket.read_write_statements()),
                          tags=args.tags, opts=child)

        self.database: aws.rds.Instance | None = None
        # ClickHouse (and, inCluster, PostgreSQL) on the official images, declared here
        # (components/langfuse_stores.py); the chart's bitnami subcharts stay off.
        self.stores = stores.LangFuseStores(f"{name}-stores", stores.LangFuseStoresArgs(
            clickhouse_replicas=lf.clickhouse_replicas, in_cluster_postgres=lf.database == "inCluster",
            protect_data=args.protect_data, storage_class=args.storage_class, secret=LANGFUSE_SECRET,
            clickhouse_password_key="clickhouse-password", postgres_password_key="postgres-password",
            depends_on=[*args.depends_on, args.credentials], nodes=args.nodes), opts=child)
        if lf.database == "rds":
            postgres = postgres_database(
                f"{name}-db", PostgresSpec("langfuse", lf.rds_engine_version, lf.rds_instance_class,
                                           lf.rds_storage_gib, lf.rds_multi_az, lf.rds_backup_retention_days),
                name_prefix=args.name_prefix, password=args.db_password, vpc_id=args.vpc_id,
                subnet_ids=args.private_subnet_ids, cluster_security_group_id=args.cluster_security_group_id,
                protect=args.protect_data, tags=args.tags, opts=child)
            self.database = postgres
            db_host: pulumi.Input[str] = postgres.address
            db_user = db_name = "langfuse"
        else:
            db_host, db_user, db_name = stores.POSTGRES_HOST, stores.POSTGRES_USER, stores.POSTGRES_DB
        # langfuse 1.5.41 _helpers.tpl "langfuse.databaseEnv": DATABASE_HOST/PORT/USERNAME/NAME from
        # these, DATABASE_PASSWORD from the Secret's userPasswordKey.
        postgresql: dict[str, Any] = {
            "deploy": False, "host": db_host, "port": stores.POSTGRES_PORT,
            "auth": {"username": db_user, "database": db_name, "existingSecret": LANGFUSE_SECRET,
                     "secretKeys": {"userPasswordKey": "postgres-password"}}}
        # langfuse 1.5.41 _helpers.tpl "langfuse.clickhouseEnv" with deploy false: CLICKHOUSE_URL
        # http://<host>:<httpPort>, CLICKHOUSE_MIGRATION_URL clickhouse://<host>:<nativePort>,
        # CLICKHOUSE_USER/PASSWORD from auth; clusterEnabled false renders CLICKHOUSE_CLUSTER_ENABLED
        # "false" (single node: LangFuse's unclustered migrations), true renders nothing (LangFuse's
        # default, true: ReplicatedMergeTree ON CLUSTER CLICKHOUSE_CLUSTER_NAME, set below).
        clickhouse: dict[str, Any] = {
            "deploy": False, "host": self.stores.clickhouse_host,
            "httpPort": stores.CLICKHOUSE_HTTP_PORT, "nativePort": stores.CLICKHOUSE_NATIVE_PORT,
            "auth": {"username": stores.CLICKHOUSE_USER, "existingSecret": LANGFUSE_SECRET,
                     "existingSecretKey": "clickhouse-password"},
            "clusterEnabled": lf.clickhouse_replicas > 1,
        }
        cluster_env = ([{"name": "CLICKHOUSE_CLUSTER_NAME", "value": stores.CLICKHOUSE_CLUSTER}]
                       if lf.clickhouse_replicas > 1 else [])

        def ref(key: str) -> dict[str, Any]:
            return {"secretKeyRef": {"name": LANGFUSE_SECRET, "key": key}}

        def env_ref(env: str, key: str) -> dict[str, Any]:
            return {"name": env, "valueFrom": ref(key)}

        web, worker = _image("langfuse-web"), _image("langfuse-worker")
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        langfuse_values = {
            "langfuse": {
                "salt": ref("salt"), "encryptionKey": ref("encryption-key"),
                "nextauth": {"url": LANGFUSE_URL, "secret": ref("nextauth-secret")},
                "features": {"telemetryEnabled": False, "signUpDisabled": True},
                "serviceAccount": {"create": True, "name": LANGFUSE_RELEASE},
                # Next.js writes its cache under the app directory: the root filesystem stays writable.
                "podSecurityContext": pod_security_context(1001, fs_group=1001),
                "securityContext": container_security_context(read_only_root=False),
                "image": {"pullPolicy": "IfNotPresent"},
                # The init project's API keys: the collector authenticates with the same pair.
                "additionalEnv": [
                    {"name": "LANGFUSE_INIT_ORG_ID", "value": "agentic-platform"},
                    {"name": "LANGFUSE_INIT_ORG_NAME", "value": "Agentic Platform"},
                    {"name": "LANGFUSE_INIT_PROJECT_ID", "value": "agentic-platform"},
                    {"name": "LANGFUSE_INIT_PROJECT_NAME", "value": "agentic-platform"},
                    env_ref("LANGFUSE_INIT_PROJECT_PUBLIC_KEY", "public-key"),
                    env_ref("LANGFUSE_INIT_PROJECT_SECRET_KEY", "secret-key"),
                    *REDIS_ENV,
                    *cluster_env,
                ],
                "web": {"image": {"repository": web["repository"], "tag": web["tag"]},
                        "replicas": lf.web_replicas,
                        "resources": resources("500m", "1Gi", cpu_limit="2", memory_limit="2Gi")},
                "worker": {"image": {"repository": worker["repository"], "tag": worker["tag"]},
                           "resources": resources("250m", "1Gi", cpu_limit="1", memory_limit="2Gi")},
            },
            "postgresql": postgresql,
            "clickhouse": clickhouse,
            # The platform's Redis (data layer: Valkey or ElastiCache), not the chart's own Valkey. Its
            # whole connection comes from the data layer's `redis-connection` Secret in this namespace
            # (see REDIS_ENV): no host, password or TLS flag in the values.
            "redis": {"deploy": False},
            # Blob storage: the S3 bucket through Pod Identity (no static keys, no MinIO).
            "s3": {"deploy": False, "bucket": bucket.bucket.bucket, "region": region, "forcePathStyle": False,
                   "eventUpload": {"prefix": "events/"}, "batchExport": {"prefix": "exports/"},
                   "mediaUpload": {"prefix": "media/"}},
        }
        self.langfuse = helm_release(
            f"{name}", "langfuse", namespace=NS, release_name=LANGFUSE_RELEASE, values=langfuse_values,
            # Its pods get S3 credentials from the Pod Identity agent only once the association exists
            # (IMDS is closed by hop limit 1); nodes to run on; and its stores, Ready (the pods run the
            # PostgreSQL and ClickHouse migrations at start). On destroy the release goes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, args.credentials,
                                                                 identity.association, *(args.nodes or ()),
                                                                 *self.stores.resources,
                                                                 *([self.database] if self.database else [])]))

        self.url = LANGFUSE_URL
        self.register_outputs({"url": LANGFUSE_URL})
