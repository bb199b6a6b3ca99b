"""The typed stack config: the only code that reads `agentic-platform:*` keys.

Every section is a pydantic model with camelCase aliases and `extra="forbid"`. A problem is
reported with the stack-file key path (`agentic-platform:network.cidr: ...`); all problems are
collected before anything is created, and `load_config` raises one `ConfigError` holding them all.

One module per section (`network`, `cluster`, `compute`, `tenancy`, `models`, `data`,
`observability`, `gateway`, `agents`), the whole config (`stack`), the rules across sections
(`rules`), the key-path machinery (`paths`) and the loader (`loader`); the arithmetic they share
with the layers (quantities, instance facts, model sizing) is in `domain`. Adding a section means:
a module with its model class, a field on `PlatformConfig`, and, if it has rules that span sections,
a function decorated with `@cross_check` in `rules`. The loader never changes. Every public name is
re-exported here: `from components.config import X`.
"""

from components.config.agents import (
    AgentConfig,
    AgentDatabaseConfig,
    AgentResources,
    AgentRuntimeConfig,
    AgentScalingConfig,
    AgentToolRef,
    ToolServerConfig,
)
from components.config.base import (
    DNS_LABEL,
    NAMESPACE,
    ConfigError,
    DnsName,
    Duration,
    FiniteDuration,
    GroupName,
    Problem,
    Quantity,
    RetentionPeriod,
    Section,
    duplicates,
    quantity_value,
)
from components.config.cluster import AdminPrincipal, ApiAccessConfig, ClusterConfig, DeployerConfig, SystemNodesConfig
from components.config.compute import (
    GP3_IOPS_PER_GIB,
    GP3_MAX_IOPS,
    GP3_MAX_THROUGHPUT,
    GP3_MIN_IOPS,
    GP3_MIN_THROUGHPUT,
    GP3_THROUGHPUT_PER_IOPS,
    BudgetConfig,
    CapacityReservationTerm,
    CpuPoolConfig,
    DisruptionBudget,
    GpuPoolConfig,
    GpuStackConfig,
    NodePoolConfig,
    TaintConfig,
)
from components.config.cost import CostConfig
from components.config.data import DataConfig, EtcdConfig, MilvusConfig, RedisConfig, WorkloadSize
from components.config.gateway import (
    CanaryConfig,
    GatewayConfig,
    GatewayLoadBalancerConfig,
    GatewayProxyConfig,
    JwtConfig,
    ModelRouteConfig,
    PromptCacheConfig,
    TenantBudgetConfig,
    TokenBucketConfig,
)
from components.config.loader import load_config, load_secrets, raw_from_pulumi, secret_keys_from_pulumi, validate
from components.config.models import ModelConfig, ModelServingConfig
from components.config.network import NetworkConfig
from components.config.observability import LangfuseConfig, ObservabilityConfig
from components.config.rules import CROSS_CHECKS, CrossCheck, cross_check
from components.config.stack import SECRET_KEYS, SECRET_REQUIRED, Environment, PlatformConfig
from components.config.tenancy import ContainerResources, PlatformQuotasConfig, QuotaConfig, TenantConfig, TenantIamRole

__all__ = [
    "CostConfig",
    "AdminPrincipal",
    "AgentConfig",
    "AgentDatabaseConfig",
    "AgentResources",
    "AgentRuntimeConfig",
    "AgentScalingConfig",
    "AgentToolRef",
    "ApiAccessConfig",
    "CROSS_CHECKS",
    "CanaryConfig",
    "ClusterConfig",
    "ConfigError",
    "ContainerResources",
    "CpuPoolConfig",
    "CrossCheck",
    "DNS_LABEL",
    "DataConfig",
    "DeployerConfig",
    "DisruptionBudget",
    "DnsName",
    "Duration",
    "Environment",
    "EtcdConfig",
    "FiniteDuration",
    "GP3_IOPS_PER_GIB",
    "GP3_MAX_IOPS",
    "GP3_MAX_THROUGHPUT",
    "GP3_MIN_IOPS",
    "GP3_MIN_THROUGHPUT",
    "GP3_THROUGHPUT_PER_IOPS",
    "BudgetConfig",
    "CapacityReservationTerm",
    "GatewayConfig",
    "GatewayLoadBalancerConfig",
    "GatewayProxyConfig",
    "GpuPoolConfig",
    "GpuStackConfig",
    "GroupName",
    "JwtConfig",
    "LangfuseConfig",
    "MilvusConfig",
    "ModelConfig",
    "ModelRouteConfig",
    "ModelServingConfig",
    "NAMESPACE",
    "NetworkConfig",
    "NodePoolConfig",
    "ObservabilityConfig",
    "PlatformConfig",
    "PlatformQuotasConfig",
    "Problem",
    "Quantity",
    "QuotaConfig",
    "RedisConfig",
    "RetentionPeriod",
    "SECRET_KEYS",
    "SECRET_REQUIRED",
    "Section",
    "SystemNodesConfig",
    "TaintConfig",
    "TenantConfig",
    "TenantIamRole",
    "PromptCacheConfig",
    "TenantBudgetConfig",
    "TokenBucketConfig",
    "ToolServerConfig",
    "WorkloadSize",
    "cross_check",
    "duplicates",
    "load_config",
    "load_secrets",
    "quantity_value",
    "raw_from_pulumi",
    "secret_keys_from_pulumi",
    "validate",
]
