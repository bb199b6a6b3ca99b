"""Inference gateway: routes reach every model, canary weights, JWT and rate limits on every route,
destroy order, the address output, config errors with key paths, optional InferencePools."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from components import names
from components.config import ConfigError, validate
from components.gateway_routes import chunks
from plan.engine import ROOT
from tests.conftest import STACKS, plan_of, rendered, stack_doc, write_stack
from tests.gateway_cases import (
    AGW_POLICY,
    PATHS,
    POLICY,
    RELEASE,
    backend_hosts,
    forwards_to_agentgateway,
    kgateway_gateway,
    llm_providers,
    pool_rule,
    pools_behind,
    primary_host,
    routes,
    rules_for,
    stack_config,
    stack_raw,
)


@pytest.mark.program
@pytest.mark.parametrize("stack", STACKS)
def test_every_model_is_reachable_by_its_model_id(stack):
    """Through the external entry (kgateway: the NLB and gatewayUrl): to the model's Service, or, for a
    model agentgateway serves, to agentgateway's Service, whose pool route sends to the model's pool."""
    plan = plan_of(stack)
    models = stack_config(stack).get("agentic-platform:models") or []
    assert models, f"{stack} declares no models"
    for m in models:
        found = [f for f in rules_for(plan, m["name"]) if f[0]["spec"]["parentRefs"][0]["name"] == names.GATEWAY_NAME]
        assert {match["path"]["value"] for _, _, match in found} == PATHS, m["name"]
        namespace = m.get("tenant") or names.NS_INFERENCE
        forwarded = False
        for _, rule, match in found:
            assert match["path"]["type"] == "Exact"
            assert rule["timeouts"] == {"request": "120s", "backendRequest": "60s"}
            if forwards_to_agentgateway(rule["backendRefs"][0]):
                forwarded = True
                assert rule["backendRefs"] == [rule["backendRefs"][0]]
            else:
                assert primary_host(plan, rule["backendRefs"][0]) == f"{m['name']}.{namespace}.svc.cluster.local"
        if forwarded:
            assert m["engine"] == "vllm"
            first = pool_rule(plan, m["name"])["backendRefs"][0]
            assert pools_behind(plan, first)[0] == m["name"] and first["namespace"] == namespace
        else:
            # each tenant reaches it through its own (rate-limited) kgateway route as well
            for t in stack_config(stack).get("agentic-platform:tenants") or []:
                assert len(rules_for(plan, m["name"], t["name"])) == len(PATHS)


def test_service_refs_use_the_model_contract(kgw_plan):
    ports = {m["name"]: names.model_port(m["engine"]) for m in stack_config("prod")["agentic-platform:models"]}
    refs = [ref for r in routes(kgw_plan) for rule in r["spec"]["rules"] for ref in rule["backendRefs"]
            if ref["kind"] == "Service"]
    assert refs
    for ref in refs:
        assert ref["port"] == ports[ref["name"]]
    grants = {r.inputs["metadata"]["namespace"]: r.inputs["spec"] for r in
              kgw_plan.by_type("kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant")}
    for ref in refs:
        assert grants[ref["namespace"]]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                                     "namespace": names.NS_GATEWAY}]


def test_kgateway_canary_weights_are_the_configured_ones(kgw_plan):
    gateway = stack_config("prod")["agentic-platform:gateway"]
    canaries = [r for r in gateway["routes"] if r.get("canary")]
    assert canaries
    for entry in canaries:
        for _, rule, _ in rules_for(kgw_plan, entry["model"]):
            weights = [ref["weight"] for ref in rule["backendRefs"]]
            assert weights == [100 - entry["canary"]["weight"], entry["canary"]["weight"]]
            canary = rule["backendRefs"][1]
            assert (canary["kind"], canary["name"]) == ("Service", entry["canary"]["model"])


def test_kgateway_fallback_is_a_priority_group_with_health_checks(kgw_plan):
    entry = next(r for r in stack_config("prod")["agentic-platform:gateway"]["routes"] if r.get("fallback"))
    _, rule, _ = rules_for(kgw_plan, entry["model"])[0]
    first = rule["backendRefs"][0]
    assert first["kind"] == "Backend"
    hosts = backend_hosts(kgw_plan, first["name"])
    assert [h.split(".")[0] for h in hosts] == [entry["model"], entry["fallback"]]
    health = [p.inputs["spec"] for p in kgw_plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:BackendConfigPolicy")
              if p.inputs["spec"]["targetRefs"][0]["name"] == first["name"]]
    assert health and health[0]["healthCheck"]["http"]["path"] == "/health"
    assert health[0]["outlierDetection"]["consecutive5xx"] > 0


def test_agentgateway_canary_is_weighted_llm_backends(prod_plan):
    """prod's `llama-3-70b` canary on the vLLM path: the pool route's two weighted backendRefs, the
    canary's backend renaming the request to the model its vLLM serves."""
    entries = [r for r in stack_config("prod")["agentic-platform:gateway"]["routes"] if r.get("canary")]
    assert entries
    for entry in entries:
        refs = pool_rule(prod_plan, entry["model"])["backendRefs"]
        weight = entry["canary"]["weight"]
        assert [r["weight"] for r in refs] == [100 - weight, weight]
        assert pools_behind(prod_plan, refs[1]) == [entry["canary"]["model"]]
        assert [p["custom"]["model"] for p in llm_providers(prod_plan, refs[1])] == [entry["canary"]["model"]]


def test_agentgateway_fallback_is_a_second_priority_group(prod_plan):
    """prod's `fallback: llama-3-8b`: the primary's LLM backend has two priority groups, its own pool
    (evicted after consecutive 5xx) then the fallback's, renamed to the fallback model; the route
    retries 5xx, so a failed request is tried again after the eviction."""
    entry = next(r for r in stack_config("prod")["agentic-platform:gateway"]["routes"] if r.get("fallback"))
    rule = pool_rule(prod_plan, entry["model"])
    first = rule["backendRefs"][0]
    assert pools_behind(prod_plan, first) == [entry["model"], entry["fallback"]]
    primary, fallback = llm_providers(prod_plan, first)
    assert (primary["name"], fallback["name"]) == (entry["model"], entry["fallback"])
    assert fallback["custom"]["model"] == entry["fallback"] and primary["custom"]["model"] == entry["model"]
    health = primary["policies"]["health"]
    assert health["unhealthyCondition"] == "response.code >= 500" and health["eviction"]["consecutiveFailures"] >= 1
    retry = [p.inputs["spec"]["traffic"]["retry"] for p in prod_plan.by_type(AGW_POLICY)
             if "retry" in p.inputs["spec"].get("traffic", {})
             and {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": f"pool-{entry['model']}"}
             in p.inputs["spec"]["targetRefs"]]
    assert retry and retry[0]["attempts"] >= 1 and 503 in retry[0]["codes"]


@pytest.mark.program
@pytest.mark.parametrize("stack", STACKS)
def test_every_route_is_behind_jwt_and_rate_limits(stack):
    plan = plan_of(stack)
    policies = [p.inputs["spec"] for p in plan.by_type(POLICY)]
    jwt_targets = {(t["kind"], t["name"]) for p in policies if "jwtAuth" in p for t in p["targetRefs"]}
    limited = {t["name"]: p for p in policies if "rateLimit" in p for t in p["targetRefs"] if t["kind"] == "HTTPRoute"}
    agw_limited = {t["name"] for p in plan.by_type(AGW_POLICY) if "rateLimit" in p.inputs["spec"].get("traffic", {})
                   for t in p.inputs["spec"]["targetRefs"]}
    assert routes(plan)
    for route in routes(plan):
        rname = route["metadata"]["name"]
        parents = {ref["name"] for ref in route["spec"]["parentRefs"]}
        if parents == {names.AGENTGATEWAY_NAME}:   # its JWT and limits: test_agentgateway_routes_...
            continue
        assert {("Gateway", p) for p in parents} & jwt_targets or ("HTTPRoute", rname) in jwt_targets, \
            f"{rname} is not behind JWT auth"
        refs = [ref for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
        if all(forwards_to_agentgateway(ref) for ref in refs):
            # kgateway forwards; agentgateway limits (and retries) each of its models' pool routes
            assert rname not in limited
            models = {h["value"] for rule in route["spec"]["rules"] for mt in rule["matches"] for h in mt["headers"]}
            assert {f"pool-{m}" for m in models} <= agw_limited, rname
            continue
        assert rname in limited, f"{rname} has no rate limit"
        bucket = limited[rname]["rateLimit"]["local"]["tokenBucket"]
        assert bucket["maxTokens"] >= bucket["tokensPerFill"] >= 1
        assert limited[rname]["retry"]["retryOn"] == ["5xx", "reset", "connect-failure"]
    gw = stack_config(stack)["agentic-platform:gateway"]
    model_limits = [p["rateLimit"]["local"]["tokenBucket"] for p in policies
                    if "rateLimit" in p and p["targetRefs"][0]["name"].startswith("model-")]
    model_routes = [r for r in routes(plan) if r["metadata"]["name"].startswith("model-")]
    assert len(model_limits) == len(chunks(model_routes)) and all(b == gw["rateLimit"] for b in model_limits)
    extension = plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:GatewayExtension")[0].inputs["spec"]
    provider = extension["jwt"]["providers"][0]
    assert provider["issuer"] == gw["jwt"]["issuer"] and provider["jwks"]["remote"]["url"] == gw["jwt"]["jwksUri"]


@pytest.mark.program
@pytest.mark.parametrize("stack", STACKS)
def test_gateway_listeners_and_load_balancer(stack):
    plan = plan_of(stack)
    gateway = kgateway_gateway(plan).inputs
    assert gateway["metadata"] == {**gateway["metadata"], "name": names.GATEWAY_NAME, "namespace": names.NS_GATEWAY}
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    assert listeners["http"]["port"] == names.GATEWAY_PORT and listeners["https"]["port"] == 443
    for listener in listeners.values():
        assert listener["allowedRoutes"]["namespaces"] == {
            "from": "Selector", "selector": {"matchLabels": {names.GATEWAY_ACCESS_LABEL: "true"}}}
    params = plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:GatewayParameters")[0].inputs["spec"]["kube"]
    assert params["service"] == {"type": "ClusterIP"}  # the NLB is a Service of its own, TLS only
    (nlb,) = [r for r in plan.by_type("kubernetes:core/v1:Service") if r.inputs["spec"].get("type") == "LoadBalancer"]
    ann = nlb.inputs["metadata"]["annotations"]
    lb = stack_config(stack)["agentic-platform:gateway"]["loadBalancer"]
    assert ann["service.beta.kubernetes.io/aws-load-balancer-scheme"] == lb["scheme"]
    assert ann["service.beta.kubernetes.io/aws-load-balancer-ssl-cert"] == lb["certificateArn"]
    assert ann["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert params["envoyContainer"]["resources"]["limits"]


@pytest.mark.program
@pytest.mark.parametrize("stack", STACKS)
def test_gateway_depends_on_its_controllers(stack):
    """Destroy order: the Gateway (its Service, hence the NLB) goes while kgateway and the LBC run."""
    plan = plan_of(stack)
    releases = {r.inputs["name"]: r.urn for r in plan.by_type(RELEASE)}
    gateway = kgateway_gateway(plan)
    assert releases["aws-load-balancer-controller"] in gateway.dependencies
    assert releases["kgateway"] in gateway.dependencies
    lbc = next(r for r in plan.by_type(RELEASE) if r.inputs["name"] == "aws-load-balancer-controller")
    assert lbc.inputs["namespace"] == names.NS_SYSTEM
    assert lbc.inputs["values"]["replicaCount"] == 2
    assert {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"} in lbc.inputs["values"]["tolerations"]
    kgw = next(r for r in plan.by_type(RELEASE) if r.inputs["name"] == "kgateway")
    assert kgw.inputs["skipCrds"] is True and kgw.inputs["values"]["controller"]["replicaCount"] == 2
    assoc = [r.inputs for r in plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
             if r.inputs["serviceAccount"] == "aws-load-balancer-controller"]
    assert assoc and assoc[0]["namespace"] == names.NS_SYSTEM


@pytest.mark.program
@pytest.mark.parametrize("stack", STACKS)
def test_gateway_namespace_admits_its_own_routes(stack):
    """The generated routes live in ai-gateway; the listeners admit labelled namespaces only."""
    plan = plan_of(stack)
    ns = [r.inputs for r in plan.by_type("kubernetes:core/v1:Namespace")
          if r.inputs["metadata"]["name"] == names.NS_GATEWAY]
    if not ns:
        pytest.skip("no tenancy layer in the plan")
    assert ns[0]["metadata"]["labels"].get(names.GATEWAY_ACCESS_LABEL) == "true"


def test_gateway_address_is_a_stack_output(any_plan):
    assert any_plan.outputs["gatewayUrl"] == (
        f"http://{names.GATEWAY_NAME}.{names.NS_GATEWAY}.svc.cluster.local:{names.GATEWAY_PORT}")


def _plan_file(doc: dict) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_stack(Path(tmp), doc)
        return subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)


@pytest.mark.slow
def test_canary_to_unknown_model_is_a_key_path_error():
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:gateway"]["routes"] = [
        {"model": "llama-3-70b", "canary": {"model": "no-such-model", "weight": 20}, "fallback": "nope"}]
    result = _plan_file(doc)
    assert result.returncode == 2, result.stderr
    assert "agentic-platform:gateway.routes[0].canary.model: 'no-such-model' is not a models name" in result.stderr
    assert "agentic-platform:gateway.routes[0].fallback: 'nope' is not a models name" in result.stderr


@pytest.mark.parametrize(("changes", "path", "message"), [
    ({"loadBalancer": {"scheme": "internet-facing"}}, "gateway.loadBalancer.certificateArn", "needs HTTPS"),
    ({"loadBalancer": {"scheme": "internet-facing", "certificateArn": "arn:aws:acm:us-west-2:111122223333:certificate/x"}},
     "gateway.loadBalancer.sourceRanges", "client CIDRs"),
    ({"backendTimeout": "300s"}, "gateway.backendTimeout", "longer than requestTimeout"),
    ({"rateLimit": {"maxTokens": 10, "tokensPerFill": 100, "fillInterval": "1s"}}, "gateway.rateLimit.tokensPerFill",
     "more than maxTokens"),
    ({"routes": [{"model": "llama-3-70b", "canary": {"model": "llama-3-70b", "weight": 10}}]},
     "gateway.routes[0].canary.model", "its own canary"),
    ({"routes": [{"model": "ghost"}]}, "gateway.routes[0].model", "not a models name"),
    ({"jwt": {"issuer": "http://insecure", "jwksUri": "https://x/jwks"}}, "gateway.jwt.issuer", ""),
])
def test_bad_gateway_config_names_the_key(changes, path, message):
    with pytest.raises(ConfigError) as err:
        validate(stack_raw("prod", **changes), "prod")
    lines = [line for line in err.value.lines() if line.startswith(f"agentic-platform:{path}:")]
    assert lines and message in lines[0], err.value.lines()



def test_lbc_registers_no_service_webhook(any_plan):
    """aws-load-balancer-controller 3.5.0 templates/webhook.yaml: with enableServiceMutatorWebhook the
    chart registers mservice.elbv2.k8s.aws (failurePolicy Fail, every namespace), which rejects every
    Service created while the controller has no running pod (kubernetes-sigs/aws-load-balancer-
    controller#4140). Off; every pod webhook that stays is opt-in by label or Ignore."""

    (lbc,) = [r for r in any_plan.by_type(RELEASE) if r.inputs["name"] == "aws-load-balancer-controller"]
    assert lbc.inputs["values"]["enableServiceMutatorWebhook"] is False
    objects = rendered(any_plan, "aws-load-balancer-controller")
    (mutating,) = [o for o in objects if o["kind"] == "MutatingWebhookConfiguration"]
    for hook in mutating["webhooks"]:
        assert "services" not in [res for rule in hook["rules"] for res in rule["resources"]], hook["name"]
        # opt-in: a namespace or pod label must say `In` for the webhook to apply
        gated = any(e.get("operator") == "In" for sel in ("namespaceSelector", "objectSelector")
                    for e in (hook.get(sel) or {}).get("matchExpressions", []))
        targets_pods = "pods" in [res for rule in hook["rules"] for res in rule["resources"]]
        assert not targets_pods or gated or hook["failurePolicy"] == "Ignore", hook["name"]
