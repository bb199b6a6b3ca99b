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

    def problems(self) -> Iterator[Problem]:
        for tenant, usd in self.tenant_thresholds_usd.items():
            if usd <= 0:
                yield f"tenantThresholdsUsd.{tenant}", f"{usd:g} is not a positive USD amount per day"

    def threshold_for(self, tenant: str) -> float:
        """The daily cost threshold of one tenant, USD."""
        return self.tenant_thresholds_usd.get(tenant, self.daily_tenant_threshold_usd)
