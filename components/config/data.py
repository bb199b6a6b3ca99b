"""`data`: Milvus, Redis, the document bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import Problem, Quantity, Section


class WorkloadSize(Section):
    """Replicas, requests and limits of one data-service component (limits default to requests)."""

    replicas: int = Field(1, ge=1, description="pods")
    cpu: Quantity = "500m"
    memory: Quantity = "1Gi"
    cpu_limit: Quantity | None = Field(None, description="limits.cpu; default = cpu")
    memory_limit: Quantity | None = Field(None, description="limits.memory; default = memory")


class EtcdConfig(Section):
    """Milvus's metadata store (the chart's etcd), on the data StorageClass."""

    replicas: int = Field(3, ge=1, le=7, description="etcd members (odd)")
    storage_gib: int = Field(20, ge=1, alias="storageGiB", description="volume per member, GiB")
    cpu: Quantity = "250m"
    memory: Quantity = "1Gi"

    def problems(self) -> Iterator[Problem]:
        if self.replicas % 2 == 0:
            yield "replicas", f"{self.replicas} etcd members cannot keep a majority through a failure; use an odd number"


class MilvusConfig(Section):
    """Milvus 2.6 (chart milvus 5.0.19) on S3. `standalone` runs one pod; `cluster` runs the
    components below. In 2.6 the index node is folded into the data node and the coordinators into
    mixCoord; the write-ahead log is the streaming node's embedded Woodpecker on S3."""

    mode: Literal["standalone", "cluster"] = Field("standalone", description="standalone: one pod; cluster: the components below")
    message_queue: Literal["woodpecker", "rocksmq"] = Field(
        "woodpecker", description="write-ahead log: woodpecker (embedded, on S3) or rocksmq (standalone only)")
    standalone: WorkloadSize = Field(default_factory=lambda: WorkloadSize(cpu="1", memory="4Gi", memoryLimit="8Gi"))
    standalone_disk_gib: int = Field(50, ge=10, alias="standaloneDiskGiB", description="standalone pod's volume, GiB")
    proxy: WorkloadSize = Field(default_factory=lambda: WorkloadSize(replicas=2, cpu="500m", memory="1Gi"))
    query_node: WorkloadSize = Field(default_factory=lambda: WorkloadSize(
        replicas=3, cpu="2", memory="8Gi", cpuLimit="4", memoryLimit="16Gi"))
    data_node: WorkloadSize = Field(default_factory=lambda: WorkloadSize(replicas=2, cpu="1", memory="4Gi"))
    mix_coordinator: WorkloadSize = Field(default_factory=lambda: WorkloadSize(cpu="500m", memory="1Gi"))
    streaming_node: WorkloadSize = Field(default_factory=lambda: WorkloadSize(cpu="1", memory="2Gi"))
    etcd: EtcdConfig = Field(default_factory=EtcdConfig)

    def problems(self) -> Iterator[Problem]:
        if self.mode == "cluster" and self.message_queue == "rocksmq":
            yield "messageQueue", "rocksmq is local to one pod and works in standalone mode only; use woodpecker"
        if self.standalone.replicas != 1:
            yield "standalone.replicas", "standalone Milvus runs exactly one replica; use mode: cluster to scale"


class RedisConfig(Section):
    """The session cache: in-cluster Valkey (chart valkey 0.11.0) or an ElastiCache replication group."""

    mode: Literal["inCluster", "elasticache"] = Field(
        "inCluster", description="inCluster: Valkey in ai-data; elasticache: an ElastiCache replication group")
    # inCluster
    replicas: int = Field(0, ge=0, le=5, description="Valkey read replicas besides the primary")
    storage_gib: int = Field(8, ge=1, alias="storageGiB", description="inCluster: volume per Valkey pod, GiB")
    cpu: Quantity = "250m"
    memory: Quantity = "1Gi"
    # elasticache
    engine: Literal["valkey", "redis"] = Field("valkey", description="elasticache: engine")
    engine_version: str = Field("8.0", pattern=r"^[0-9]+\.[0-9]+$", description="pinned major.minor")
    node_type: str = Field("cache.r7g.large", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$", description="elasticache: node type")
    num_cache_clusters: int = Field(2, ge=1, le=6, description="primary plus replicas, spread over AZs")
    snapshot_retention_days: int = Field(7, ge=0, le=35, description="elasticache: days of automatic snapshots")

    def problems(self) -> Iterator[Problem]:
        if self.mode == "elasticache":
            if self.num_cache_clusters < 2:
                yield "numCacheClusters", "Multi-AZ with automatic failover needs at least 2 cache clusters"
            if self.snapshot_retention_days < 1:
                yield "snapshotRetentionDays", "must be at least 1: ElastiCache keeps no backups otherwise"


class DataConfig(Section):
    """The data layer: S3 document store, Milvus, Redis."""

    milvus: MilvusConfig = Field(default_factory=MilvusConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    service_monitors: bool = Field(True, description="ServiceMonitors for Milvus and Valkey (needs the Prometheus operator CRDs)")
