"""`observability`: Prometheus, Grafana, alerts, OTel, LangFuse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import Problem, RetentionPeriod, Section


class LangfuseConfig(Section):
    """LangFuse (LLM tracing). `database: rds` puts its PostgreSQL on Amazon RDS; `inCluster` uses
    the chart's bundled PostgreSQL. Blob storage is always an S3 bucket reached through Pod Identity."""

    database: Literal["rds", "inCluster"] = Field(
        "inCluster", description="LangFuse's PostgreSQL: Amazon RDS, or the chart's in-cluster PostgreSQL")
    rds_instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="rds: instance class")
    rds_storage_gib: int = Field(50, ge=20, le=65536, alias="rdsStorageGiB", description="rds: allocated storage, GiB")
    rds_multi_az: bool = Field(True, alias="rdsMultiAZ", description="rds: Multi-AZ standby")
    rds_backup_retention_days: int = Field(7, ge=1, le=35, description="rds: days of automated backups")
    rds_engine_version: str = Field("16", pattern=r"^[0-9]+(\.[0-9]+)?$", description="rds: PostgreSQL version")
    clickhouse_replicas: int = Field(1, ge=1, le=5, description="ClickHouse replicas (1, or 3 and more)")
    web_replicas: int = Field(1, ge=1, le=10, description="LangFuse web replicas")

    def problems(self) -> Iterator[Problem]:
        # Replicated ClickHouse needs a Keeper quorum the chart only forms with 1 or 3+ replicas.
        if self.clickhouse_replicas == 2:
            yield "clickhouseReplicas", "use 1 (single node) or 3 or more (replicated); 2 cannot form a quorum"


class ObservabilityConfig(Section):
    """Prometheus, Alertmanager, Grafana, the OpenTelemetry collector and LangFuse."""

    prometheus_retention: RetentionPeriod = Field("15d", description="how long Prometheus keeps samples")
    prometheus_storage_gib: int = Field(
        50, ge=10, le=16384, alias="prometheusStorageGiB", description="Prometheus volume per replica, GiB")
    prometheus_replicas: int = Field(1, ge=1, le=3, description="Prometheus replicas")
    alertmanager_storage_gib: int = Field(5, ge=1, le=1024, alias="alertmanagerStorageGiB", description="Alertmanager volume, GiB")
    grafana_storage_gib: int = Field(10, ge=1, le=1024, alias="grafanaStorageGiB", description="Grafana volume, GiB")
    gpu_hour_price: float = Field(4.0, gt=0, le=1000, description="USD per GPU-hour for the Cost Tracking dashboard")
    collector_replicas: int = Field(1, ge=1, le=10, description="OpenTelemetry collector replicas")
    langfuse: LangfuseConfig = Field(default_factory=LangfuseConfig)
