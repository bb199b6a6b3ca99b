"""Tenants on shared models: a known tenant claim before any model, per-tenant budgets (requests and LLM
tokens), the prompt-cache salt from the verified claim overwriting the client's, and the config errors
for what the chosen data plane cannot enforce (the rendered CEL is read by tests/tenant_gateway.py's
`evaluate`)."""

from __future__ import annotations

import json

import pytest

from components import names
from components.config import ConfigError, validate
from components.gateway_tenants import SALT_FIELD, kgateway_tenant_bucket, salted_body, tenant_identity
from tests.conftest import variant_plan
from tests.tenant_gateway import KEY, POLICY, ROUTE, evaluate, example_config, kgw_raw, prod_raw, require_matches


def test_client_cache_salt_cannot_survive_the_transformation():
    cfg = example_config().gateway
    expr = salted_body(cfg, KEY)
    client = {"model": "qwen-1-5b", "messages": [{"role": "user", "content": "hi"}], SALT_FIELD: "guessed"}
    out = json.loads(evaluate(expr, body=client, claims={"tenant": "team-01"}))
    assert out[SALT_FIELD] != "guessed"
    assert {k: v for k, v in out.items() if k != SALT_FIELD} == {k: v for k, v in client.items() if k != SALT_FIELD}
    # stable per tenant, different between tenants, not the tenant name, and tied to the secret key
    again = json.loads(evaluate(expr, body={"model": "x"}, claims={"tenant": "team-01"}))[SALT_FIELD]
    other = json.loads(evaluate(expr, body={"model": "x"}, claims={"tenant": "team-02"}))[SALT_FIELD]
    assert again == out[SALT_FIELD] != other
    assert "team-01" not in out[SALT_FIELD] and len(out[SALT_FIELD]) == 64
    rekeyed = json.loads(evaluate(salted_body(cfg, "17" * 32), body={}, claims={"tenant": "team-01"}))[SALT_FIELD]
    assert rekeyed != out[SALT_FIELD]


def test_evaluator_sees_a_client_winning_merge():
    """The reader is not a rubber stamp: the maps merged the other way round keep the client's value."""
    wrong = f'toJson({{"{SALT_FIELD}": "server"}}.merge(json(request.body)))'
    assert json.loads(evaluate(wrong, body={SALT_FIELD: "client"}))[SALT_FIELD] == "client"


def test_request_without_a_known_tenant_claim_is_rejected():
    cfg = example_config().gateway
    expr = tenant_identity(cfg, ["team-01", "team-02"])
    assert require_matches(expr, {"tenant": "team-01", "sub": "u"})
    assert not require_matches(expr, {"sub": "u"})                  # no tenant claim
    assert not require_matches(expr, {"tenant": "team-99"})         # not a tenant of the platform
    assert not require_matches(expr, {})


@pytest.fixture(scope="module")
def tenants_plan():
    return variant_plan("tenants")


@pytest.mark.program
def test_every_vllm_route_is_salted_budgeted_and_behind_the_tenant_rule(tenants_plan):
    cfg = example_config()
    vllm = {m.name for m in cfg.models if m.engine == "vllm"}
    assert vllm and cfg.gateway.prompt_cache.tenant_salt
    policies = [r.inputs["spec"] for r in tenants_plan.by_type(POLICY) if "traffic" in r.inputs["spec"]]
    gateway_rules = [p for p in policies if p["targetRefs"][0]["kind"] == "Gateway"]
    (auth,) = [p["traffic"]["authorization"] for p in gateway_rules if "authorization" in p["traffic"]]
    assert auth["action"] == "Require"
    (expr,) = auth["policy"]["matchExpressions"]
    assert not require_matches(expr, {}) and require_matches(expr, {"tenant": cfg.tenants[0].name})
    per_route = {t["name"]: p["traffic"] for p in policies for t in p["targetRefs"] if t["kind"] == "HTTPRoute"}
    tenants = [t.name for t in cfg.tenants]
    for model in vllm:
        traffic = per_route[f"pool-{model}"]
        # the salt expression holds the key: a secret, redacted in the plan
        assert traffic["transformation"] == {"request": {"body": "[secret]"}}
        entries = traffic["rateLimit"]["conditional"]
        assert [e.get("condition") for e in entries] == [f'jwt["tenant"] == "{t}"' for t in sorted(tenants)] + [None]
        for tenant, entry in zip(sorted(tenants), entries[:-1], strict=True):
            budget = cfg.gateway.budget(tenant)
            assert {"tokens": budget.tokens_per_minute, "unit": "Minutes"} in entry["policy"]["local"]
            assert {"requests": budget.requests_per_minute, "unit": "Minutes"} in entry["policy"]["local"]
        assert entries[-1]["policy"]["local"][0]["requests"] >= 1        # the platform limit for the rest
    assert cfg.gateway.budget("team-01").tokens_per_minute != cfg.gateway.budget("team-02").tokens_per_minute
    salt_keys = [r for r in tenants_plan.resources if r.type == "random:index/randomBytes:RandomBytes"
                 and r.name.endswith("cache-salt-key")]
    assert salt_keys
    # the mock engine's RandomBytes hex is "ab" * length: it shows nowhere in what the plan records
    assert "ab" * 32 not in json.dumps([r.inputs for r in tenants_plan.resources])


@pytest.mark.program
@pytest.mark.parametrize("variant", ["tenants", "prod"])
def test_salted_models_reach_kgateway_only_as_a_forward_to_agentgateway(variant, tenants_plan, prod_plan):
    """kgateway cannot set cache_salt: with tenant salting every kgateway rule for a vLLM model sends to
    the agentgateway Gateway's Service only (which salts), never to a model Service or Backend."""
    plan = {"tenants": tenants_plan, "prod": prod_plan}[variant]
    models = example_config().models if variant == "tenants" else validate(prod_raw(), "prod").models
    vllm = {m.name for m in models if m.engine == "vllm"}
    assert vllm
    forwarded: set[str] = set()
    for route in plan.by_type(ROUTE):
        spec = route.inputs["spec"]
        if spec["parentRefs"][0]["name"] != names.GATEWAY_NAME:
            continue
        for rule in spec["rules"]:
            ids = {h["value"] for m in rule["matches"] for h in m["headers"] if h["name"] == "x-model-id"}
            if ids & vllm:
                assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": names.AGENTGATEWAY_NAME,
                                                "port": names.GATEWAY_PORT}], route.inputs["metadata"]["name"]
                forwarded |= ids
    assert forwarded == vllm
    # kgateway keeps the JWT on the forwarded request: agentgateway verifies it again and reads the claim
    (ext,) = plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:GatewayExtension")
    assert ext.inputs["spec"]["jwt"]["providers"][0]["forwardToken"] is True


def test_prod_tenant_request_budgets_on_kgateway(kgw_plan):
    """The kgateway variant of prod (inferenceRouting none): each tenant's requestsPerMinute is its
    tenant route's bucket."""
    gw = validate(kgw_raw(), "prod").gateway
    buckets = {t["name"]: p.inputs["spec"]["rateLimit"]["local"]["tokenBucket"]
               for p in kgw_plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy")
               if "rateLimit" in p.inputs["spec"] for t in p.inputs["spec"]["targetRefs"]}
    for tenant in ("tenant-a", "tenant-b"):
        rpm = gw.budget(tenant).requests_per_minute
        assert rpm is not None
        assert buckets[f"tenant-{tenant}"] == {"maxTokens": rpm, "tokensPerFill": rpm, "fillInterval": "60s"}


def test_a_tenant_budget_replaces_the_default():
    gw = validate(kgw_raw(tenantBudgets={"tenant-a": {"requestsPerMinute": 300}}), "prod").gateway
    assert kgateway_tenant_bucket(gw, "tenant-a").model_dump() == {
        "max_tokens": 300, "tokens_per_fill": 300, "fill_interval": "60s"}
    assert kgateway_tenant_bucket(gw, "tenant-b").max_tokens == gw.default_tenant_budget.requests_per_minute
    no_budgets = validate(kgw_raw(defaultTenantBudget={}, tenantBudgets={}), "prod").gateway
    assert kgateway_tenant_bucket(no_budgets, "tenant-b") == no_budgets.tenant_rate_limit


@pytest.mark.parametrize(("changes", "path", "message"), [
    ({"defaultTenantBudget": {"tokensPerMinute": 1000}}, "gateway.defaultTenantBudget.tokensPerMinute",
     "counts requests, not tokens"),
    ({"tenantBudgets": {"tenant-b": {"tokensPerMinute": 1000}}}, "gateway.tenantBudgets.tenant-b.tokensPerMinute",
     "counts requests, not tokens"),
    ({"promptCache": {"tenantSalt": True}}, "gateway.promptCache.tenantSalt", "needs inferenceRouting: agentgateway"),
    ({"tenantBudgets": {"nobody": {"requestsPerMinute": 5}}}, "gateway.tenantBudgets.nobody", "not a tenants name"),
])
def test_what_the_data_plane_cannot_enforce_is_a_key_path_error(changes, path, message):
    with pytest.raises(ConfigError) as err:
        validate(kgw_raw(**changes), "prod")
    lines = [line for line in err.value.lines() if line.startswith(f"agentic-platform:{path}:")]
    assert lines and message in lines[0], err.value.lines()


def test_a_shared_tgi_model_cannot_forbid_prefix_sharing():
    """tgiSharing forbid with a TGI model in the shared ai-inference namespace (prod's Mixtral served
    by TGI from a pvc, as the seed had it)."""
    raw = prod_raw(promptCache={"tgiSharing": "forbid"})
    models = json.loads(raw["models"])
    models[2].update(engine="tgi", cache="pvc", cacheSizeGiB=200,
                     image="111122223333.dkr.ecr.us-west-2.amazonaws.com/text-generation-inference:3.3.6-nonroot")
    raw["models"] = json.dumps(models)
    with pytest.raises(ConfigError) as err:
        validate(raw, "prod")
    lines = [line for line in err.value.lines() if line.startswith("agentic-platform:models[2].tenant:")]
    assert lines and "no prefix-cache salting" in lines[0], err.value.lines()


@pytest.mark.program
def test_the_plan_shows_each_tenants_limits_and_salt_policy(prod_plan, tenants_plan, kgw_plan):
    prod = prod_plan.extras["tenants"]
    gw = validate(prod_raw(), "prod").gateway
    assert set(prod) == {"tenant-a", "tenant-b"}
    for tenant, p in prod.items():
        assert p["tokensPerMinute"] == gw.budget(tenant).tokens_per_minute is not None
        assert "overwritten" in p["cacheSalt"]
    assert prod["tenant-a"]["tokensPerMinute"] != prod["tenant-b"]["tokensPerMinute"]
    kgw = kgw_plan.extras["tenants"]
    assert all(p["cacheSalt"].startswith("none") and p["tokensPerMinute"] is None for p in kgw.values())
    shown = tenants_plan.extras["tenants"]
    cfg = example_config()
    assert set(shown) == {t.name for t in cfg.tenants}
    for tenant, p in shown.items():
        assert p["tokensPerMinute"] == cfg.gateway.budget(tenant).tokens_per_minute
        assert "overwritten" in p["cacheSalt"] and p["tgi"] == "owner tenant only"


