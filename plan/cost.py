"""What the stack costs per hour, before deploy: a floor (what runs when every model sits at its
minimum replicas) and a ceiling (every NodePool at its limits), per GPU pool, model and tenant,
plus the fixed platform cost (EKS control plane, NAT gateways, the NLB, RDS, ElastiCache, system
nodes) and the monthly totals; priced from platform/prices.yaml (domain/prices.py) for the
stack's region. A `budget` turns a ceiling above it into a mandatory finding
(policies/stack_rules.py, `cost_within_budget`).

Rules (docs/compute.md "What it costs"):
- a model's floor: its minimum replicas x GPUs on the pool's cheapest fitting node type and
  capacity type (whole nodes: ceil(GPUs / GPUs per node)); its ceiling, its maximum replicas on
  the dearest; `reserved` is billed at the On-Demand rate, spot at the table's assumed fraction;
- a GPU pool's floor is its models' floors; its ceiling the most its limits admit: for each type,
  ceil(limit / per-node resource) nodes under its tightest limit, at its dearest capacity type;
  its warm nodes (`warmNodes`, a static NodePool outside those limits) raise the floor to at least
  their cheapest rate and add their dearest to the ceiling;
- the CPU pool's floor is one node of its cheapest type (the platform's services always run);
- fixed: EKS 1 cluster; NAT 1 (`single`) or one per AZ; 1 NLB with a gateway; RDS per database
  (x2 Multi-AZ); ElastiCache nodes (Valkey at its discount); system nodes minSize .. maxSize."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from components import names
from components.agentic_platform import tenant_placements
from components.config import GpuPoolConfig, ModelConfig, NodePoolConfig, PlatformConfig
from components.node_pools import pool_definitions
from domain.instances import InstanceFacts, instance_facts
from domain.prices import RegionPrices, instance_hour, price_table, region_prices
from plan.engine import Plan


@dataclass
class Line:
    """One row of the cost table (USD per hour)."""

    name: str
    floor: float
    ceiling: float
    basis: str


@dataclass
class Costing:
    prices: RegionPrices
    unpriced: list[str] = field(default_factory=list)

    def rates(self, pool: NodePoolConfig, min_gpus: int = 0,
              gpu_model: str | None = None) -> list[tuple[InstanceFacts, float, float]]:
        """(type, cheapest, dearest hourly rate over the pool's capacity types) for every priced
        type of the pool with at least `min_gpus` GPUs (of `gpu_model`, if given)."""
        out = []
        for t in pool.instance_types:
            f = instance_facts(t)
            if f is None or f.gpus < min_gpus or (gpu_model is not None and f.gpu_model != gpu_model):
                continue
            rates = [r for c in pool.capacity_types if (r := instance_hour(self.prices, t, c)) is not None]
            if not rates:
                self._unpriced(f"{t} in {self.prices.region}")
                continue
            out.append((f, min(rates), max(rates)))
        return out

    def _unpriced(self, what: str) -> None:
        if what not in self.unpriced:
            self.unpriced.append(what)

    def rate(self, table: dict[str, float], key: str, what: str) -> float:
        if key not in table:
            self._unpriced(f"{what} {key} in {self.prices.region}")
            return 0.0
        return table[key]


def _nodes(gpus: int, f: InstanceFacts) -> int:
    return math.ceil(gpus / f.gpus) if gpus else 0


def model_line(c: Costing, m: ModelConfig, pool: NodePoolConfig) -> Line:
    rates = c.rates(pool, m.gpus, m.gpu_model)
    if not rates:
        return Line(m.name, 0.0, 0.0, f"no priced type of pool {pool.name} fits {m.gpus} GPU(s)")
    lo_f, lo = min(((f, _nodes(m.min_replicas * m.gpus, f) * cheap) for f, cheap, _ in rates), key=lambda x: x[1])
    hi_f, hi = max(((f, _nodes(m.max_replicas * m.gpus, f) * dear) for f, _, dear in rates), key=lambda x: x[1])
    return Line(m.name, lo, hi, f"{m.min_replicas}..{m.max_replicas} x {m.gpus} GPU on {pool.name}: "
                                f"floor {lo_f.instance_type}, ceiling {hi_f.instance_type}")


def pool_ceiling(c: Costing, pool: NodePoolConfig, gpu_limit: int | None) -> tuple[float, str]:
    """The most the pool's limits admit: per type, nodes under its tightest limit x its dearest rate."""
    best, basis = 0.0, "no priced type"
    for f, _, dear in c.rates(pool):
        bounds = [math.ceil(lim / per) for lim, per in ((gpu_limit, f.gpus), (pool.cpu_limit, f.vcpu),
                                                        (pool.memory_limit_gib, f.memory_gib))
                  if lim is not None and per > 0]
        if bounds and min(bounds) * dear > best:
            best, basis = min(bounds) * dear, f"{min(bounds)} x {f.instance_type} at ${dear:.2f}/h"
    return best, basis


def _with_warm_nodes(c: Costing, pool: NodePoolConfig, line: Line) -> Line:
    """A GPU pool with warm nodes (its static NodePool, outside its limits): they always run, on the
    cheapest offering (Karpenter picks a static pool's nodes by cost, kubernetes-sigs/karpenter
    designs/static-capacity.md "Requirements"), and its models' minimum replicas land on them first:
    the floor is the larger of the two; the ceiling adds them at the dearest rate."""
    n = pool.warm_nodes if isinstance(pool, GpuPoolConfig) else 0
    rates = c.rates(pool)
    if not n or not rates:
        return line
    lo, hi = n * min(cheap for _, cheap, _ in rates), n * max(dear for _, _, dear in rates)
    return Line(line.name, max(line.floor, lo), line.ceiling + hi,
                f"{line.basis}; {n} warm node(s) always run (${lo:.2f}/h at least, in the floor when more than "
                f"its models' minimum replicas), ${hi:.2f}/h at most on top of the ceiling")


def fixed_lines(c: Costing, config: PlatformConfig) -> list[Line]:
    p = c.prices
    nat = 1 if config.network.nat_gateways == "single" else config.network.availability_zones
    lines = [Line("EKS control plane", p.eks_control_plane, p.eks_control_plane, "1 cluster"),
             Line("NAT gateways", nat * p.nat_gateway, nat * p.nat_gateway, f"{nat} x ${p.nat_gateway}/h")]
    if config.gateway is not None:
        lines.append(Line("NLB (gateway)", p.network_load_balancer, p.network_load_balancer, "1 NLB"))
    dbs = []
    if config.agent_runtime.database.mode == "external":
        db = config.agent_runtime.database
        dbs.append(("RDS (kagent)", db.instance_class, db.multi_az))
    if config.observability.langfuse.database == "rds":
        lf = config.observability.langfuse
        dbs.append(("RDS (LangFuse)", lf.rds_instance_class, lf.rds_multi_az))
    for what, cls, multi in dbs:
        hourly = c.rate(p.rds_postgres, cls, "RDS") * (2 if multi else 1)
        lines.append(Line(what, hourly, hourly, f"{cls}{' Multi-AZ' if multi else ''}"))
    redis = config.data.redis
    if redis.mode == "elasticache":
        node = c.rate(p.elasticache, redis.node_type, "ElastiCache") * (p.valkey_fraction if redis.engine == "valkey" else 1)
        hourly = node * redis.num_cache_clusters
        lines.append(Line("ElastiCache", hourly, hourly, f"{redis.num_cache_clusters} x {redis.node_type} ({redis.engine})"))
    sn = config.cluster.system_nodes
    sys_rates = [c.rate(p.ec2, t, "EC2") * (price_table().spot_fraction if sn.capacity_type == "SPOT" else 1)
                 for t in sn.instance_types]
    lines.append(Line("system nodes", sn.min_size * min(sys_rates), sn.max_size * max(sys_rates),
                      f"{sn.min_size}..{sn.max_size} x {'/'.join(sn.instance_types)}"))
    return lines


def _rounded(lines: list[Line]) -> list[dict[str, Any]]:
    return [{**asdict(x), "floor": round(x.floor, 2), "ceiling": round(x.ceiling, 2)} for x in lines]


def estimate(config: PlatformConfig, region: str) -> dict[str, Any]:
    """The cost document (`cost` in the plan JSON)."""
    prices = region_prices(region)
    table = price_table()
    if prices is None:
        return {"region": region, "unpriced": [f"platform/prices.yaml has no prices for {region}"]}
    c = Costing(prices)
    placements = tenant_placements(config)
    node_tenants = {t.tenant: t.pool for t in placements}
    defs = {p.name: (p, limit) for p, limit, _, _ in pool_definitions(config.gpu_pools, config.cpu_pool, placements)}
    models = []
    for m in config.models:
        pool_name = node_tenants.get(m.tenant or "", m.pool)
        models.append((m, pool_name, model_line(c, m, defs[pool_name][0])))
    pools = []
    for name, (pool, limit) in defs.items():
        ceiling, basis = pool_ceiling(c, pool, limit)
        if name == config.cpu_pool.name:
            cheapest = min((cheap for _, cheap, _ in c.rates(pool)), default=0.0)
            pools.append(Line(name, cheapest, ceiling, f"floor 1 node; ceiling {basis}"))
        else:
            floor = sum(line.floor for _, p, line in models if p == name)
            pools.append(_with_warm_nodes(c, pool, Line(name, floor, ceiling,
                                                        f"floor: its models' minimum replicas; ceiling {basis}")))
    tenants = []
    for t in config.tenants:
        own = [line for m, _, line in models if m.tenant == t.name]
        pool_cap = next((x.ceiling for x in pools if x.name == node_tenants.get(t.name)), None)
        ceiling = pool_cap if pool_cap is not None else sum(x.ceiling for x in own)
        tenants.append(Line(t.name, sum(x.floor for x in own), ceiling,
                            f"{len(own)} model(s)" + (f", dedicated pool {node_tenants[t.name]}" if pool_cap is not None else "")))
    shared = [line for m, _, line in models if m.tenant is None]
    tenants.append(Line(names.NS_INFERENCE, sum(x.floor for x in shared), sum(x.ceiling for x in shared),
                        f"{len(shared)} shared model(s)"))
    fixed = fixed_lines(c, config)
    floor = sum(x.floor for x in pools) + sum(x.floor for x in fixed)
    ceiling = sum(x.ceiling for x in pools) + sum(x.ceiling for x in fixed)
    doc: dict[str, Any] = {
        "currency": "USD", "region": region,
        "prices": {"file": "platform/prices.yaml", "date": table.date, "source": table.source,
                   "spotFraction": table.spot_fraction, "hoursPerMonth": table.hours_per_month},
        "pools": _rounded(pools), "models": _rounded([line for _, _, line in models]), "tenants": _rounded(tenants),
        "fixed": _rounded(fixed),
        "total": {"floorHourly": round(floor, 2), "ceilingHourly": round(ceiling, 2),
                  "floorMonthly": round(floor * table.hours_per_month), "ceilingMonthly": round(ceiling * table.hours_per_month)},
        "unpriced": c.unpriced,
    }
    if config.budget is not None:
        doc["budget"] = {"hourly": config.budget.hourly, "monthly": config.budget.monthly}
    return doc


def compute(plan: Plan, config: PlatformConfig) -> dict[str, Any]:
    return estimate(config, plan.region)


def summary_lines(doc: dict[str, Any]) -> list[str]:
    if "total" not in doc:
        return [f"not priced: {', '.join(doc.get('unpriced', []))}"]
    p, t = doc["prices"], doc["total"]
    lines = [f"USD per hour, floor .. ceiling ({doc['region']}, prices of {p['date']}, spot assumed at "
             f"{p['spotFraction']:.0%} of On-Demand)"]
    for title, key in (("pools", "pools"), ("models", "models"), ("tenants", "tenants"), ("fixed", "fixed")):
        lines.append(f"{title}:")
        lines += [f"  {x['name']:<24} {x['floor']:>10.2f} .. {x['ceiling']:>10.2f}  {x['basis']}" for x in doc[key]]
    lines.append(f"total: {t['floorHourly']:.2f} .. {t['ceilingHourly']:.2f} per hour, "
                 f"{t['floorMonthly']:,} .. {t['ceilingMonthly']:,} per month")
    if doc.get("budget"):
        b = doc["budget"]
        lines.append("budget: " + ", ".join(f"{v:,.2f} {k}" for k, v in b.items() if v is not None))
    if doc["unpriced"]:
        lines.append(f"not priced (counted as 0): {', '.join(doc['unpriced'])}")
    return lines
