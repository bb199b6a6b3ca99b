"""`cost`: cost allocation with OpenCost, and the daily cost alert per tenant."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from components.config.base import DnsName, Problem, Section


class CostConfig(Section):
    """OpenCost (chart opencost 2.5.17, image 1.120.1) in the `opencost` namespace: prices every
    node from AWS's public on-demand price list and spot price history, allocates node cost to
    containers by their requests/usage, and exports the metrics the Cost Tracking dashboard and the
    daily cost alert use (docs/cost.md)."""

    daily_tenant_threshold_usd: float = Field(
        100.0, gt=0, le=1_000_000, alias="dailyTenantThresholdUsd",
        description="the alert `TenantDailyCostHigh` fires for a tenant whose cost over the last 24 h is above this, USD")
    tenant_thresholds_usd: dict[DnsName, float] = Field(
        default_factory=dict, alias="tenantThresholdsUsd",
        description="per-tenant overrides of dailyTenantThresholdUsd (tenant name -> USD per day)")
    alert_for: str = Field("30m", pattern=r"^[0-9]+[mh]$",
                           description="how long the daily cost must stay above its threshold before the alert fires")
    exporter_replicas: int = Field(
        1, ge=1, description="OpenCost replicas: 1 (each replica is a scrape target of the same cost series)")

    def problems(self) -> Iterator[Problem]:
        # Upstream runs replicas (opencost/opencost#1750: "You should be able to run a replicated
        # opencost just fine"; chart 2.5.x added a PodDisruptionBudget for the API's availability,
        # opencost-helm-chart#287), but every replica computes and exports the same series, and the
        # chart's ServiceMonitor (templates/servicemonitor.yaml: one endpoint, the Service's pods)
        # makes each pod a target: node_*_hourly_cost (no pod label of its own) would be counted
        # once per replica by the dashboard's and TenantDailyCostHigh's sums, and the allocation
        # series (honorLabels keeps their own namespace/pod/instance) would collide between targets.
        # The platform reads OpenCost through Prometheus only (no UI, no API clients): one replica.
        if self.exporter_replicas > 1:
            yield "exporterReplicas", (f"{self.exporter_replicas}: each OpenCost replica is scraped and exports "
                                       "the same cost series, which the dashboard and the cost alert would "
                                       "count once per replica; use 1")
        for tenant, usd in self.tenant_thresholds_usd.items():
            if usd <= 0:
                yield f"tenantThresholdsUsd.{tenant}", f"{usd:g} is not a positive USD amount per day"

    def threshold_for(self, tenant: str) -> float:
        """The daily cost threshold of one tenant, USD."""
        return self.tenant_thresholds_usd.get(tenant, self.daily_tenant_threshold_usd)
