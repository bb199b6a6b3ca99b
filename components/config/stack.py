"""The whole stack config: a field per `agentic-platform:<key>`, and its secret keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from components.config.agents import AgentConfig, AgentRuntimeConfig
from components.config.base import Section
from components.config.cluster import ClusterConfig
from components.config.compute import BudgetConfig, CpuPoolConfig, GpuPoolConfig, GpuStackConfig
from components.config.cost import CostConfig
from components.config.data import DataConfig
from components.config.gateway import GatewayConfig
from components.config.models import ModelConfig, ModelServingConfig
from components.config.network import NetworkConfig
from components.config.observability import ObservabilityConfig
from components.config.tenancy import PlatformQuotasConfig, TenantConfig

Environment = Literal["dev", "staging", "prod"]

# Secret keys (`pulumi config set --secret`), read as Pulumi secrets by `load_secrets`, never
# into the pydantic model. name -> what it is.
SECRET_KEYS: dict[str, str] = {
    "hfToken": "Hugging Face token the model servers download gated weights with",
    "agentGatewayToken": "bearer token kagent sends to the inference gateway (prod: a service-account JWT from the IdP)",
}
# When a secret key must be set (checked with the rest of the config, before anything is declared).
# (hfToken is optional: without it only ungated models download.)
SECRET_REQUIRED: dict[str, Callable[[PlatformConfig], bool]] = {
    "agentGatewayToken": lambda cfg: bool(cfg.agents),
}


class PlatformConfig(Section):
    """The whole stack config. A field per `agentic-platform:<key>`."""

    environment: Environment = Field(description="picks the policy enforcement levels")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    protect_data: bool = Field(
        True, description=("protect buckets, KMS keys, databases and caches from pulumi destroy, retain data stores' "
                           "volumes; false: buckets are forceDestroy (emptied on destroy)"))
    gpu_pools: list[GpuPoolConfig] = Field(default_factory=list, description="GPU NodePools")
    cpu_pool: CpuPoolConfig = Field(default_factory=CpuPoolConfig)
    gpu_stack: GpuStackConfig = Field(default_factory=GpuStackConfig)
    tenants: list[TenantConfig] = Field(default_factory=list, description="tenant namespaces")
    platform_quotas: PlatformQuotasConfig = Field(default_factory=PlatformQuotasConfig)
    models: list[ModelConfig] = Field(default_factory=list, description="the model catalog")
    model_serving: ModelServingConfig = Field(default_factory=ModelServingConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    gateway: GatewayConfig | None = Field(None, description="the inference gateway; none: no gateway layer")
    agent_runtime: AgentRuntimeConfig = Field(default_factory=AgentRuntimeConfig)
    agents: list[AgentConfig] = Field(default_factory=list, description="kagent Declarative Agents")
    budget: BudgetConfig | None = Field(
        None, description="cost ceiling (hourly or monthly USD); the plan's ceiling above it fails the plan")

    @property
    def cluster_name(self) -> str:
        assert self.cluster.name, "load_config fills cluster.name"
        return self.cluster.name
