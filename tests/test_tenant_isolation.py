"""Tenants on shared models: a known tenant claim before any model, per-tenant budgets (requests and LLM
tokens), the prompt-cache salt from the verified claim overwriting the client's, and the config errors
for what the chosen data plane cannot enforce.

The rendered CEL is evaluated by `evaluate` below: a reader of exactly the expression forms the gateway
renders, with agentgateway v1.4.1's documented semantics (schema/cel-functions.md: `merge` lets the
argument's keys win; `toJson`/`json`; `sha256.encode` a hex digest; an evaluation error does not match
a `Require` rule). It reads the rendered string, so a rendering that let the client's value win (the
maps merged the other way round) or let a claim-less request through fails here."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import yaml

from components import names
from components.config import ConfigError, validate
from components.gateway_tenants import SALT_FIELD, kgateway_tenant_bucket, salted_body, tenant_identity
from plan.engine import ROOT
from tests.conftest import EXAMPLES, kgateway_only_doc, variant_plan

POLICY = "kubernetes:agentgateway.dev/v1alpha1:AgentgatewayPolicy"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
KEY = "5e" * 32


class CelError(Exception):
    pass


class _Error:
    """An evaluation error as a value (CEL: `false && error` is false, anything else with it an error)."""


def evaluate(expr: str, *, body: dict | None = None, claims: dict | None = None) -> Any:
    """Evaluates the expression forms the gateway renders: calls toJson/json/sha256.encode, `.merge`,
    map and list literals, string literals, `+`, `&&`, `in`, `==`, `jwt[...]`, `request.body`."""
    pattern = r'\.merge|"(?:[^"\\]|\\.)*"|&&|==|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[()\[\]{},:+]'
    tokens = re.findall(pattern, expr)
    assert not re.sub(pattern, "", expr).strip(), f"unreadable: {expr}"
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(want: str | None = None) -> str:
        nonlocal pos
        tok = tokens[pos]
        if want is not None and tok != want:
            raise AssertionError(f"expected {want!r}, got {tok!r} in {expr}")
        pos += 1
        return tok

    def args() -> list[Any]:
        take("(")
        out = [conj()]
        while peek() == ",":
            take(",")
            out.append(conj())
        take(")")
        return out

    def atom() -> Any:
        tok = take()
        if tok.startswith('"'):
            value: Any = json.loads(tok)
        elif tok == "toJson":
            value = json.dumps(args()[0])
        elif tok == "json":
            value = json.loads(args()[0])
        elif tok == "sha256.encode":
            value = hashlib.sha256(args()[0].encode()).hexdigest()
        elif tok == "request.body":
            value = json.dumps(body)
        elif tok == "jwt":
            value = claims if claims is not None else {}
        elif tok == "{":
            value = {}
            while peek() != "}":
                k = conj()
                take(":")
                value[k] = conj()
                if peek() == ",":
                    take(",")
            take("}")
        elif tok == "[":
            value = []
            while peek() != "]":
                value.append(conj())
                if peek() == ",":
                    take(",")
            take("]")
        else:
            raise AssertionError(f"unknown token {tok!r} in {expr}")
        while peek() in ("[", ".merge"):
            if take() == "[":
                key = conj()
                take("]")
                value = value[key] if isinstance(value, dict) and key in value else _Error()
            else:
                (other,) = args()
                value = {**value, **other}     # documented: the argument's keys win
        return value

    def binary(left: Any, right: Any, op) -> Any:
        return _Error() if isinstance(left, _Error) or isinstance(right, _Error) else op(left, right)

    def plus() -> Any:
        value = atom()
        while peek() == "+":
            take("+")
            value = binary(value, atom(), lambda a, b: a + b)
        return value

    def comparison() -> Any:
        value = plus()
        if peek() == "in":
            take("in")
            return binary(value, plus(), lambda a, b: a in b)
        if peek() == "==":
            take("==")
            return binary(value, plus(), lambda a, b: a == b)
        return value

    def conj() -> Any:
        value = comparison()
        while peek() == "&&":
            take("&&")
            right = comparison()
            value = False if value is False or right is False else binary(value, right, lambda a, b: a and b)
        return value

    result = conj()
    assert pos == len(tokens), f"trailing tokens in {expr}"
    if isinstance(result, _Error):
        raise CelError(expr)
    return result


def require_matches(expr: str, claims: dict) -> bool:
    """A `Require` rule: it matches only when the expression evaluates to true (an error does not match)."""
    try:
        return evaluate(expr, claims=claims) is True
    except CelError:
        return False


def example_config(name: str = "tenants"):
    doc = yaml.safe_load((EXAMPLES / f"Pulumi.{name}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()
           if k.startswith("agentic-platform:")}
    return validate(raw, name)


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
    models = example_config().models if variant == "tenants" else validate(_prod_raw(), "prod").models
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
    gw = validate(_kgw_raw(), "prod").gateway
    buckets = {t["name"]: p.inputs["spec"]["rateLimit"]["local"]["tokenBucket"]
               for p in kgw_plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy")
               if "rateLimit" in p.inputs["spec"] for t in p.inputs["spec"]["targetRefs"]}
    for tenant in ("tenant-a", "tenant-b"):
        rpm = gw.budget(tenant).requests_per_minute
        assert rpm is not None
        assert buckets[f"tenant-{tenant}"] == {"maxTokens": rpm, "tokensPerFill": rpm, "fillInterval": "60s"}


def test_a_tenant_budget_replaces_the_default():
    gw = validate(_kgw_raw(tenantBudgets={"tenant-a": {"requestsPerMinute": 300}}), "prod").gateway
    assert kgateway_tenant_bucket(gw, "tenant-a").model_dump() == {
        "max_tokens": 300, "tokens_per_fill": 300, "fill_interval": "60s"}
    assert kgateway_tenant_bucket(gw, "tenant-b").max_tokens == gw.default_tenant_budget.requests_per_minute
    no_budgets = validate(_kgw_raw(defaultTenantBudget={}, tenantBudgets={}), "prod").gateway
    assert kgateway_tenant_bucket(no_budgets, "tenant-b") == no_budgets.tenant_rate_limit


def _raw_of(doc: dict, **gateway_changes) -> dict[str, str]:
    doc = doc["config"]
    doc["agentic-platform:gateway"] = {**doc["agentic-platform:gateway"], **gateway_changes}
    return {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()
            if k.startswith("agentic-platform:")}


def _prod_raw(**gateway_changes) -> dict[str, str]:
    return _raw_of(yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text()), **gateway_changes)


def _kgw_raw(**gateway_changes) -> dict[str, str]:
    """Prod served by kgateway alone (tests/conftest.py kgateway_only_doc)."""
    return _raw_of(kgateway_only_doc(), **gateway_changes)


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
        validate(_kgw_raw(**changes), "prod")
    lines = [line for line in err.value.lines() if line.startswith(f"agentic-platform:{path}:")]
    assert lines and message in lines[0], err.value.lines()


def test_a_shared_tgi_model_cannot_forbid_prefix_sharing():
    """tgiSharing forbid with a TGI model in the shared ai-inference namespace (prod's Mixtral served
    by TGI from a pvc, as the seed had it)."""
    raw = _prod_raw(promptCache={"tgiSharing": "forbid"})
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
    gw = validate(_prod_raw(), "prod").gateway
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


# ----------------------------------------------------------------------------- 429 Retry-After

AGW_POLICY_CRD = "agentgateway.dev_agentgatewaypolicies.yaml"


def _prerouting_forbidden() -> set[str]:
    """The traffic fields the pinned AgentgatewayPolicy CRD forbids in phase PreRouting: read from its
    CEL rule "phase PreRouting only supports ..." (agentgateway-crds v1.4.1), which the plan's schema
    check does not evaluate."""
    import tarfile

    with tarfile.open(ROOT / "platform/charts/agentgateway-crds-v1.4.1.tgz") as tgz:
        member = next(m for m in tgz.getmembers() if m.name.endswith(AGW_POLICY_CRD))
        text = tgz.extractfile(member).read().decode()
    (rule,) = {m.group(1) for m in re.finditer(r"self\.phase == ''PreRouting'' \? \[([^\]]+)\]", text)}
    return set(re.findall(r"has\(self\.([A-Za-z]+)\)", rule))


def _retry_after(plan) -> dict:
    (spec,) = [p.inputs["spec"] for p in plan.by_type(POLICY)
               if "retry-after" in json.dumps(p.inputs["spec"].get("traffic", {}).get("transformation", {}))]
    return spec


@pytest.mark.program
def test_429_from_the_proxy_gets_retry_after(prod_plan):
    """agentgateway v1.4.1 answers its own 429 with x-ratelimit-reset only; a Gateway-phase response
    transformation (registered before any route's rate limit, so it applies to that 429) copies it to
    retry-after, keeping an upstream Retry-After. Read from prod's rendered policy."""
    spec = _retry_after(prod_plan)
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "name": names.AGENTGATEWAY_NAME}]
    traffic = spec["traffic"]
    assert traffic["phase"] == "PreRouting"           # a route-phase one would miss request-count 429s
    forbidden = _prerouting_forbidden()
    assert {"rateLimit", "retry"} <= forbidden and not forbidden & set(traffic)
    (header,) = traffic["transformation"]["response"]["set"]
    assert header["name"] == "retry-after"
    # coalesce(a, b): the first that resolves (schema/cel-functions.md); headers by lowercase name
    args = re.fullmatch(r'coalesce\((.*), (.*)\)', header["value"]).groups()
    lookup = [re.fullmatch(r'response\.headers\["([a-z-]+)"\]', a).group(1) for a in args]

    def result(headers: dict[str, str]) -> str | None:
        return next((headers[h] for h in lookup if h in headers), None)

    assert result({"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "37"}) == "37"
    assert result({"retry-after": "5", "x-ratelimit-reset": "37"}) == "5"     # an upstream value is kept
    assert result({"content-type": "application/json"}) is None               # nothing to copy: no header


def test_the_prerouting_rule_is_read_from_the_crd():
    """The reader of the CRD's rule is not a rubber stamp: it finds the fields the CRD lists."""
    forbidden = _prerouting_forbidden()
    assert {"buffer", "csrf", "rateLimit", "retry", "timeouts"} <= forbidden
    assert "transformation" not in forbidden and "jwtAuthentication" not in forbidden


# ----------------------------------------------------------------------------- canary / fallback on agentgateway

@pytest.mark.parametrize(("model_changes", "routes", "path", "message"), [
    # a TGI canary of a vLLM model: agentgateway serves the vLLM model, kgateway the TGI one
    ({2: {"engine": "tgi"}}, [{"model": "llama-3-70b", "canary": {"model": "mixtral-8x7b", "weight": 10}}],
     "gateway.routes[0].canary.model", "cannot mix them"),
    ({2: {"engine": "tgi"}}, [{"model": "llama-3-70b", "fallback": "mixtral-8x7b"}],
     "gateway.routes[0].fallback", "cannot mix them"),
    # a fallback in another namespace: a custom provider's backendRef is namespace-local
    ({1: {"tenant": "tenant-a"}}, [{"model": "llama-3-70b", "fallback": "llama-3-8b"}],
     "gateway.routes[0].fallback", "must share the primary's namespace"),
])
def test_agentgateway_canary_and_fallback_it_cannot_express_are_key_path_errors(model_changes, routes, path, message):
    raw = _prod_raw(routes=routes)
    models = json.loads(raw["models"])
    for i, change in model_changes.items():
        models[i].update(change)
        if change.get("engine") == "tgi":
            models[i].update(cache="pvc", cacheSizeGiB=200,
                             image="111122223333.dkr.ecr.us-west-2.amazonaws.com/text-generation-inference:3.3.6-nonroot")
    raw["models"] = json.dumps(models)
    with pytest.raises(ConfigError) as err:
        validate(raw, "prod")
    lines = [line for line in err.value.lines() if line.startswith(f"agentic-platform:{path}:")]
    assert lines and message in lines[0], err.value.lines()


def test_a_canary_in_another_namespace_is_fine():
    """A canary is a weighted backendRef of the route (ReferenceGrant per namespace), not a provider:
    it may live in a tenant's namespace."""
    raw = _prod_raw(routes=[{"model": "llama-3-70b", "canary": {"model": "llama-3-8b", "weight": 10}}])
    models = json.loads(raw["models"])
    models[1].update(tenant="tenant-a", maxReplicas=1)   # one replica fits tenant-a's quota
    raw["models"] = json.dumps(models)
    assert validate(raw, "prod").gateway.routes[0].canary.model == "llama-3-8b"


# ----------------------------------------------------------------------------- token usage per tenant

@pytest.mark.program
def test_token_usage_per_tenant_is_labelled_and_scraped(prod_plan):
    """The Cost Tracking dashboard's agentgateway_gen_ai_client_token_usage by `tenant`: a Gateway
    metrics policy labels every proxy metric with the verified tenant claim, a PodMonitor has Prometheus
    scrape the proxies' `metrics` port, and the plan's reachability allows that scrape."""
    (metrics,) = [p.inputs["spec"] for p in prod_plan.by_type(POLICY) if "frontend" in p.inputs["spec"]]
    assert metrics["targetRefs"][0]["name"] == names.AGENTGATEWAY_NAME
    (label,) = metrics["frontend"]["metrics"]["attributes"]["add"]
    assert label["name"] == "tenant"
    assert evaluate(label["expression"], claims={"tenant": "tenant-b", "sub": "u"}) == "tenant-b"
    (monitor,) = [m.inputs for m in prod_plan.by_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
                  if m.inputs["metadata"]["namespace"] == names.NS_GATEWAY]
    (proxy,) = [o for o in prod_plan.objects if o.kind == "Deployment" and o.name == names.AGENTGATEWAY_NAME]
    pod = proxy.manifest["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert endpoint["port"] in ports
    scrapes = [c for c in prod_plan.extras["reachability"]["connections"]
               if c["to"] == f"{names.NS_GATEWAY}/Deployment/{names.AGENTGATEWAY_NAME}"
               and c["port"] == ports[endpoint["port"]] and c["from"].startswith(f"{names.NS_OBSERVABILITY}/")]
    assert scrapes and all(c["allowed"] for c in scrapes)


def test_no_agentgateway_scrape_flow_without_it(dev_plan):
    """dev runs no agentgateway: no policy of ai-gateway admits its metrics port."""
    for p in dev_plan.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        if p.inputs["metadata"]["namespace"] != names.NS_GATEWAY:
            continue
        for rule in p.inputs["spec"].get("ingress", []):
            assert {"protocol": "TCP", "port": 15020} not in rule.get("ports", []), p.inputs["metadata"]["name"]


def test_more_budgeted_tenants_than_agentgateway_can_hold_is_a_key_path_error():
    """agentgateway-crds v1.4.1 caps rateLimit.conditional at 16 entries: 15 budgeted tenants plus the
    platform limit. Sixteen with the default budget fail on defaultTenantBudget; without it they pass."""
    raw = _prod_raw()
    tenants = json.loads(raw["tenants"])
    extra = [{"name": f"team-{i:02d}", "quota": {"gpu": 0}} for i in range(14)]
    raw["tenants"] = json.dumps(tenants + extra)          # 16 tenants, all with a budget
    with pytest.raises(ConfigError) as err:
        validate(raw, "prod")
    lines = [line for line in err.value.lines() if line.startswith("agentic-platform:gateway.defaultTenantBudget:")]
    assert lines and "at most 15" in lines[0], err.value.lines()
    raw["tenants"] = json.dumps(tenants + extra[:13])     # 15: fits
    assert len(validate(raw, "prod").tenants) == 15
    raw["tenants"] = json.dumps(tenants + extra)
    raw["gateway"] = json.dumps({**json.loads(raw["gateway"]), "defaultTenantBudget": {}})
    assert len(validate(raw, "prod").tenants) == 16       # only tenant-a and tenant-b have a budget
