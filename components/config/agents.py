"""`agents`, `agentRuntime`: kagent, its agents and tool servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from components.config.base import DnsName, Duration, Problem, Quantity, Section, duplicates


class AgentDatabaseConfig(Section):
    """kagent's PostgreSQL: `bundled` (the chart's single-pod PostgreSQL; dev only: no backups, no
    HA) or `external` (an RDS PostgreSQL instance of its own, password a Pulumi secret)."""

    mode: Literal["bundled", "external"] = Field(
        "external", description="bundled: the chart's PostgreSQL (dev only); external: an RDS instance")
    instance_class: str = Field("db.t4g.small", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="external: RDS instance class")
    engine_version: str = Field("17", pattern=r"^[0-9]+(\.[0-9]+)?$", description="external: PostgreSQL version")
    allocated_storage_gib: int = Field(20, ge=20, le=1000, alias="allocatedStorageGiB",
                                       description="external: allocated storage, GiB")
    multi_az: bool = Field(False, description="external: Multi-AZ standby")
    backup_retention_days: int = Field(7, ge=0, le=35, description="external: days of automated backups")


class ToolServerConfig(Section):
    """An MCP tool server agents may use. `api`: an existing MCP server at `url` (e.g. ticketing);
    `retrieval`: the Milvus MCP server this program deploys (`url` must be empty)."""

    name: DnsName
    type: Literal["api", "retrieval"] = Field(
        description="api: an existing MCP server at url; retrieval: the Milvus MCP server the platform deploys")
    description: str = Field(min_length=1, description="what the tools do (shown to agents)")
    url: str | None = Field(None, pattern=r"^https?://[^\s]+$", description="api: the MCP endpoint")
    protocol: Literal["STREAMABLE_HTTP", "SSE"] = Field("STREAMABLE_HTTP", description="MCP transport")
    timeout: Duration = Field("30s", description="RemoteMCPServer timeout: how long kagent waits on the server")
    replicas: int = Field(2, ge=1, le=10, description="retrieval: MCP server replicas")
    milvus_db: str = Field("default", min_length=1, description="retrieval: Milvus database")

    def problems(self) -> Iterator[Problem]:
        if self.type == "api" and not self.url:
            yield "url", "an api tool server needs the url of its MCP endpoint"
        if self.type == "retrieval" and self.url:
            yield "url", "a retrieval tool server is deployed by the platform; leave url unset"


class AgentToolRef(Section):
    """A tool server an agent uses; `requireApproval` pauses for a human before those tools run."""

    server: DnsName
    tool_names: list[str] = Field(default_factory=list, max_length=50, description="tools of the server the agent may call")
    require_approval: list[str] = Field(default_factory=list, max_length=50,
                                        description="tools (of toolNames) that wait for a human's approval")

    def problems(self) -> Iterator[Problem]:
        for i, t in enumerate(self.require_approval):
            if t not in self.tool_names:
                yield f"requireApproval[{i}]", f"'{t}' must also be listed in toolNames"


class AgentScalingConfig(Section):
    """KEDA per agent: Redis task-list length and the agent's CPU (Prometheus, cAdvisor). kagent
    0.9.12 agents export no metrics, so there is no sessions gauge to scale on (docs/agents.md)."""

    min_replicas: int = Field(2, ge=0, description="replicas KEDA scales down to")
    max_replicas: int = Field(10, ge=1, description="replicas KEDA scales up to")
    queue_list: str = Field("agent-task-queue", min_length=1, description="Redis list of pending tasks")
    queue_length: int = Field(10, ge=1, description="tasks per replica")
    cpu_utilization: int = Field(70, ge=1, le=100,
                                 description="% of the agent's CPU request per replica before KEDA adds one")
    polling_interval_s: int = Field(15, ge=1, description="seconds between KEDA checks")
    cooldown_period_s: int = Field(300, ge=0, description="seconds before scaling to minReplicas 0")

    def problems(self) -> Iterator[Problem]:
        if self.min_replicas > self.max_replicas:
            yield "minReplicas", f"{self.min_replicas} is more than maxReplicas ({self.max_replicas})"


class AgentResources(Section):
    """Requests and limits of the agent's container."""

    cpu: Quantity = "250m"
    memory: Quantity = "512Mi"
    cpu_limit: Quantity = "500m"
    memory_limit: Quantity = "1Gi"


class AgentConfig(Section):
    """A kagent Declarative Agent: its prompt, the catalog model it calls through the gateway,
    its tool servers, resources and scaling."""

    name: DnsName
    description: str = Field(min_length=1, description="what the agent does")
    system_prompt: str = Field(min_length=1, description="the agent's system prompt")
    model: DnsName = Field(description="a models name (the x-model-id the gateway routes on)")
    tools: list[AgentToolRef] = Field(default_factory=list, description="tool servers the agent uses")
    resources: AgentResources = Field(default_factory=AgentResources)
    scaling: AgentScalingConfig = Field(default_factory=AgentScalingConfig)


class AgentRuntimeConfig(Section):
    """The kagent install."""

    database: AgentDatabaseConfig = Field(default_factory=AgentDatabaseConfig)
    demo_agents: bool = Field(False, description="kagent's built-in agents (k8s, istio, helm, ...)")
    controller_replicas: int = Field(1, ge=1, le=3, description="kagent controller replicas")
    watch_namespaces: list[DnsName] = Field(default_factory=list,
                                            description="namespaces kagent manages besides ai-agents")
    tool_servers: list[ToolServerConfig] = Field(default_factory=list, description="MCP tool servers agents may use")
    image_registry: str | None = Field(None, pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$",
                                       description="registry holding images built from source (the Milvus MCP server)")

    def problems(self) -> Iterator[Problem]:
        yield from duplicates("toolServers", [t.name for t in self.tool_servers])
        if any(t.type == "retrieval" for t in self.tool_servers) and not self.image_registry:
            yield "imageRegistry", "a retrieval tool server needs the registry its Milvus MCP server image is pushed to"
