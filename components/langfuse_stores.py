"""LangFuse's stores on maintained official images, declared by the platform: ClickHouse
(`clickhouse/clickhouse-server`, replicated with its embedded ClickHouse Keeper) and, for
`langfuse.database: inCluster`, PostgreSQL (`postgres`). Each is a StatefulSet with its Services
(and ClickHouse's ConfigMap); the LangFuse chart's bitnami subcharts stay off (`clickhouse.deploy`
and `postgresql.deploy` false) and its values point at these Services.

Why not the chart's stores: LangFuse 1.5.41 bundles bitnami clickhouse 8.0.5 (with zookeeper 13.7.4)
and postgresql 16.4.9, whose templates run the bitnami image layout (/opt/bitnami/scripts/...), and
Bitnami's free images are frozen in `bitnamilegacy` (no updates since 2025-08-28): the official
images cannot run under those charts, so the platform runs them itself.

The official images as non-root (Pod Security `restricted` in `observability`):
- clickhouse/clickhouse-server (docker/server/entrypoint.sh of ClickHouse/ClickHouse): run as UID
  101 (the image's `clickhouse` user, uid/gid 101 in docker/server/Dockerfile.ubuntu), the entrypoint
  skips every chown (not root, and CLICKHOUSE_DO_NOT_CHOWN=1) and creates the data, tmp and
  user_files directories below /var/lib/clickhouse through `clickhouse su 101:101` — the PVC, which
  fsGroup 101 makes writable. CLICKHOUSE_SKIP_USER_SETUP=1 and no CLICKHOUSE_USER/CLICKHOUSE_PASSWORD
  in the container: otherwise the entrypoint writes users.d/default-user.xml (a read-only ConfigMap
  mount here) — with neither set it would lock `default` to localhost. The user comes from the
  ConfigMap's users.d file instead, its password read from the environment (`from_env`, substituted by
  ClickHouse's config preprocessor) out of the LangFuse Secret. Logs go to the console only.
- postgres (docker-library/postgres, Debian variant): UID/GID 999 is its `postgres` user; the
  entrypoint creates PGDATA (a subdirectory of the PVC, so the volume root's lost+found is no
  problem for initdb) with mode 0700 and needs no root when it already runs as that user.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import names
from components.clickhouse_config import (  # noqa: F401  (the ClickHouse names are part of this module's API)
    CLICKHOUSE,
    CLICKHOUSE_CLUSTER,
    CLICKHOUSE_DATA,
    CLICKHOUSE_HEADLESS,
    CLICKHOUSE_HTTP_PORT,
    CLICKHOUSE_IMAGE_KEY,
    CLICKHOUSE_INTERSERVER_PORT,
    CLICKHOUSE_NATIVE_PORT,
    CLICKHOUSE_PASSWORD_ENV,
    CLICKHOUSE_RESOURCES,
    CLICKHOUSE_STORAGE_GIB,
    CLICKHOUSE_UID,
    CLICKHOUSE_USER,
    CONFIG_FILES,
    KEEPER_PORT,
    KEEPER_RAFT_PORT,
    USERS_FILES,
    clickhouse_config,
    clickhouse_pod,
)
from components.k8s import (
    NodeSource,
    container_security_context,
    labels,
    meta,
    platform_data,
    pod_security_context,
    resources,
    selector,
)

NS = names.NS_OBSERVABILITY


# ------------------------------------------------------------------ PostgreSQL (inCluster)
POSTGRES = "langfuse-postgresql-server"         # StatefulSet and Service
POSTGRES_IMAGE_KEY = "langfuse-postgresql"      # platform/images.yaml
POSTGRES_UID = 999                              # the Debian image's `postgres` user and group
POSTGRES_PORT = 5432
POSTGRES_USER = "langfuse"                      # the same user and database as on RDS
POSTGRES_DB = "langfuse"
POSTGRES_DATA = "/var/lib/postgresql/data"      # the image's VOLUME; PGDATA is a subdirectory
POSTGRES_PGDATA = f"{POSTGRES_DATA}/pgdata"
POSTGRES_STORAGE_GIB = 10
POSTGRES_RESOURCES = resources("250m", "512Mi", cpu_limit="1", memory_limit="1Gi")

CLICKHOUSE_HOST = f"{CLICKHOUSE}.{NS}.svc.cluster.local"
POSTGRES_HOST = f"{POSTGRES}.{NS}.svc.cluster.local"


def image(key: str) -> str:
    """`registry/repository:tag` of a pin in platform/images.yaml."""
    pin = platform_data("images.yaml")[key]
    return f"{pin.get('registry', 'docker.io')}/{pin['repository']}:{pin['tag']}"


def image_tag(key: str) -> str:
    return str(platform_data("images.yaml")[key]["tag"])



def _checksum(data: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}\n{v}\n" for k, v in sorted(data.items())).encode()).hexdigest()


def _retention(protect_data: bool) -> dict[str, str]:
    """The StatefulSet's PVCs go with it unless data is protected (then they, and with the data
    StorageClass's Retain their volumes, stay)."""
    return {"whenDeleted": "Retain" if protect_data else "Delete", "whenScaled": "Retain"}


def _claim(storage_class: str, gib: int) -> dict[str, Any]:
    return {"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": f"{gib}Gi"}}}}


def _secret_env(env: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def clickhouse_labels() -> dict[str, str]:
    return labels("clickhouse", "langfuse-store", instance=CLICKHOUSE, version=image_tag(CLICKHOUSE_IMAGE_KEY))


def clickhouse_statefulset_spec(replicas: int, *, secret: str, password_key: str, storage_class: str,
                                protect_data: bool, config: dict[str, str]) -> dict[str, Any]:
    """The ClickHouse StatefulSet's spec."""
    replicated = replicas > 1
    lbl = clickhouse_labels()
    http = {"httpGet": {"path": "/ping", "port": "http"}}
    env: list[dict[str, Any]] = [
        _secret_env(CLICKHOUSE_PASSWORD_ENV, secret, password_key),
        # entrypoint.sh: no chown (it is not root anyway), no users.d file of its own.
        {"name": "CLICKHOUSE_DO_NOT_CHOWN", "value": "1"},
        {"name": "CLICKHOUSE_SKIP_USER_SETUP", "value": "1"},
    ]
    ports = [{"name": "http", "containerPort": CLICKHOUSE_HTTP_PORT},
             {"name": "native", "containerPort": CLICKHOUSE_NATIVE_PORT}]
    container: dict[str, Any] = {
        "name": "clickhouse", "image": image(CLICKHOUSE_IMAGE_KEY), "imagePullPolicy": "IfNotPresent",
        "env": env, "ports": ports, "resources": CLICKHOUSE_RESOURCES,
        "securityContext": container_security_context(),
        "startupProbe": {**http, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 60},
        "readinessProbe": {**http, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {**http, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "data", "mountPath": CLICKHOUSE_DATA},
            {"name": "config", "mountPath": "/etc/clickhouse-server/config.d", "readOnly": True},
            {"name": "users", "mountPath": "/etc/clickhouse-server/users.d", "readOnly": True},
            {"name": "logs", "mountPath": "/var/log/clickhouse-server"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if replicated:
        env += [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "CLICKHOUSE_REPLICA", "value": "$(POD_NAME)"},
            {"name": "CLICKHOUSE_INTERSERVER_HOST", "value": f"$(POD_NAME).{CLICKHOUSE_HEADLESS}.{NS}.svc.cluster.local"},
        ]
        ports += [{"name": "interserver", "containerPort": CLICKHOUSE_INTERSERVER_PORT},
                  {"name": "keeper", "containerPort": KEEPER_PORT},
                  {"name": "raft", "containerPort": KEEPER_RAFT_PORT}]
        # Keeper's server_id is the Raft id of this replica in cluster.xml: the pod's ordinal + 1
        # ($$ keeps Kubernetes from expanding `$(`), then the image's own entrypoint.
        container["command"] = ["/bin/bash", "-c"]
        container["args"] = ["export KEEPER_SERVER_ID=$$(( ${HOSTNAME##*-} + 1 )) && exec /entrypoint.sh"]
    present = set(config)
    volumes = [
        {"name": "config", "configMap": {"name": CLICKHOUSE, "items": [{"key": f, "path": f} for f in CONFIG_FILES
                                                                       if f in present]}},
        {"name": "users", "configMap": {"name": CLICKHOUSE, "items": [{"key": f, "path": f} for f in USERS_FILES]}},
        {"name": "logs", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {**pod_security_context(CLICKHOUSE_UID, fs_group=CLICKHOUSE_UID),
                            "fsGroupChangePolicy": "OnRootMismatch"},
        "containers": [container],
        "volumes": volumes,
    }
    if replicated:
        pod["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": selector("clickhouse", CLICKHOUSE)},
                                                "topologyKey": "kubernetes.io/hostname"}}]}}
    return {
        "replicas": replicas,
        "serviceName": CLICKHOUSE_HEADLESS,
        # Keeper needs its quorum: every replica starts at once (not one after the other becoming Ready).
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector("clickhouse", CLICKHOUSE)},
        "persistentVolumeClaimRetentionPolicy": _retention(protect_data),
        "template": {"metadata": {"labels": lbl, "annotations": {"checksum/config": _checksum(config)}},
                     "spec": pod},
        "volumeClaimTemplates": [_claim(storage_class, CLICKHOUSE_STORAGE_GIB)],
    }


def postgres_labels() -> dict[str, str]:
    return labels("postgresql", "langfuse-store", instance=POSTGRES, version=image_tag(POSTGRES_IMAGE_KEY))


def postgres_statefulset_spec(*, secret: str, password_key: str, storage_class: str,
                              protect_data: bool) -> dict[str, Any]:
    """The in-cluster PostgreSQL StatefulSet's spec (one instance)."""
    ready = {"exec": {"command": ["pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB, "-h", "127.0.0.1",
                                  "-p", str(POSTGRES_PORT)]}}
    container = {
        "name": "postgres", "image": image(POSTGRES_IMAGE_KEY), "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "POSTGRES_USER", "value": POSTGRES_USER},
            {"name": "POSTGRES_DB", "value": POSTGRES_DB},
            _secret_env("POSTGRES_PASSWORD", secret, password_key),
            {"name": "PGDATA", "value": POSTGRES_PGDATA},
        ],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
        "resources": POSTGRES_RESOURCES,
        "securityContext": container_security_context(),
        # initdb on the first start: the entrypoint's temporary server listens on the socket only,
        # so pg_isready over TCP answers once the real server is up.
        "startupProbe": {**ready, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 60},
        "readinessProbe": {**ready, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {**ready, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "data", "mountPath": POSTGRES_DATA},
            {"name": "run", "mountPath": "/var/run/postgresql"},   # socket and lock file
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    lbl = postgres_labels()
    return {
        "replicas": 1,
        "serviceName": POSTGRES,
        "selector": {"matchLabels": selector("postgresql", POSTGRES)},
        "persistentVolumeClaimRetentionPolicy": _retention(protect_data),
        "template": {"metadata": {"labels": lbl}, "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 60,
            "securityContext": {**pod_security_context(POSTGRES_UID, fs_group=POSTGRES_UID),
                                "fsGroupChangePolicy": "OnRootMismatch"},
            "containers": [container],
            "volumes": [{"name": "run", "emptyDir": {"sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        }},
        "volumeClaimTemplates": [_claim(storage_class, POSTGRES_STORAGE_GIB)],
    }


# ------------------------------------------------------------------ the component

@dataclass
class LangFuseStoresArgs:
    clickhouse_replicas: int
    in_cluster_postgres: bool
    protect_data: bool
    storage_class: str
    secret: str                                  # the LangFuse Secret (langfuse-credentials)
    clickhouse_password_key: str
    postgres_password_key: str
    # The namespace, the StorageClass and the Secret; and where the pods run.
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    nodes: NodeSource | None = None


class LangFuseStores(pulumi.ComponentResource):
    """ClickHouse (and in-cluster PostgreSQL) for LangFuse. `resources` are what the LangFuse
    release waits for; `clickhouse_host`/`postgres_host` are the Services it connects to."""

    def __init__(self, name: str, args: LangFuseStoresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:observability:LangFuseStores", name, None, opts)
        self._args = args
        self.resources: list[pulumi.Resource] = []
        self._clickhouse(name)
        self.clickhouse_host = CLICKHOUSE_HOST
        self.postgres: k8s.apps.v1.StatefulSet | None = None
        self.postgres_host: str | None = None
        if args.in_cluster_postgres:
            self._postgres(name)
            self.postgres_host = POSTGRES_HOST
        self.register_outputs({"clickhouseHost": CLICKHOUSE_HOST, "postgresHost": self.postgres_host})

    def _clickhouse(self, name: str) -> None:
        """ClickHouse: its configuration, client and headless Services, StatefulSet and (replicated) PDB."""
        args = self._args
        deps = [*args.depends_on, *(args.nodes or ())]
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        replicas = args.clickhouse_replicas
        ch_lbl = clickhouse_labels()
        ch_sel = selector("clickhouse", CLICKHOUSE)
        config = clickhouse_config(replicas)
        self.clickhouse_config = k8s.core.v1.ConfigMap(
            f"{name}-clickhouse", metadata=meta(CLICKHOUSE, NS, labels=ch_lbl), data=config, opts=child)
        client_ports = [{"name": "http", "port": CLICKHOUSE_HTTP_PORT, "targetPort": "http"},
                        {"name": "native", "port": CLICKHOUSE_NATIVE_PORT, "targetPort": "native"}]
        peer_ports = [{"name": "interserver", "port": CLICKHOUSE_INTERSERVER_PORT, "targetPort": "interserver"},
                      {"name": "keeper", "port": KEEPER_PORT, "targetPort": "keeper"},
                      {"name": "raft", "port": KEEPER_RAFT_PORT, "targetPort": "raft"}] if replicas > 1 else []
        self.clickhouse_service = k8s.core.v1.Service(
            f"{name}-clickhouse", metadata=meta(CLICKHOUSE, NS, labels=ch_lbl),
            spec={"selector": ch_sel, "ports": client_ports}, opts=child)
        # Pod DNS names for the replicas (Keeper's Raft, remote_servers, interserver), published
        # before they are Ready: the Raft quorum forms before any replica is.
        self.clickhouse_headless = k8s.core.v1.Service(
            f"{name}-clickhouse-headless", metadata=meta(CLICKHOUSE_HEADLESS, NS, labels=ch_lbl),
            spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": ch_sel,
                  "ports": client_ports + peer_ports}, opts=child)
        self.clickhouse = k8s.apps.v1.StatefulSet(
            f"{name}-clickhouse", metadata=meta(CLICKHOUSE, NS, labels=ch_lbl),
            spec=clickhouse_statefulset_spec(replicas, secret=args.secret, password_key=args.clickhouse_password_key,
                                             storage_class=args.storage_class, protect_data=args.protect_data,
                                             config=config),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*deps, self.clickhouse_config,
                                                                 self.clickhouse_headless]))
        self.resources += [self.clickhouse_config, self.clickhouse_service, self.clickhouse_headless, self.clickhouse]
        if replicas > 1:
            # Voluntary disruptions (node drains, consolidation) take one replica at a time: the
            # Keeper quorum and the other replicas stay.
            self.resources.append(k8s.policy.v1.PodDisruptionBudget(
                f"{name}-clickhouse", metadata=meta(CLICKHOUSE, NS, labels=ch_lbl),
                spec={"maxUnavailable": 1, "selector": {"matchLabels": ch_sel}}, opts=child))

    def _postgres(self, name: str) -> None:
        """The in-cluster PostgreSQL (postgres.inCluster): its Service and StatefulSet."""
        args = self._args
        deps = [*args.depends_on, *(args.nodes or ())]
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        pg_lbl = postgres_labels()
        pg_sel = selector("postgresql", POSTGRES)
        self.postgres_service = k8s.core.v1.Service(
            f"{name}-postgresql", metadata=meta(POSTGRES, NS, labels=pg_lbl),
            spec={"selector": pg_sel, "ports": [{"name": "postgres", "port": POSTGRES_PORT,
                                                 "targetPort": "postgres"}]}, opts=child)
        self.postgres = k8s.apps.v1.StatefulSet(
            f"{name}-postgresql", metadata=meta(POSTGRES, NS, labels=pg_lbl),
            spec=postgres_statefulset_spec(secret=args.secret, password_key=args.postgres_password_key,
                                           storage_class=args.storage_class, protect_data=args.protect_data),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*deps, self.postgres_service]))
        self.resources += [self.postgres_service, self.postgres]
