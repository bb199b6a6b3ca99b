"""What the stack costs (plan/cost.py) and the budget rule (policies/stack_rules.cost_within_budget)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.config import NAMESPACE, ConfigError, validate
from domain.instances import known_instance_types
from domain.prices import PRICES_FILE, instance_hour, price_table, region_prices
from plan.cost import estimate
from policies.stack_rules import cost_within_budget
from tests.conftest import stack_doc

REGION = "us-west-2"


def _config(stack: str, **sections: Any):
    doc = stack_doc(stack)
    for key, value in sections.items():
        doc["config"][f"agentic-platform:{key}"] = value
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc["config"].items()
           if k.startswith(NAMESPACE + ":")}
    return validate(raw, stack)


def _line(doc: dict[str, Any], table: str, name: str) -> dict[str, Any]:
    (line,) = [x for x in doc[table] if x["name"] == name]
    return line


def test_every_listed_instance_type_has_a_price_in_the_stacks_region():
    prices = region_prices(REGION)
    assert prices is not None and price_table().date and price_table().source
    assert set(known_instance_types()) <= set(prices.ec2), set(known_instance_types()) - set(prices.ec2)
    assert instance_hour(prices, "g5.xlarge", "spot") == pytest.approx(prices.ec2["g5.xlarge"] * price_table().spot_fraction)
    assert instance_hour(prices, "g5.xlarge", "reserved") == prices.ec2["g5.xlarge"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_totals_are_the_sum_of_their_lines(stack):
    doc = estimate(_config(stack), REGION)
    t = doc["total"]
    lines = doc["pools"] + doc["fixed"]
    assert t["ceilingHourly"] == pytest.approx(sum(x["ceiling"] for x in lines), abs=0.05)
    assert t["floorHourly"] == pytest.approx(sum(x["floor"] for x in lines), abs=0.05)
    assert 0 < t["floorHourly"] < t["ceilingHourly"]
    assert t["ceilingMonthly"] == pytest.approx(t["ceilingHourly"] * 730, rel=1e-3)
    assert doc["unpriced"] == []


def test_dev_gpu_pool_at_its_limit_and_its_model_at_min_replicas():
    doc = estimate(_config("dev"), REGION)
    od = region_prices(REGION).ec2
    # gpu-inference: 4 GPUs of 1-GPU g5 types, spot + on-demand: at most 4 x g5.4xlarge on-demand.
    assert _line(doc, "pools", "gpu-inference")["ceiling"] == pytest.approx(4 * od["g5.4xlarge"], abs=0.01)
    # qwen-1-5b: 1 replica x 1 GPU on the cheapest type and capacity type (g5.xlarge spot).
    model = _line(doc, "models", "qwen-1-5b")
    assert model["floor"] == pytest.approx(od["g5.xlarge"] * price_table().spot_fraction, abs=0.01)
    assert _line(doc, "pools", "gpu-inference")["floor"] == model["floor"]
    # one NAT gateway (single), no RDS / ElastiCache (in-cluster data), an NLB for the gateway.
    fixed = {x["name"] for x in doc["fixed"]}
    assert _line(doc, "fixed", "NAT gateways")["ceiling"] == pytest.approx(region_prices(REGION).nat_gateway, abs=0.01)
    assert "ElastiCache" not in fixed and not any(n.startswith("RDS") for n in fixed) and "NLB (gateway)" in fixed


def test_prod_prices_its_managed_services_and_the_node_isolated_tenant():
    doc = estimate(_config("prod"), REGION)
    p = region_prices(REGION)
    assert _line(doc, "fixed", "NAT gateways")["ceiling"] == pytest.approx(3 * p.nat_gateway, abs=0.01)
    assert _line(doc, "fixed", "ElastiCache")["ceiling"] == pytest.approx(3 * p.elasticache["cache.r7g.large"] * 0.8,
                                                                        abs=0.01)
    assert _line(doc, "fixed", "RDS (LangFuse)")["ceiling"] == pytest.approx(2 * p.rds_postgres["db.r7g.large"], abs=0.01)
    # tenant-b's dedicated pool: 8 GPUs -> one 8-GPU node, the dearest being p5.48xlarge on-demand.
    assert _line(doc, "tenants", "tenant-b")["ceiling"] == pytest.approx(p.ec2["p5.48xlarge"], abs=0.01)
    # llama-3-70b needs H100s: only p5.48xlarge prices it.
    assert "p5.48xlarge" in _line(doc, "models", "llama-3-70b")["basis"]


def test_more_replicas_raise_a_models_ceiling_not_its_floor():
    models = stack_doc("dev")["config"]["agentic-platform:models"]
    models[0].update(maxReplicas=2, cache="nodeLocal")
    before, after = estimate(_config("dev"), REGION), estimate(_config("dev", models=models), REGION)
    assert _line(after, "models", "qwen-1-5b")["ceiling"] > _line(before, "models", "qwen-1-5b")["ceiling"]
    assert _line(after, "models", "qwen-1-5b")["floor"] == _line(before, "models", "qwen-1-5b")["floor"]


def test_a_region_without_prices_says_so():
    assert estimate(_config("dev"), "eu-central-9")["unpriced"] == ["platform/prices.yaml has no prices for eu-central-9"]


# ------------------------------------------------------------------------------ budget

def test_a_ceiling_over_the_budget_is_a_mandatory_finding():
    doc = estimate(_config("prod", budget={"monthly": 50000}), REGION)
    (finding,) = cost_within_budget(doc)
    assert finding["level"] == "mandatory" and finding["policy"] == "cost-within-budget"
    assert "budget.monthly" in finding["message"] and "$50,000.00" in finding["message"]
    doc = estimate(_config("prod", budget={"hourly": 10, "monthly": 10}), REGION)
    assert len(cost_within_budget(doc)) == 2


def test_a_ceiling_within_the_budget_passes():
    doc = estimate(_config("prod", budget={"hourly": 1000, "monthly": 1_000_000}), REGION)
    assert cost_within_budget(doc) == []
    assert cost_within_budget(estimate(_config("prod"), REGION)) == []   # no budget, no finding


def test_an_empty_budget_is_a_key_path_error():
    with pytest.raises(ConfigError) as err:
        _config("dev", budget={})
    assert [p for p, _ in err.value.problems] == ["budget"], err.value.problems
    with pytest.raises(ConfigError) as err:
        _config("dev", budget={"hourly": -1})
    assert [p for p, _ in err.value.problems] == ["budget.hourly"], err.value.problems


def test_the_plan_carries_cost_and_fails_over_budget(dev_plan):
    assert dev_plan.extras["cost"]["total"]["ceilingHourly"] > 0
    assert "Cost" in dev_plan.extras["_summary"]
    assert not [f for f in dev_plan.policies if f["policy"] == "cost-within-budget"]


def test_every_price_is_verified_derived_or_marked_unverified():
    """platform/prices.yaml `verification`: each figure of the table has exactly one entry; a verified
    or derived one carries its source and the table's own figure (a changed price must be re-checked)."""
    raw = yaml.safe_load(PRICES_FILE.read_text(encoding="utf-8"))
    region = raw["regions"][REGION]
    figures = {f"{section}.{k}": v for section in ("ec2", "rdsPostgres", "elastiCache") for k, v in region[section].items()}
    figures |= {k: region[k] for k in ("eksControlPlane", "natGateway", "networkLoadBalancer", "valkeyFraction")}
    checked, unverified = raw["verification"]["figures"], raw["verification"]["unverified"]
    assert raw["verification"]["read"]
    assert set(checked).isdisjoint(unverified) and len(set(unverified)) == len(unverified)
    assert set(checked) | set(unverified) == set(figures), set(figures) ^ (set(checked) | set(unverified))
    for key, entry in checked.items():
        if entry["status"] in ("verified", "derived"):
            assert entry["value"] == figures[key] and entry["source"], key
        else:
            assert entry["status"] == "unverified" and entry["note"], key
    assert sum(e["status"] == "verified" for e in checked.values()) >= 8
