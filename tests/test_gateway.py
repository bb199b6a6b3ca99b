"""Inference gateway: routes reach every model, canary weights, JWT and rate limits on every route,
destroy order, the address output, config errors with key paths, optional InferencePools."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from components import names
from components.agentgateway import local_rate_limit
from components.config import ConfigError, TokenBucketConfig, validate
from components.gateway import token_bucket
from components.gateway_routes import chunks
from components.gateway_tenants import kgateway_tenant_bucket
from plan.admission.schema import crd_validator
from plan.engine import ROOT, Plan
from plan.report import write_manifests
from tests.conftest import STACKS, kgateway_only_doc, plan_file, plan_of, rendered, stack_doc, write_stack
from tests.test_conformance import kube_version, problems, read_objects

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
POLICY = "kubernetes:gateway.kgateway.dev/v1alpha1:TrafficPolicy"
BACKEND = "kubernetes:gateway.kgateway.dev/v1alpha1:Backend"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
RELEASE = "kubernetes:helm.sh/v3:Release"
PATHS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


def stack_config(stack: str) -> dict:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def kgateway_gateway(plan: Plan):
    """The external entry's Gateway (prod also has agentgateway's, in no fixed order)."""
    (gw,) = [r for r in plan.by_type(GATEWAY) if r.inputs["metadata"]["name"] == names.GATEWAY_NAME]
    return gw


def routes(plan: Plan) -> list[dict]:
    return [r.inputs for r in plan.by_type(ROUTE)]


def backend_hosts(plan: Plan, name: str) -> list[str]:
    """The Service hosts a kgateway Backend sends to, in priority order."""
    by_name = {b.inputs["metadata"]["name"]: b.inputs["spec"] for b in plan.by_type(BACKEND)}
    spec = by_name[name]
    if spec["type"] == "Static":
        return [h["host"] for h in spec["static"]["hosts"]]
    return [h for g in spec["priorityGroups"] for ref in g["backendRefs"] for h in backend_hosts(plan, ref["name"])]


def primary_host(plan: Plan, ref: dict) -> str:
    if ref["kind"] == "Service":
        return f"{ref['name']}.{ref['namespace']}.svc.cluster.local"
    return backend_hosts(plan, ref["name"])[0]


def rules_for(plan: Plan, model: str, tenant: str | None = None) -> list[dict]:
    out = []
    for route in routes(plan):
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                headers = {h["name"]: h["value"] for h in match["headers"]}
                if headers.get("x-model-id") == model and headers.get("x-tenant-id") == tenant:
                    out.append((route, rule, match))
    return out


AGW_BACKEND = "kubernetes:agentgateway.dev/v1alpha1:AgentgatewayBackend"
AGW_POLICY = "kubernetes:agentgateway.dev/v1alpha1:AgentgatewayPolicy"


def forwards_to_agentgateway(ref: dict) -> bool:
    return ref["kind"] == "Service" and ref["name"] == names.AGENTGATEWAY_NAME and ref["port"] == names.GATEWAY_PORT


def llm_providers(plan: Plan, ref: dict) -> list[dict]:
    """The custom providers of an AgentgatewayBackend ref, in priority order (one without groups)."""
    ai = _named(plan, AGW_BACKEND)[(ref["namespace"], ref["name"])]["spec"]["ai"]
    if "provider" in ai:
        return [ai["provider"]]
    return [p for g in ai["groups"] for p in g["providers"]]


def pools_behind(plan: Plan, ref: dict) -> list[str]:
    """The InferencePools an AgentgatewayBackend ref sends to, in priority order."""
    out = []
    for p in llm_providers(plan, ref):
        pool = p["custom"]["backendRef"]
        assert (pool["group"], pool["kind"]) == ("inference.networking.k8s.io", "InferencePool")
        out.append(pool["name"])
    return out


def pool_rule(plan: Plan, model: str) -> dict:
    """The agentgateway Gateway's rule for a model id (on its pool route)."""
    found = [(route, rule) for route, rule, _ in rules_for(plan, model)
             if route["spec"]["parentRefs"][0]["name"] == names.AGENTGATEWAY_NAME]
    assert {r["metadata"]["name"] for r, _ in found} == {f"pool-{model}"}, model
    return found[0][1]


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


def _raw(stack: str, **gateway_changes) -> dict[str, str]:
    cfg = stack_config(stack)
    gw = {**cfg["agentic-platform:gateway"], **gateway_changes}
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in cfg.items()
           if k.startswith("agentic-platform:")}
    raw["gateway"] = json.dumps(gw)
    return raw


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
        validate(_raw("prod", **changes), "prod")
    lines = [line for line in err.value.lines() if line.startswith(f"agentic-platform:{path}:")]
    assert lines and message in lines[0], err.value.lines()


def _named(plan: Plan, typ: str) -> dict[tuple[str, str], dict]:
    return {(r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"]): r.inputs
            for r in plan.by_type(typ)}


def test_agentgateway_objects_all_validate(agw_plan, tmp_path):

    objects = read_objects(write_manifests(agw_plan, tmp_path))
    assert not (found := problems(objects, kube_version("prod"))), "\n".join(found)
    kinds = {o.kind for o in objects}
    assert {"InferencePool", "AgentgatewayPolicy", "AgentgatewayBackend", "AgentgatewayParameters"} <= kinds


def test_agentgateway_pools_have_endpoint_pickers(agw_plan):
    vllm = [m for m in stack_config("prod")["agentic-platform:models"] if m["engine"] == "vllm"]
    assert vllm
    pools = _named(agw_plan, "kubernetes:inference.networking.k8s.io/v1:InferencePool")
    deployments = _named(agw_plan, "kubernetes:apps/v1:Deployment")
    services = _named(agw_plan, "kubernetes:core/v1:Service")
    assert {n for _, n in pools} == {m["name"] for m in vllm}
    epp_image = yaml.safe_load((ROOT / "platform/images.yaml").read_text())["epp"]
    for m in vllm:
        ns = m.get("tenant") or names.NS_INFERENCE
        pool = pools[(ns, m["name"])]["spec"]
        assert pool["selector"]["matchLabels"] == {names.MODEL_LABEL: m["name"]}
        assert pool["targetPorts"] == [{"number": names.PORT_VLLM}]
        ref = pool["endpointPickerRef"]
        # the picker the pool names exists, in the pool's namespace, on the port the pool names
        svc = services[(ns, ref["name"])]["spec"]
        assert ref["port"]["number"] in {p["port"] for p in svc["ports"]}
        epp = deployments[(ns, ref["name"])]["spec"]
        assert epp["selector"]["matchLabels"].items() <= epp["template"]["metadata"]["labels"].items()
        assert svc["selector"].items() <= epp["template"]["metadata"]["labels"].items()
        pod = epp["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == f"{epp_image['registry']}/{epp_image['repository']}:{epp_image['tag']}"
        args = container["args"]
        assert args[args.index("--pool-name") + 1] == m["name"] and args[args.index("--pool-namespace") + 1] == ns
        assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"
        # restricted Pod Security: the namespace enforces it
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["limits"] and container["readinessProbe"]
    releases = {r.inputs["name"]: r.inputs for r in agw_plan.by_type(RELEASE)}
    assert releases["agentgateway"]["values"]["inferenceExtension"] == {"enabled": True}
    assert releases["agentgateway"]["skipCrds"] is True
    assert releases["agentgateway"]["version"] == releases["agentgateway-crds"]["version"]


def test_agentgateway_routes_send_model_ids_to_pools_behind_jwt_and_limits(agw_plan):
    gw_cfg = stack_config("prod")["agentic-platform:gateway"]
    gateways = _named(agw_plan, GATEWAY)
    agw = gateways[(names.NS_GATEWAY, "ai-inference-agentgateway")]["spec"]
    assert agw["gatewayClassName"] == "agentgateway"
    pools = {n: ns for ns, n in _named(agw_plan, "kubernetes:inference.networking.k8s.io/v1:InferencePool")}
    pool_routes = {}
    for route in routes(agw_plan):
        for rule in route["spec"]["rules"]:
            for ref in rule["backendRefs"][:1]:   # the primary (a canary's: test_agentgateway_canary_...)
                if ref["kind"] == "AgentgatewayBackend":
                    # route -> the model's LLM backend (same namespace as its pool) -> the pool
                    assert route["spec"]["parentRefs"][0]["name"] == "ai-inference-agentgateway"
                    pool = llm_providers(agw_plan, ref)[0]["custom"]["backendRef"]
                    assert pool["group"] == "inference.networking.k8s.io" and pool["kind"] == "InferencePool"
                    assert ref["namespace"] == pools[pool["name"]]
                    models = {h["value"] for mt in rule["matches"] for h in mt["headers"] if h["name"] == "x-model-id"}
                    assert models == {pool["name"]}
                    assert {mt["path"]["value"] for mt in rule["matches"]} == PATHS
                    pool_routes[route["metadata"]["name"]] = pool["name"]
    assert sorted(pool_routes.values()) == sorted(pools)
    grants = _named(agw_plan, "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant")
    for ns in set(pools.values()):
        assert {"group": "agentgateway.dev", "kind": "AgentgatewayBackend"} in grants[(ns, "ai-gateway-pools")][
            "spec"]["to"]
    policies = [p.inputs["spec"] for p in agw_plan.by_type("kubernetes:agentgateway.dev/v1alpha1:AgentgatewayPolicy")
                if "traffic" in p.inputs["spec"]]
    jwt = [p for p in policies if "jwtAuthentication" in p["traffic"]]
    assert jwt and jwt[0]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "ai-inference-agentgateway"}]
    provider = jwt[0]["traffic"]["jwtAuthentication"]["providers"][0]
    assert provider["issuer"] == gw_cfg["jwt"]["issuer"]
    assert gw_cfg["jwt"]["jwksUri"].endswith("/" + provider["jwks"]["remote"]["jwksPath"])
    # the platform limit: the policy's local limit, or with tenant budgets the last (unconditional) entry
    limited = {t["name"]: (p["traffic"]["rateLimit"].get("local") or
                           p["traffic"]["rateLimit"]["conditional"][-1]["policy"]["local"])[0]
               for p in policies if "rateLimit" in p["traffic"] for t in p["targetRefs"]}
    assert set(limited) == set(pool_routes)
    for bucket in limited.values():
        assert bucket["requests"] >= 1 and bucket["unit"] in {"Seconds", "Minutes", "Hours"}


def test_agentgateway_off_by_default(dev_plan, kgw_plan):
    """dev sets no inferenceRouting (none, the default), the kgateway variant none explicitly."""
    assert "inferenceRouting" not in stack_config("dev")["agentic-platform:gateway"] or \
        stack_config("dev")["agentic-platform:gateway"]["inferenceRouting"] == "none"
    for plan in (dev_plan, kgw_plan):
        assert not plan.by_type("kubernetes:inference.networking.k8s.io/v1:InferencePool")
        assert not [r for r in plan.by_type(RELEASE) if r.inputs["name"].startswith("agentgateway")]
        assert not [r for r in routes(plan) if forwards_to_agentgateway(r["spec"]["rules"][0]["backendRefs"][0])]


@pytest.mark.parametrize(("bucket", "expected"), [
    ({"maxTokens": 1000, "tokensPerFill": 100, "fillInterval": "1s"}, {"requests": 100, "unit": "Seconds", "burst": 900}),
    ({"maxTokens": 100, "tokensPerFill": 100, "fillInterval": "60s"}, {"requests": 100, "unit": "Minutes", "burst": 0}),
    ({"maxTokens": 10, "tokensPerFill": 10, "fillInterval": "500ms"}, {"requests": 20, "unit": "Seconds", "burst": 0}),
    ({"maxTokens": 7, "tokensPerFill": 7, "fillInterval": "7m"}, {"requests": 1, "unit": "Minutes", "burst": 0}),
    ({"maxTokens": 7, "tokensPerFill": 7, "fillInterval": "11s"}, {"requests": 2291, "unit": "Hours", "burst": 0}),
])
def test_token_bucket_as_agentgateway_local_limit(bucket, expected):

    assert local_rate_limit(TokenBucketConfig.model_validate(bucket)) == expected


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
    gw = validate(_raw("prod"), "prod").gateway
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
