"""The client's JWT reaches agentgateway only: kgateway keeps it on the request (forwardToken) for
the agentgateway hop, which verifies it again, and drops it on every route straight to a model
(components/gateway_routes.py DROP_CLIENT_TOKEN)."""

from __future__ import annotations

import pytest

from components import names
from components.gateway_routes import DROP_CLIENT_TOKEN

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
EXTENSION = "kubernetes:gateway.kgateway.dev/v1alpha1:GatewayExtension"
TO_AGENTGATEWAY = {"group": "", "kind": "Service", "name": names.AGENTGATEWAY_NAME, "port": names.GATEWAY_PORT}


def _kgateway_rules(plan):
    for route in plan.by_type(ROUTE):
        spec = route.inputs["spec"]
        if spec["parentRefs"][0]["name"] == names.GATEWAY_NAME and route.inputs["metadata"]["namespace"] == names.NS_GATEWAY:
            for rule in spec["rules"]:
                yield route.inputs["metadata"]["name"], rule


@pytest.mark.parametrize("fixture", ["agw_plan", "kgw_plan", "placement_plan"])
def test_routes_to_model_servers_drop_the_token_and_the_agentgateway_hop_keeps_it(fixture, request):
    plan = request.getfixturevalue(fixture)
    (ext,) = plan.by_type(EXTENSION)
    forwarded = ext.inputs["spec"]["jwt"]["providers"][0].get("forwardToken") is True
    direct = via = 0
    for name, rule in _kgateway_rules(plan):
        if rule["backendRefs"] == [TO_AGENTGATEWAY]:
            via += 1
            assert not rule.get("filters"), name                  # agentgateway verifies the JWT again
        elif any(b.get("kind") == "Service" for b in rule["backendRefs"]):
            direct += 1
            assert DROP_CLIENT_TOKEN in rule.get("filters", []), name
    # prod: vLLM through agentgateway (the token forwarded); the kgateway variant: every model straight;
    # the placement variant: both, its TGI model straight beside the forwarded vLLM ones
    assert forwarded == (via > 0)
    assert {"agw_plan": via and not direct, "kgw_plan": direct and not via, "placement_plan": via and direct}[fixture]


def test_the_token_header_is_the_jwt_providers_source():
    """No tokenSource set: kgateway's JWT provider reads `Authorization` (GatewayExtension
    jwt.providers[].tokenSource, kgateway-crds v2.4.3), the header the filter removes."""
    assert DROP_CLIENT_TOKEN["requestHeaderModifier"]["remove"] == ["Authorization"]


def test_no_provider_names_another_token_source(agw_plan):
    (ext,) = agw_plan.by_type(EXTENSION)
    assert all("tokenSource" not in p for p in ext.inputs["spec"]["jwt"]["providers"])
