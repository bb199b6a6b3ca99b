"""agentgateway's tenant limits beyond the budgets: a 429 from the proxy carries Retry-After, the canary
and fallback forms it cannot express are key path errors, and token usage is labelled and scraped per
tenant."""

from __future__ import annotations

import json
import re

import pytest

from components import names
from components.config import ConfigError, validate
from plan.engine import ROOT
from tests.tenant_gateway import POLICY, evaluate, prod_raw

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
    raw = prod_raw(routes=routes)
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
    raw = prod_raw(routes=[{"model": "llama-3-70b", "canary": {"model": "llama-3-8b", "weight": 10}}])
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
    raw = prod_raw()
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
