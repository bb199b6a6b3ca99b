"""Hourly prices read from ``platform/prices.yaml`` (its header says where they come from and how
to update them). Loaded once per process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from domain.yamlfile import read_yaml

PRICES_FILE = Path(__file__).resolve().parent.parent / "platform" / "prices.yaml"


@dataclass(frozen=True)
class RegionPrices:
    """One region's hourly rates in USD."""

    region: str
    ec2: dict[str, float]
    eks_control_plane: float
    nat_gateway: float
    network_load_balancer: float
    rds_postgres: dict[str, float]
    elasticache: dict[str, float]
    valkey_fraction: float


@dataclass(frozen=True)
class PriceTable:
    date: str
    source: str
    spot_fraction: float        # the assumed spot share of the On-Demand rate
    hours_per_month: int
    regions: dict[str, RegionPrices]


def _region(name: str, raw: dict[str, Any]) -> RegionPrices:
    return RegionPrices(name, dict(raw["ec2"]), float(raw["eksControlPlane"]), float(raw["natGateway"]),
                        float(raw["networkLoadBalancer"]), dict(raw["rdsPostgres"]), dict(raw["elastiCache"]),
                        float(raw["valkeyFraction"]))


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    raw = read_yaml(PRICES_FILE)
    return PriceTable(str(raw["date"]), str(raw["source"]), float(raw["spotFraction"]), int(raw["hoursPerMonth"]),
                      {name: _region(name, r) for name, r in raw["regions"].items()})


def region_prices(region: str) -> RegionPrices | None:
    """The region's rates, None if the table has none for it."""
    return price_table().regions.get(region)


def instance_hour(prices: RegionPrices, instance_type: str, capacity_type: str) -> float | None:
    """An instance-hour of ``instance_type``: the On-Demand rate (also for `reserved`, billed
    whether used or not), spot at the table's assumed fraction; None if not in the table."""
    rate = prices.ec2.get(instance_type)
    if rate is None:
        return None
    return rate * price_table().spot_fraction if capacity_type == "spot" else rate
