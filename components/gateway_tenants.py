"""What the inference gateway does per tenant: the tenant identity every request must carry, each
tenant's budget (requests and LLM tokens per minute) and the prompt-cache salt set from the verified
tenant claim.

The facts each piece rests on, at the pinned versions:
- agentgateway v1.4.1 CEL (schema/cel-functions.md): `jwt` holds the verified JWT's claims; `json()`
  parses the body, `toJson()` serialises, `m.merge(n)` joins two maps with n's keys winning
  (`{"a":2,"k":"v"}.merge({"a":3})` is `{"a":3,"k":"v"}`), `sha256.encode()` is a hex digest.
- AgentgatewayPolicy (agentgateway-crds v1.4.1): `traffic.transformation.request.body` is a CEL
  expression whose result is the new body; `traffic.authorization` with action `Require` denies a
  request unless every require rule matches (an expression that fails to evaluate does not match);
  `traffic.rateLimit.conditional[]` runs the first entry whose `condition` holds, each with `local[]`
  limits of `requests` or `tokens` per Seconds/Minutes/Hours.
- Tokens are counted only on requests through an `ai` backend (crates/agentgateway/src/proxy/httpproxy.rs
  calls check_llm_request on the LLM path; localratelimit.rs check_request ignores `tokens` limits), so
  every vLLM pool is reached through an AgentgatewayBackend of `ai.provider.custom` whose backendRef is
  the InferencePool (agentgateway_backend_types.go: "may target only a namespace-local Service or
  InferencePool").
- vLLM >= 0.9 takes `cache_salt` in chat/completions requests and keys the prefix cache on it
  (docs/design/prefix_caching.md "cache salting"; the fix of CVE-2025-46570); TGI has no equivalent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

from components.config import GatewayConfig, TokenBucketConfig
from components.models import ModelEndpoint

SALT_FIELD = "cache_salt"
# agentgateway's custom LLM provider: which request paths are parsed as which API (the rest would
# default to chat completions). /v1/completions has no format of its own: Detect forwards it as-is and
# still extracts the usage for token limits (agentgateway_policy_types.go RouteTypeDetect).
LLM_ROUTES = {"/v1/chat/completions": "Completions", "/v1/completions": "Detect", "/v1/embeddings": "Embeddings"}
LLM_FORMATS = [{"type": "Completions"}, {"type": "Embeddings"}]


def claim(cfg: GatewayConfig) -> str:
    """The tenant claim as a CEL expression (index form: a claim name may hold `:` or `/`)."""
    return f"jwt[{json.dumps(cfg.jwt.tenant_claim)}]"


def tenant_identity(cfg: GatewayConfig, tenants: Sequence[str]) -> str:
    """Holds when the verified JWT carries the tenant claim and it names a known tenant."""
    return f"{json.dumps(cfg.jwt.tenant_claim)} in jwt && {claim(cfg)} in {json.dumps(sorted(tenants))}"


def is_tenant(cfg: GatewayConfig, tenant: str) -> str:
    return f"{claim(cfg)} == {json.dumps(tenant)}"


def salt_expression(cfg: GatewayConfig, key_hex: str) -> str:
    """A tenant's salt: sha256 of the platform's secret key and the verified tenant claim. Stable (the
    key is a RandomBytes in state), different per tenant, not guessable without the key."""
    return f'sha256.encode({json.dumps(key_hex + ":")} + {claim(cfg)})'


def salted_body(cfg: GatewayConfig, key_hex: str) -> str:
    """The request body with `cache_salt` set to the tenant's salt; `merge` lets the right-hand map win,
    so whatever `cache_salt` the client sent is overwritten."""
    return f"toJson(json(request.body).merge({{{json.dumps(SALT_FIELD)}: {salt_expression(cfg, key_hex)}}}))"


def salted_body_output(cfg: GatewayConfig, key_hex: pulumi.Output[str]) -> pulumi.Output[str]:
    return pulumi.Output.secret(key_hex.apply(lambda k: salted_body(cfg, k)))


def tenant_limits(cfg: GatewayConfig, tenant: str) -> list[dict[str, Any]]:
    """A tenant's agentgateway local limits: tokens and requests per minute, where configured."""
    budget, out = cfg.budget(tenant), []
    if budget.tokens_per_minute is not None:
        out.append({"tokens": budget.tokens_per_minute, "unit": "Minutes"})
    if budget.requests_per_minute is not None:
        out.append({"requests": budget.requests_per_minute, "unit": "Minutes"})
    return out


def conditional_limits(cfg: GatewayConfig, tenants: Sequence[str], platform: dict[str, Any]) -> dict[str, Any]:
    """`rateLimit` of a pool route: each tenant's budget (first matching condition runs), the platform
    limit for everyone else (the last entry, no condition). No budgets: the platform limit alone."""
    entries = [{"condition": is_tenant(cfg, t), "policy": {"local": limits}}
               for t in sorted(tenants) if (limits := tenant_limits(cfg, t))]
    if not entries:
        return {"local": [platform]}
    return {"conditional": [*entries, {"policy": {"local": [platform]}}]}


def kgateway_tenant_bucket(cfg: GatewayConfig, tenant: str) -> TokenBucketConfig:
    """A tenant route's kgateway bucket: its requestsPerMinute (refilled in full every minute), else
    tenantRateLimit. kgateway counts requests only (config rejects tokensPerMinute there)."""
    rpm = cfg.budget(tenant).requests_per_minute
    if rpm is None:
        return cfg.tenant_rate_limit
    return TokenBucketConfig.model_validate({"maxTokens": rpm, "tokensPerFill": rpm, "fillInterval": "60s"})


def owner_only(cfg: GatewayConfig, endpoint: ModelEndpoint) -> bool:
    """A model routed for its own tenant only: TGI (no salting) when tgiSharing is forbid."""
    return cfg.prompt_cache.tgi_sharing == "forbid" and endpoint.engine == "tgi" and endpoint.tenant is not None


def kgateway_serves(cfg: GatewayConfig, endpoint: ModelEndpoint) -> bool:
    """kgateway routes a model to its servers itself unless the agentgateway data plane serves it (every
    vLLM model with `inferenceRouting: agentgateway`): then kgateway forwards it to agentgateway
    (gateway_routes.forward_routes), the one place its tenant budgets, cache salt, canary and fallback
    are applied."""
    return not (cfg.inference_routing == "agentgateway" and endpoint.engine == "vllm")


def tenant_policies(cfg: GatewayConfig, tenants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the plan shows per tenant: the data plane's limits and the salt policy of vLLM routes."""
    agw = cfg.inference_routing == "agentgateway"
    out = {}
    for t in sorted(tenants):
        budget = cfg.budget(t)
        bucket = kgateway_tenant_bucket(cfg, t)
        out[t] = {
            "kgateway": (f"{bucket.tokens_per_fill} requests per {bucket.fill_interval} (bucket {bucket.max_tokens})"
                         + (" on TGI models; vLLM models forwarded to agentgateway" if agw else "")),
            "agentgateway": (tenant_limits(cfg, t) or "platform rateLimit only") if agw else "not deployed",
            "tokensPerMinute": budget.tokens_per_minute,
            "cacheSalt": ("vLLM: sha256(secret key, verified tenant claim), the client's cache_salt overwritten"
                          if cfg.prompt_cache.tenant_salt else "none: vLLM prefix cache shared between tenants"),
            "tgi": ("owner tenant only" if cfg.prompt_cache.tgi_sharing == "forbid"
                    else "shared prefix cache (TGI has no salting)"),
        }
    return out


def tenant_policy_lines(policies: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for t, p in policies.items():
        tokens = p["tokensPerMinute"]
        agw = p["agentgateway"]
        if isinstance(agw, list):
            agw = ", ".join(f"{limit.get('tokens', limit.get('requests'))} {'tokens' if 'tokens' in limit else 'requests'}"
                            f"/{limit['unit'].lower().rstrip('s')}" for limit in agw)
        lines.append(f"{t}: kgateway {p['kgateway']}; agentgateway {agw}; "
                     f"tokens/min {tokens if tokens is not None else 'unlimited'}")
        lines.append(f"  cache_salt: {p['cacheSalt']}; TGI: {p['tgi']}")
    return lines or ["no tenants"]
