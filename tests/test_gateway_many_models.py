"""Any number of models routes: HTTPRoutes are split so no rule cap of the pinned Gateway API binds."""

from __future__ import annotations

import pytest
import yaml

from components import names
from components.config import validate
from components.gateway import token_bucket
from components.gateway_tenants import kgateway_tenant_bucket
from plan.admission.schema import crd_validator
from plan.engine import ROOT, Plan
from tests.conftest import kgateway_only_doc, plan_file, write_stack
from tests.gateway_cases import (
    PATHS,
    POLICY,
    routes,
    rules_for,
    stack_config,
    stack_raw,
)

# ----------------------------------------------------------------------------- any number of models

HTTPROUTE_CRD = ROOT / "platform" / "crds" / "gateway-api" / "gateway.networking.k8s.io_httproutes.yaml"


def _httproute_validator():
    crd = yaml.safe_load(HTTPROUTE_CRD.read_text())
    raw = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    return crd_validator("gateway.networking.k8s.io/v1", "HTTPRoute", raw)


def _many_models(n: int) -> dict:
    """Prod served by kgateway alone (inferenceRouting: none) with n models (the extra ones shared, 1 GPU,
    scale-to-zero): more than one HTTPRoute's
    16 rules for every tenant."""
    doc = kgateway_only_doc()
    models = doc["config"]["agentic-platform:models"]
    small = next(m for m in models if m["name"] == "llama-3-8b")
    models.extend({**small, "name": f"extra-{i}", "minReplicas": 0, "maxReplicas": 1} for i in range(n - len(models)))
    # room for them in ai-inference's quota (the quota rules are not what this is about)
    doc["config"]["agentic-platform:platformQuotas"]["ai-inference"].update(
        cpu="1000", memory="8Ti", cpuLimit="2000", memoryLimit="16Ti", gpu=100, pods=500)
    return doc


@pytest.fixture(scope="module")
def thirty_models(tmp_path_factory) -> Plan:
    return plan_file(str(write_stack(tmp_path_factory.mktemp("thirty"), _many_models(30), "thirty")), analysed=False)


def test_vendored_schema_caps_an_httproute_at_16_rules():
    """The cap the split exists for is the pinned CRD's: a 17-rule route fails its schema."""
    rule = {"matches": [{"path": {"type": "Exact", "value": "/v1/completions"}}]}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
             "spec": {"rules": [rule] * 16}}
    validator = _httproute_validator()
    assert not list(validator.iter_errors(route))
    assert any("16" in e.message or e.validator == "maxItems"
               for e in validator.iter_errors({**route, "spec": {"rules": [rule] * 17}}))


@pytest.mark.program
def test_thirty_models_route_with_todays_semantics(thirty_models):
    """30 models and 2 tenants: each tenant's rules spread over HTTPRoutes that each pass the pinned
    schema (<= 16 rules) and the CEL cap of 128 matches; every (tenant, model) keeps exactly the
    model route's backends (canary weights, fallback Backend), behind the tenant's bucket."""
    plan = thirty_models
    models = [m["name"] for m in _many_models(30)["config"]["agentic-platform:models"]]
    tenants = [t["name"] for t in stack_config("prod")["agentic-platform:tenants"]]
    validator = _httproute_validator()
    for route in routes(plan):
        errors = [e.message for e in validator.iter_errors(
            {"apiVersion": route["apiVersion"], "kind": route["kind"], **route})]
        assert not errors, (route["metadata"]["name"], errors[:2])
        assert sum(len(r["matches"]) for r in route["spec"]["rules"]) <= 128
    policies = [p.inputs["spec"] for p in plan.by_type(POLICY) if "rateLimit" in p.inputs["spec"]]
    bucket_of = {t["name"]: p["rateLimit"]["local"]["tokenBucket"] for p in policies for t in p["targetRefs"]}
    gw = validate(stack_raw("prod"), "prod").gateway
    for model in models:
        [(_, model_rule, _)] = {id(r): (ro, r, m) for ro, r, m in rules_for(plan, model)}.values()
        for tenant in tenants:
            found = rules_for(plan, model, tenant)
            assert {m["path"]["value"] for _, _, m in found} == PATHS, (tenant, model)
            route, rule, _ = found[0]
            assert rule["backendRefs"] == model_rule["backendRefs"] and rule["timeouts"] == model_rule["timeouts"]
            assert route["metadata"]["labels"][names.TENANT_LABEL] == tenant
            assert bucket_of[route["metadata"]["name"]] == token_bucket(kgateway_tenant_bucket(gw, tenant))["tokenBucket"]
    # two routes per tenant (16 + 14 rules); the first keeps its pre-split name
    names_ = sorted(r["metadata"]["name"] for r in routes(plan) if r["metadata"]["name"].startswith("tenant-"))
    assert names_ == sorted(n for t in tenants for n in (f"tenant-{t}", f"tenant-{t}.1"))
