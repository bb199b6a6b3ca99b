"""`gateway`: the inference gateway."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import DnsName, Duration, Problem, Quantity, Section
from domain.units import duration_seconds


class GatewayLoadBalancerConfig(Section):
    """The NLB the AWS Load Balancer Controller puts in front of the gateway proxy. It listens on
    443 only, TLS ending at the NLB with the ACM certificate; the plain-HTTP listener (port 80)
    agents use stays in-cluster. Without a certificate there is no NLB."""

    scheme: Literal["internal", "internet-facing"] = Field("internal", description="NLB scheme")
    certificate_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+$",
                                        description="ACM certificate of the NLB's TLS (443) listener; none: no NLB")
    source_ranges: list[ipaddress.IPv4Network] = Field(default_factory=list,
                                                       description="CIDRs allowed through the NLB (loadBalancerSourceRanges)")

    def problems(self) -> Iterator[Problem]:
        if self.scheme == "internet-facing":
            if self.certificate_arn is None:
                yield "certificateArn", "an internet-facing gateway needs HTTPS: set an ACM certificate ARN"
            if not self.source_ranges:
                yield "sourceRanges", "an internet-facing NLB needs the client CIDRs allowed to reach it"
        for i, cidr in enumerate(self.source_ranges):
            if cidr.prefixlen == 0:
                yield f"sourceRanges[{i}]", f"{cidr} opens the gateway to the internet; list your own CIDRs"


class GatewayProxyConfig(Section):
    """The Envoy proxy Deployment kgateway creates for the Gateway (via GatewayParameters)."""

    replicas: int = Field(2, ge=1, le=20, description="Envoy proxy replicas")
    cpu: Quantity = "500m"
    memory: Quantity = "512Mi"
    cpu_limit: Quantity = "1"
    memory_limit: Quantity = "1Gi"


class JwtConfig(Section):
    """The OIDC issuer whose tokens the gateway accepts (Cognito user pool, Okta, ...)."""

    issuer: str = Field(pattern=r"^https://[^\s/]+(/\S*)?$", description="the issuer (iss) tokens must carry")
    jwks_uri: str = Field(pattern=r"^https://[^\s/]+(/\S*)?$", description="where the issuer's signing keys are published")
    audiences: list[str] = Field(default_factory=list, description="accepted audiences (aud); empty: any")
    tenant_claim: str = Field("tenant", pattern=r"^[A-Za-z0-9_.:/-]{1,128}$",
                              description="claim copied to the x-tenant-id header (and keying tenant budgets and salts)")


class TokenBucketConfig(Section):
    """A local (per proxy replica) token bucket: `maxTokens`, refilled `tokensPerFill` every `fillInterval`."""

    max_tokens: int = Field(ge=1, description="bucket size (burst)")
    tokens_per_fill: int = Field(ge=1, description="tokens added every fillInterval")
    fill_interval: str = Field(pattern=r"^[0-9]{1,5}(ms|s|m|h)$", description="refill period, e.g. 1s, 60s")

    def problems(self) -> Iterator[Problem]:
        if self.tokens_per_fill > self.max_tokens:
            yield "tokensPerFill", f"{self.tokens_per_fill} is more than maxTokens ({self.max_tokens})"


class TenantBudgetConfig(Section):
    """A tenant's budget at the gateway, per minute: requests and LLM tokens (prompt + completion). Over it
    the gateway answers 429. Tokens are counted by the agentgateway data plane only (see docs/gateway.md)."""

    requests_per_minute: int | None = Field(
        None, ge=1, le=10_000_000, description="requests per minute; none: tenantRateLimit's bucket")
    tokens_per_minute: int | None = Field(
        None, ge=1, le=2_000_000_000,
        description="LLM tokens per minute (needs inferenceRouting: agentgateway); none: no token budget")


class PromptCacheConfig(Section):
    """Prompt-cache isolation between tenants (CVE-2025-46570: vLLM's shared prefix cache lets a client
    tell from time-to-first-token whether another client sent the same prefix)."""

    tenant_salt: bool = Field(False, description=(
        "set every vLLM request's cache_salt from the verified tenant claim, overriding the client's "
        "(needs inferenceRouting: agentgateway); requests without a known tenant claim are rejected"))
    tgi_sharing: Literal["allow", "forbid"] = Field("allow", description=(
        "TGI has no prefix-cache salting. forbid: every TGI model must belong to a tenant and is routed for "
        "that tenant only"))


class CanaryConfig(Section):
    """Send `weight` % of a model's traffic to another model's servers (step it 10 → 25 → 50 → 100)."""

    model: DnsName
    weight: int = Field(ge=0, le=100, description="% of the model's requests sent to the canary")


class ModelRouteConfig(Section):
    """Routing of one model (by its `models` name): a weighted canary and/or a fallback model."""

    model: DnsName
    canary: CanaryConfig | None = Field(None, description="a weighted canary")
    fallback: DnsName | None = Field(None, description="a models name tried when this model's servers fail")

    def problems(self) -> Iterator[Problem]:
        if self.canary is not None and self.canary.model == self.model:
            yield "canary.model", "a model cannot be its own canary"
        if self.fallback is not None and self.fallback == self.model:
            yield "fallback", "a model cannot be its own fallback"


class GatewayConfig(Section):
    """The inference gateway: Gateway API CRDs, kgateway, the AWS Load Balancer Controller, the
    Gateway, HTTPRoutes per model and the traffic policies (JWT, rate limits, retries, timeouts)."""

    controller_replicas: int = Field(2, ge=1, le=5, description="kgateway controller replicas")
    lbc_replicas: int = Field(2, ge=1, le=5, description="AWS Load Balancer Controller replicas")
    proxy: GatewayProxyConfig = Field(default_factory=GatewayProxyConfig)
    load_balancer: GatewayLoadBalancerConfig = Field(default_factory=GatewayLoadBalancerConfig)
    jwt: JwtConfig
    rate_limit: TokenBucketConfig = Field(
        default_factory=lambda: TokenBucketConfig.model_validate({"maxTokens": 1000, "tokensPerFill": 100,
                                                                  "fillInterval": "1s"}))
    tenant_rate_limit: TokenBucketConfig = Field(
        default_factory=lambda: TokenBucketConfig.model_validate({"maxTokens": 100, "tokensPerFill": 100,
                                                                  "fillInterval": "60s"}))
    request_timeout: Duration = Field("120s", description="whole request, retries included")
    backend_timeout: Duration = Field("60s", description="one backend request (at most requestTimeout)")
    retry_attempts: int = Field(3, ge=0, le=10, description="retries of a failed request")
    per_try_timeout: Duration = Field("30s", description="each try of a retried request (shorter than requestTimeout)")
    routes: list[ModelRouteConfig] = Field(default_factory=list, description="per-model routing: canaries and fallbacks")
    default_tenant_budget: TenantBudgetConfig = Field(
        default_factory=TenantBudgetConfig, description="every tenant's budget unless tenantBudgets names it")
    tenant_budgets: dict[str, TenantBudgetConfig] = Field(
        default_factory=dict, description="per tenant (by tenants name): its budget, replacing defaultTenantBudget")
    prompt_cache: PromptCacheConfig = Field(default_factory=PromptCacheConfig)
    inference_routing: Literal["none", "agentgateway"] = Field(
        "none", description=("agentgateway: a second, in-cluster data plane routing vLLM models through InferencePools "
                             "and their endpoint pickers"))

    def problems(self) -> Iterator[Problem]:
        seconds = duration_seconds
        for key, value in (("requestTimeout", self.request_timeout), ("backendTimeout", self.backend_timeout),
                           ("perTryTimeout", self.per_try_timeout)):
            if value == "Never":
                yield key, "must be a duration (e.g. 60s)"
        if "Never" not in (self.request_timeout, self.backend_timeout, self.per_try_timeout):
            if seconds(self.backend_timeout) > seconds(self.request_timeout):
                yield "backendTimeout", (f"{self.backend_timeout} is longer than requestTimeout "
                                         f"({self.request_timeout})")
            if seconds(self.per_try_timeout) >= seconds(self.request_timeout):
                yield "perTryTimeout", f"{self.per_try_timeout} must be shorter than requestTimeout ({self.request_timeout})"
        yield from self._isolation_problems()
        seen: set[str] = set()
        for i, r in enumerate(self.routes):
            if r.model in seen:
                yield f"routes[{i}].model", f"'{r.model}' has more than one routes entry"
            seen.add(r.model)

    def budget(self, tenant: str) -> TenantBudgetConfig:
        return self.tenant_budgets.get(tenant, self.default_tenant_budget)

    def served_aliases(self) -> dict[str, tuple[str, ...]]:
        """Each canary or fallback model -> the route models whose requests it may be sent. kgateway
        forwards the request unchanged, and vLLM answers 404 to a body naming a model it does not serve
        (vllm/entrypoints/openai/serving_models.py at v0.12.0), so such a model also serves under those
        names: `--served-model-name` takes several, "the server will respond to any of the provided
        names", the first naming responses and metrics (vllm/config/model.py `served_model_name`).
        With agentgateway, vLLM models are reached through it, whose backends rename the request's model
        to the one each serves (components/agentgateway.py); kgateway's own routes then hold TGI models
        only, which ignore the name: no aliases."""
        if self.inference_routing == "agentgateway":
            return {}
        aliases: dict[str, list[str]] = {}
        for r in self.routes:
            for target in (r.canary.model if r.canary else None, r.fallback):
                if target is not None and r.model not in aliases.setdefault(target, []):
                    aliases[target].append(r.model)
        return {model: tuple(sorted(primaries)) for model, primaries in aliases.items()}

    def _isolation_problems(self) -> Iterator[Problem]:
        """What only the agentgateway data plane enforces. kgateway v2.4.3's local rate limit is a token
        bucket of requests (TrafficPolicy rateLimit.local.tokenBucket, kgateway-crds v2.4.3); agentgateway
        v1.4.1's local limit has `tokens` (LLM tokens, counted on requests through an `ai` backend:
        crates/agentgateway/src/http/localratelimit.rs check_llm_request) and CEL body transformations."""
        if self.inference_routing == "agentgateway":
            return
        need = "needs inferenceRouting: agentgateway (kgateway's local rate limit counts requests, not tokens)"
        if self.default_tenant_budget.tokens_per_minute is not None:
            yield "defaultTenantBudget.tokensPerMinute", need
        for tenant, budget in self.tenant_budgets.items():
            if budget.tokens_per_minute is not None:
                yield f"tenantBudgets.{tenant}.tokensPerMinute", need
        if self.prompt_cache.tenant_salt:
            yield "promptCache.tenantSalt", ("needs inferenceRouting: agentgateway (the body transformation that "
                                            "overwrites cache_salt is agentgateway's CEL; kgateway has none)")
