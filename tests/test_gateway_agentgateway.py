"""Agentgateway (prod's model hop): its objects validate, pools have endpoint pickers, routes send model
ids to pools behind JWT and limits, token buckets as its local limits; off unless configured."""

from __future__ import annotations

import pytest
import yaml

from components import names
from components.agentgateway import local_rate_limit
from components.config import TokenBucketConfig
from plan.engine import ROOT
from plan.report import write_manifests
from tests.gateway_cases import (
    GATEWAY,
    PATHS,
    RELEASE,
    _named,
    forwards_to_agentgateway,
    llm_providers,
    routes,
    stack_config,
)
from tests.test_conformance import kube_version, problems, read_objects


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
