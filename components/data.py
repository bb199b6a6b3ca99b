"""Data layer: the S3 document store, Milvus (vector search) on S3, and Redis (session cache) as
in-cluster Valkey or ElastiCache, with connection details handed to consumers as Secrets.

Nothing is lost by accident: with `protectData` the buckets, their KMS keys, the ElastiCache group
and its key are protected, and PVC-backed stores sit on the data StorageClass (names.STORAGE_CLASS_DATA), whose reclaim
policy is then Retain."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import names
from components.aws import SecureBucket, pod_identity_role, policy_json, secure_bucket, snapshot_suffix
from components.config import DataConfig, MilvusConfig, RedisConfig, WorkloadSize
from components.k8s import (
    PART_OF,
    NodeSource,
    container_security_context,
    helm_release,
    pod_security_context,
    resources,
    secret,
)
from domain.pins import image_pin as image

MILVUS_RELEASE = "milvus"
# The chart names its ServiceAccount from serviceAccount.name; the Pod Identity association binds
# exactly this name, so both come from here. (milvus-helm milvus-5.0.19 _helpers.tpl
# "milvus.serviceAccount": `serviceAccount.name` when create is true; every component Deployment,
# the streaming node's included, runs under it.)
MILVUS_SERVICE_ACCOUNT = "milvus"
VALKEY_RELEASE = "valkey"
# Valkey chart 0.11.0 (valkey-io/valkey-helm tag valkey-0.11.0, values.yaml and templates checked):
# auth.{enabled,usersExistingSecret,aclUsers.<user>.permissions}, replica.{enabled,replicas,
# replicationUser,persistence.{size,storageClass}}, dataStorage.{enabled,requestedSize,className,
# keepPvc}, metrics.{enabled,exporter.*,serviceMonitor.enabled}; the primary Service is `<fullname>`
# (pod -0 in replica mode) and the exporter reads REDIS_PASSWORD from the same users Secret.
VALKEY_USERS_SECRET = "valkey-users"   # the chart's auth.usersExistingSecret: key = ACL user name
REDIS_SECRET = "redis-connection"
MILVUS_SECRET = "milvus-connection"
# ElastiCache AUTH tokens allow only these specials (and no @ " /).
ELASTICACHE_TOKEN_SPECIALS = "!&#$^<>-"
# Milvus writes its rendered config and local caches below /milvus and /var/lib/milvus at start,
# so its root filesystem cannot be read-only; everything else of `restricted` holds.
MILVUS_UID = 1000
ETCD_UID = 1001   # the bitnami-layout etcd image's user


def _size(w: WorkloadSize) -> dict[str, Any]:
    return resources(w.cpu, w.memory, cpu_limit=w.cpu_limit, memory_limit=w.memory_limit)


@dataclass
class DataArgs:
    config: DataConfig
    # The EKS cluster's name as a Pulumi output: the Pod Identity association waits for the cluster.
    cluster_name: pulumi.Input[str]
    # The same name as plain text, for AWS names that must not wait for the cluster (ElastiCache).
    name_prefix: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    # The EKS cluster security group: nodes carry it and, with the VPC CNI, pods use node ENI
    # addresses, so it stands for "the cluster's nodes and pods".
    cluster_security_group_id: pulumi.Input[str]
    storage_class: str
    protect_data: bool
    tags: dict[str, str]
    # Platform namespaces by name (from tenancy); objects in a namespace wait for it.
    namespaces: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    # What the Helm releases wait for: the StorageClass, and the Prometheus operator CRDs their
    # ServiceMonitors need. Also the destroy order: releases (and their PVCs) go before the
    # controllers that delete EBS volumes.
    depends_on: Sequence[pulumi.Resource] = ()
    # Where Milvus and Valkey run (Karpenter's platform NodePool): the releases wait for it.
    nodes: NodeSource | None = None


class DataServices(pulumi.ComponentResource):
    """S3 document store, Milvus, Redis and the connection Secrets of their consumers."""

    documents_bucket: pulumi.Output[str]
    milvus_address: str
    redis_host: pulumi.Output[str]
    redis_address: pulumi.Output[str]
    redis_secret_name: str
    milvus_secret_name: str

    def __init__(self, name: str, args: DataArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:data:DataServices", name, None, opts)
        cfg = args.config
        self._args = args
        # AWS resources: parent only, so they need nothing but the network and build while EKS does.
        self._aws = pulumi.ResourceOptions(parent=self)

        # --- document store
        self.documents = secure_bucket(f"{name}-documents", purpose="documents", protect=args.protect_data,
                                       tags=args.tags, opts=self._aws)
        self.documents_bucket = self.documents.bucket.bucket

        # --- Milvus
        self.milvus_bucket = secure_bucket(f"{name}-milvus", purpose="milvus", protect=args.protect_data,
                                           tags=args.tags, opts=self._aws)
        self.milvus_release = self._milvus(name, cfg.milvus, cfg.service_monitors)
        self.milvus_host = f"{MILVUS_RELEASE}.{names.NS_DATA}.svc.cluster.local"
        self.milvus_port = names.PORT_MILVUS
        self.milvus_address = f"{self.milvus_host}:{self.milvus_port}"

        # --- Redis
        if cfg.redis.mode == "elasticache":
            host, password, tls = self._elasticache(name, cfg.redis)
        else:
            host, password, tls = self._valkey(name, cfg.redis, cfg.service_monitors)
        self.redis_host = pulumi.Output.from_input(host)
        self.redis_port = names.PORT_REDIS
        self.redis_tls = tls
        # (None only under the offline plan's mocks, which leave the ElastiCache endpoint unknown.)
        self.redis_address = self.redis_host.apply(lambda h: h and f"{h}:{names.PORT_REDIS}")

        # --- connection details for consumers
        self.redis_secret_name = REDIS_SECRET
        self.milvus_secret_name = MILVUS_SECRET
        self.connection_secrets: list[k8s.core.v1.Secret] = []
        for ns in (names.NS_AGENTS, names.NS_OBSERVABILITY):  # agents' memory, LangFuse
            self.connection_secrets.append(self._redis_secret(name, ns, password))
        self.connection_secrets.append(self._milvus_secret(name, names.NS_AGENTS))

        self.register_outputs({"documentsBucket": self.documents_bucket, "milvusAddress": self.milvus_address,
                               "redisAddress": self.redis_address})

    # ------------------------------------------------------------------------------ helpers

    def _k8s(self, namespace: str, *depends: pulumi.Resource) -> pulumi.ResourceOptions:
        ns = self._args.namespaces.get(namespace)
        return pulumi.ResourceOptions(parent=self, depends_on=[*([ns] if ns else []), *depends])

    # ------------------------------------------------------------------------------ Milvus

    def _milvus(self, name: str, m: MilvusConfig, service_monitor: bool) -> k8s.helm.v3.Release:
        a = self._args
        bucket: SecureBucket = self.milvus_bucket
        identity = pod_identity_role(
            f"{name}-milvus", cluster_name=a.cluster_name, namespace=names.NS_DATA,
            service_account=MILVUS_SERVICE_ACCOUNT, policy=policy_json(bucket.read_write_statements()),
            tags=a.tags, opts=self._aws)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        cluster = m.mode == "cluster"
        pin = image("milvus")
        etcd_pin = image("milvus-etcd")
        pod_sc = pod_security_context(MILVUS_UID, fs_group=MILVUS_UID)
        ctr_sc = container_security_context(read_only_root=False)

        def part(w: WorkloadSize, **extra: Any) -> dict[str, Any]:
            return {"replicas": w.replicas, "resources": _size(w), **extra}

        # Keys checked against milvus-helm tag milvus-5.0.19 (values.yaml, templates/config.tpl):
        # externalS3.{host,port,useSSL,bucketName,rootPath,useIAM,cloudProvider,region,useVirtualHost}
        # render into milvus.yaml's minio section; useIAM with no keys uses the AWS credential chain.
        # streaming.woodpecker.{embedded,storage.type} and woodpecker.enabled (mq type woodpecker; the
        # Woodpecker StatefulSet only when embedded is false); etcd is bitnami etcd 8.12.0
        # (replicaCount, persistence.*, pdb.create, podSecurityContext/containerSecurityContext with
        # `enabled`); metrics.serviceMonitor.enabled.
        values: dict[str, Any] = {
            "cluster": {"enabled": cluster},
            "image": {"all": {"repository": pin["repository"], "tag": pin["tag"], "pullPolicy": "IfNotPresent"}},
            "labels": {"app.kubernetes.io/part-of": PART_OF},
            "securityContext": pod_sc,
            "containerSecurityContext": ctr_sc,
            "serviceAccount": {"create": True, "name": MILVUS_SERVICE_ACCOUNT},
            "service": {"type": "ClusterIP", "port": names.PORT_MILVUS},
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": service_monitor}},
            # Object storage: S3 through Pod Identity (the SDK's default credential chain), no keys.
            "minio": {"enabled": False},
            "externalS3": {
                "enabled": True, "host": region.apply(lambda r: f"s3.{r}.amazonaws.com"), "port": "443",
                "useSSL": True, "bucketName": bucket.bucket.bucket, "rootPath": "milvus", "useIAM": True,
                "cloudProvider": "aws", "region": region, "useVirtualHost": True,
            },
            # Write-ahead log: Woodpecker embedded in the streaming node, persisted to the same S3
            # bucket (storage type "minio" = S3 API). `woodpecker.enabled` only selects it as the
            # message queue; with `embedded` no separate Woodpecker StatefulSet is rendered.
            "streaming": {"enabled": True, "woodpecker": {"embedded": True, "storage": {"type": "minio"}}},
            "woodpecker": {"enabled": cluster and m.message_queue == "woodpecker"},
            "pulsarv3": {"enabled": False},
            "pulsar": {"enabled": False},
            "kafka": {"enabled": False},
            "etcd": {
                "replicaCount": m.etcd.replicas,
                "image": {"repository": etcd_pin["repository"], "tag": etcd_pin["tag"]},
                "persistence": {"enabled": True, "storageClass": a.storage_class, "size": f"{m.etcd.storage_gib}Gi"},
                "resources": resources(m.etcd.cpu, m.etcd.memory),
                "podSecurityContext": {"enabled": True, "fsGroup": ETCD_UID},
                "containerSecurityContext": {"enabled": True, "runAsUser": ETCD_UID,
                                             **container_security_context(read_only_root=False)},
                # A majority must stay up through voluntary disruptions (node drains, consolidation).
                "pdb": {"create": m.etcd.replicas > 1},
                # bitnami etcd 8.12.0 values.yaml persistentVolumeClaimRetentionPolicy: without it the
                # StatefulSet's PVCs outlive `helm uninstall`; kept only when data is protected.
                "persistentVolumeClaimRetentionPolicy": {"enabled": not a.protect_data, "whenDeleted": "Delete",
                                                         "whenScaled": "Retain"},
            },
        }
        if cluster:
            values |= {
                "proxy": part(m.proxy, enabled=True),
                "queryNode": part(m.query_node, enabled=True),
                "dataNode": part(m.data_node, enabled=True),
                "indexNode": {"enabled": False},   # folded into the data node in 2.6
                "mixCoordinator": part(m.mix_coordinator, enabled=True,
                                       activeStandby={"enabled": m.mix_coordinator.replicas > 1}),
                "streamingNode": part(m.streaming_node),
            }
        else:
            values["standalone"] = {
                "resources": _size(m.standalone),
                "messageQueue": m.message_queue,
                "persistence": {"enabled": True, "persistentVolumeClaim": {
                    "storageClass": a.storage_class, "size": f"{m.standalone_disk_gib}Gi"}},
            }
        # Pods must not start before their role is bound, or the S3 SDK falls back to the node's.
        return helm_release(f"{name}-milvus", "milvus", namespace=names.NS_DATA, values=values,
                            release_name=MILVUS_RELEASE,
                            opts=self._k8s(names.NS_DATA, identity.association, *a.depends_on, *(a.nodes or ())))

    # ------------------------------------------------------------------------------ Redis

    def _valkey(self, name: str, r: RedisConfig, service_monitor: bool) -> tuple[str, pulumi.Output[str], bool]:
        a = self._args
        # Alphanumeric: it goes into ACL config and URLs unquoted. 32 chars ≈ 190 bits.
        password = random.RandomPassword(f"{name}-valkey-password", length=32, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))
        users = secret(f"{name}-valkey-users", VALKEY_USERS_SECRET, names.NS_DATA, {"default": password.result},
                       app="valkey", component="auth", opts=self._k8s(names.NS_DATA))
        pin, exporter = image("valkey"), image("redis-exporter")
        values: dict[str, Any] = {
            "image": {"registry": pin["registry"], "repository": pin["repository"], "tag": pin["tag"]},
            "commonLabels": {"app.kubernetes.io/part-of": PART_OF},
            "podSecurityContext": pod_security_context(1000, fs_group=1000),
            "securityContext": {**container_security_context(), "runAsUser": 1000},
            "resources": resources(r.cpu, r.memory),
            "initResources": resources("50m", "64Mi"),
            "readinessProbe": {"enabled": True},
            "auth": {"enabled": True, "usersExistingSecret": VALKEY_USERS_SECRET,
                     "aclUsers": {"default": {"permissions": "~* &* +@all"}}},
            "metrics": {
                "enabled": True,
                "exporter": {"image": {"registry": exporter["registry"], "repository": exporter["repository"],
                                       "tag": exporter["tag"]},
                             "resources": resources("50m", "64Mi"),
                             "securityContext": container_security_context()},
                "serviceMonitor": {"enabled": service_monitor},
            },
        }
        if r.replicas > 0:
            values["replica"] = {"enabled": True, "replicas": r.replicas, "replicationUser": "default",
                                 "persistence": {"size": f"{r.storage_gib}Gi", "storageClass": a.storage_class}}
            if not a.protect_data:
                # valkey-helm 0.11.0 templates/statefulset.yaml renders
                # replica.persistentVolumeClaimRetentionPolicy into the StatefulSet.
                values["replica"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete",
                                                                             "whenScaled": "Retain"}
        else:
            # keepPvc: the chart annotates the claim helm.sh/resource-policy=keep, so an uninstall
            # leaves the data behind when data is protected.
            values["dataStorage"] = {"enabled": True, "requestedSize": f"{r.storage_gib}Gi",
                                     "className": a.storage_class, "keepPvc": a.protect_data}
        self.valkey_release = helm_release(
            f"{name}-valkey", "valkey", namespace=names.NS_DATA, values=values, release_name=VALKEY_RELEASE,
            opts=self._k8s(names.NS_DATA, users, *a.depends_on, *(a.nodes or ())))
        return f"{VALKEY_RELEASE}.{names.NS_DATA}.svc.cluster.local", password.result, False

    def _elasticache(self, name: str, r: RedisConfig) -> tuple[pulumi.Output[str], pulumi.Output[str], bool]:
        """A replication group beside the cluster, not in it: it depends on the network only (and
        its security-group rule on the cluster security group), so it builds while EKS does."""
        a = self._args
        aws_opts = self._aws
        keep = pulumi.ResourceOptions(parent=self, protect=a.protect_data)
        token = random.RandomPassword(f"{name}-redis-auth", length=64, special=True,
                                      override_special=ELASTICACHE_TOKEN_SPECIALS,
                                      opts=pulumi.ResourceOptions(parent=self))
        key = aws.kms.Key(f"{name}-redis", description="ElastiCache at-rest encryption of the session cache",
                          enable_key_rotation=True, deletion_window_in_days=30, tags=a.tags, opts=keep)
        subnets = aws.elasticache.SubnetGroup(f"{name}-redis", name=names.redis_subnet_group_name(a.name_prefix),
                                              description="Private subnets of the platform",
                                              subnet_ids=list(a.private_subnet_ids), tags=a.tags, opts=aws_opts)
        sg = aws.ec2.SecurityGroup(f"{name}-redis", vpc_id=a.vpc_id,
                                   description="ElastiCache: Redis port from the cluster's nodes and pods only",
                                   tags={**a.tags, "Name": f"{name}-redis"}, opts=aws_opts)
        # The only link to the cluster: the source security group. Pods use node ENI addresses with
        # the VPC CNI (no security groups for pods), so the cluster SG admits both nodes and pods.
        aws.vpc.SecurityGroupIngressRule(f"{name}-redis-from-cluster", security_group_id=sg.id,
                                         referenced_security_group_id=a.cluster_security_group_id,
                                         ip_protocol="tcp", from_port=names.PORT_REDIS, to_port=names.PORT_REDIS,
                                         description="Redis from EKS nodes and pods",
                                         opts=pulumi.ResourceOptions(parent=sg))
        # LangFuse's queues (BullMQ) lose jobs if Redis evicts keys; the default parameter group
        # evicts (volatile-lru). Agents' session keys carry TTLs, so no eviction costs them nothing.
        params = aws.elasticache.ParameterGroup(
            f"{name}-redis", name=names.redis_parameter_group_name(a.name_prefix),
            family=f"{r.engine}{r.engine_version.split('.')[0]}",
            description="Platform Redis: never evict (LangFuse queues)",
            parameters=[{"name": "maxmemory-policy", "value": "noeviction"}], tags=a.tags, opts=aws_opts)
        # Unique per account and region, so stacks side by side do not collide (its 40-character
        # limit is checked on cluster.name by the config).
        group_id = names.redis_group_id(a.name_prefix)
        suffix = snapshot_suffix(f"{name}-redis-final-snapshot", aws_opts)
        self.replication_group = aws.elasticache.ReplicationGroup(
            f"{name}-redis",
            replication_group_id=group_id,
            description="Agent session cache",
            engine=r.engine,
            engine_version=r.engine_version,
            node_type=r.node_type,
            num_cache_clusters=r.num_cache_clusters,
            port=names.PORT_REDIS,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            transit_encryption_enabled=True,
            auth_token=token.result,
            subnet_group_name=subnets.name,
            parameter_group_name=params.name,
            security_group_ids=[sg.id],
            snapshot_retention_limit=r.snapshot_retention_days,
            # A deliberate delete still leaves a snapshot to restore from; named per incarnation of
            # the stack, so the destroy of a recreated stack does not fail on the predecessor's
            # snapshot (ElastiCache refuses an existing FinalSnapshotIdentifier).
            final_snapshot_identifier=suffix.apply(lambda x: names.final_snapshot_name(group_id, x)),
            auto_minor_version_upgrade=True,
            apply_immediately=False,   # changes wait for the maintenance window
            tags=a.tags,
            opts=pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(additional_secret_outputs=["authToken"])),
        )
        return self.replication_group.primary_endpoint_address, token.result, True

    # ------------------------------------------------------------------------------ Secrets

    def _redis_secret(self, name: str, namespace: str, password: pulumi.Output[str]) -> k8s.core.v1.Secret:
        tls = self.redis_tls
        url = pulumi.Output.all(self.redis_host, password).apply(
            lambda hp: f"{'rediss' if tls else 'redis'}://:{urllib.parse.quote(hp[1], safe='')}@{hp[0]}:{names.PORT_REDIS}")
        return secret(f"{name}-redis-connection-{namespace}", REDIS_SECRET, namespace,
                      {"host": self.redis_host, "port": str(names.PORT_REDIS), "username": "default",
                       "password": password, "tls": "true" if tls else "false", "url": url},
                      app="redis", component="connection", opts=self._k8s(namespace))

    def _milvus_secret(self, name: str, namespace: str) -> k8s.core.v1.Secret:
        return secret(f"{name}-milvus-connection-{namespace}", MILVUS_SECRET, namespace,
                      {"host": self.milvus_host, "port": str(self.milvus_port),
                       "address": self.milvus_address, "uri": f"http://{self.milvus_address}"},
                      app="milvus", component="connection", opts=self._k8s(namespace))
