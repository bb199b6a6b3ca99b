"""Agent layer: kagent install, ModelConfigs through the gateway, Agents, tools and KEDA scaling."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import urllib.parse

import pulumi
import pytest
import yaml

from components import names
from components.agents import AgentRuntime, AgentRuntimeArgs
from components.config import AgentRuntimeConfig, ConfigError, validate
from components.models import ModelEndpoint
from plan.engine import ROOT, execute
from tests.conftest import stack_doc, write_stack

AGENT = "kubernetes:kagent.dev/v1alpha2:Agent"
MODELCONFIG = "kubernetes:kagent.dev/v1alpha2:ModelConfig"
REMOTE_MCP = "kubernetes:kagent.dev/v1alpha2:RemoteMCPServer"
SCALED = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
RELEASE = "kubernetes:helm.sh/v3:Release"
GATEWAY = "http://ai-inference-gateway.ai-gateway.svc.cluster.local:80"

MODELS = [{"name": "llama-3-8b", "engine": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct",
           "image": "vllm/vllm-openai:v0.12.0", "parametersB": 8.03, "pool": "gpu"}]
RUNTIME = {"database": {"mode": "external"}, "imageRegistry": "111122223333.dkr.ecr.us-west-2.amazonaws.com",
           "toolServers": [{"name": "knowledge-base", "type": "retrieval", "description": "docs"},
                           {"name": "ticketing", "type": "api", "description": "tickets",
                            "url": "https://tickets.example.com/mcp"}]}
AGENTS = [{"name": "customer-support", "description": "support", "systemPrompt": "Be kind.", "model": "llama-3-8b",
           "tools": [{"server": "knowledge-base"},
                     {"server": "ticketing", "toolNames": ["create_ticket"], "requireApproval": ["create_ticket"]}],
           "scaling": {"minReplicas": 2, "maxReplicas": 20}}]


def raw(**over) -> dict[str, str]:
    base = {"environment": "prod", "gpuPools": [{"name": "gpu", "instanceTypes": ["g5.xlarge"], "gpuLimit": 4}],
            "models": MODELS, "agentRuntime": RUNTIME, "agents": AGENTS,
            "agentGatewayToken": "[secret]",   # secret keys count by presence in validation
            "cluster": {"deployer": {"arn": "arn:aws:iam::111122223333:role/PulumiDeployer"},
                        "apiAccess": {"cidrs": ["10.100.0.0/22"]}}}
    base.update(over)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in base.items()}


def endpoints(cfg) -> dict[str, ModelEndpoint]:
    """What the model serving layer hands the agents: one ModelEndpoint per catalog model."""
    return {m.name: ModelEndpoint(m.name, names.NS_INFERENCE, m.name, names.PORT_VLLM, m.engine, None)
            for m in cfg.models}


def run_component(cfg, token="t0ken"):


    def body():
        AgentRuntime("agents", AgentRuntimeArgs(
            runtime=cfg.agent_runtime, agents=cfg.agents, endpoints=endpoints(cfg), gateway_url=GATEWAY,
            gateway_token=pulumi.Output.secret(token), protect_data=cfg.protect_data, tags={"t": "1"},
            name_prefix="unit", vpc_id="vpc-1", private_subnet_ids=["subnet-1", "subnet-2"], cluster_security_group_id="sg-1"))

    return execute(body, stack="unit", config={})


@pytest.fixture(scope="module")
def unit_plan():
    return run_component(validate(raw(), "unit"))


def test_installs_kagent_with_crds_once_and_no_demo_agents(unit_plan):
    releases = {r.inputs["name"]: r.inputs for r in unit_plan.by_type(RELEASE)}
    assert set(releases) == {"kagent-crds", "kagent"}
    kagent = releases["kagent"]
    assert kagent["skipCrds"] is True and not releases["kagent-crds"].get("skipCrds")
    values = kagent["values"]
    assert values["rbac"]["namespaces"] == ["ai-agents"]
    assert values["k8s-agent"]["enabled"] is False and values["kagent-tools"]["enabled"] is False
    assert values["providers"]["openAI"]["config"]["baseUrl"] == f"{GATEWAY}/v1"
    # external database: URL from a mounted Secret, bundled PostgreSQL off
    assert values["database"]["postgres"]["bundled"]["enabled"] is False
    assert values["database"]["postgres"]["urlFile"] == "/etc/kagent/db/url"
    assert "url" not in values["database"]["postgres"]


def test_external_database_is_rds_with_secret_password(unit_plan):
    (db,) = unit_plan.by_type("aws:rds/instance:Instance")
    assert db.inputs["engine"] == "postgres" and db.inputs["storageEncrypted"] is True
    assert db.inputs["publiclyAccessible"] is False
    # the platform's one PostgreSQL helper: own KMS key, final snapshot named per cluster, secret password
    assert db.inputs["kmsKeyId"] and db.inputs["skipFinalSnapshot"] is False
    # named per cluster and per incarnation of the stack (a random suffix, mocked 01234567)
    assert db.inputs["finalSnapshotIdentifier"] == "unit-kagent-final-01234567" and db.inputs["password"] == "[secret]"
    assert "mock-generated" not in json.dumps(unit_plan_inputs(unit_plan)), "a generated password leaked"


def unit_plan_inputs(plan):
    return [r.inputs for r in plan.resources]


def test_model_config_routes_through_gateway_by_header(unit_plan):
    (mc,) = unit_plan.by_type(MODELCONFIG)
    spec = mc.inputs["spec"]
    assert spec["provider"] == "OpenAI" and spec["model"] == "llama-3-8b"
    assert spec["defaultHeaders"] == {"x-model-id": "llama-3-8b"}
    assert spec["openAI"]["baseUrl"] == f"{GATEWAY}/v1"
    assert spec["apiKeySecret"] == "kagent-gateway-token" and spec["apiKeySecretKey"] == "token"


def test_agent_tools_and_human_approval(unit_plan):
    (agent,) = unit_plan.by_type(AGENT)
    spec = agent.inputs["spec"]
    assert spec["type"] == "Declarative" and "replicas" not in spec["declarative"]["deployment"]
    servers = {t["mcpServer"]["name"]: t["mcpServer"] for t in spec["declarative"]["tools"]}
    assert servers["ticketing"]["requireApproval"] == ["create_ticket"]
    urls = {r.inputs["metadata"]["name"]: r.inputs["spec"]["url"] for r in unit_plan.by_type(REMOTE_MCP)}
    assert urls["knowledge-base"] == "http://knowledge-base.ai-agents.svc.cluster.local:8000/mcp"
    (deploy,) = unit_plan.by_type("kubernetes:apps/v1:Deployment")
    c = deploy.inputs["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].endswith("/mcp-server-milvus:git-7d5187b")
    assert c["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "milvus-connection"
    assert c["readinessProbe"] and c["livenessProbe"] and c["resources"]["limits"]


def test_scaled_object_triggers(unit_plan):
    (so,) = unit_plan.by_type(SCALED)
    spec = so.inputs["spec"]
    assert spec["scaleTargetRef"]["name"] == "customer-support"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 20)
    types = {t["type"]: t for t in spec["triggers"]}
    assert set(types) == {"redis", "prometheus"}
    # kagent 0.9.12 agents export no metrics (no agent_active_sessions series anywhere): the second
    # trigger is the agent container's CPU from cAdvisor, which exists for every agent pod.
    prom = types["prometheus"]["metadata"]
    assert prom["query"] == ('sum(rate(container_cpu_usage_seconds_total{namespace="ai-agents",container="kagent",'
                             'pod=~"customer-support-[a-z0-9]+-[a-z0-9]+"}[2m]))')
    # cores per replica: the default request 250m x the default cpuUtilization 70%
    assert prom["threshold"] == "0.175"
    for t in spec["triggers"]:
        assert all(isinstance(v, str) for v in t["metadata"].values())
    (auth,) = unit_plan.by_type(TRIGGER_AUTH)
    assert {r["name"] for r in auth.inputs["spec"]["secretTargetRef"]} == {"redis-connection"}


@pytest.mark.layer
def test_bundled_database_declares_no_rds():
    plan = run_component(validate(raw(agentRuntime={**RUNTIME, "database": {"mode": "bundled"}}), "unit"))
    assert not plan.by_type("aws:rds/instance:Instance")
    (kagent,) = [r for r in plan.by_type(RELEASE) if r.inputs["name"] == "kagent"]
    assert kagent.inputs["values"]["database"]["postgres"]["bundled"]["enabled"] is True


@pytest.mark.layer
def test_demo_agents_can_be_turned_on():
    plan = run_component(validate(raw(agentRuntime={**RUNTIME, "demoAgents": True}), "unit"))
    (kagent,) = [r for r in plan.by_type(RELEASE) if r.inputs["name"] == "kagent"]
    assert kagent.inputs["values"]["k8s-agent"]["enabled"] is True


@pytest.mark.parametrize("over, path", [
    ({"agents": [{**AGENTS[0], "model": "gpt-4"}]}, "agents[0].model"),
    ({"agents": [{**AGENTS[0], "tools": [{"server": "nope"}]}]}, "agents[0].tools[0].server"),
    ({"agents": [{**AGENTS[0], "tools": [{"server": "ticketing", "requireApproval": ["x"]}]}]},
     "agents[0].tools[0].requireApproval[0]"),
    ({"agents": [{**AGENTS[0], "scaling": {"minReplicas": 5, "maxReplicas": 2}}]}, "agents[0].scaling.minReplicas"),
    ({"agentRuntime": {**RUNTIME, "imageRegistry": None}}, "agentRuntime.imageRegistry"),
    ({"agentRuntime": {**RUNTIME, "toolServers": [{"name": "t", "type": "api", "description": "d"}]},
      "agents": []}, "agentRuntime.toolServers[0].url"),
])
def test_bad_config_names_the_key(over, path):
    with pytest.raises(ConfigError) as err:
        validate(raw(**over), "unit")
    assert any(p == path for p, _ in err.value.problems), err.value.problems


def test_runtime_defaults():
    rt = AgentRuntimeConfig()
    assert rt.database.mode == "external" and rt.demo_agents is False


# ------------------------------------------------------------------------- the stack plans

def test_prod_plan_declares_the_agent_layer(prod_plan):
    releases = [r.inputs["name"] for r in prod_plan.by_type(RELEASE)]
    assert releases.count("kagent-crds") == 1 and releases.count("kagent") == 1
    agents = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in prod_plan.by_type(AGENT)}
    assert {"customer-support", "data-analysis"} <= set(agents)
    scaled = {r.inputs["spec"]["scaleTargetRef"]["name"] for r in prod_plan.by_type(SCALED)
              if r.inputs["metadata"].get("namespace") == "ai-agents"}
    assert scaled == set(agents)
    assert prod_plan.by_type("aws:rds/instance:Instance")


def test_agents_resolve_to_catalog_models_and_declared_tools(any_plan):
    """On the declared objects: Agent -> ModelConfig -> catalog model, Agent tool -> RemoteMCPServer."""
    doc_models = _stack_models(any_plan)
    mcs = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in any_plan.by_type(MODELCONFIG)}
    servers = {r.inputs["metadata"]["name"] for r in any_plan.by_type(REMOTE_MCP)}
    agents = any_plan.by_type(AGENT)
    assert agents
    for a in agents:
        d = a.inputs["spec"]["declarative"]
        mc = mcs[d["modelConfig"]]
        assert mc["model"] in doc_models and mc["defaultHeaders"]["x-model-id"] == mc["model"]
        for t in d["tools"]:
            assert t["mcpServer"]["name"] in servers


def _stack_models(plan) -> set[str]:
    # The catalog: the stack file's models (the ones the model layer serves and the gateway routes).

    doc = yaml.safe_load((ROOT / f"Pulumi.{plan.stack}.yaml").read_text())
    return {m["name"] for m in doc["config"]["agentic-platform:models"]}


@pytest.mark.slow
def test_bad_agent_model_exits_2(tmp_path):

    doc = stack_doc("prod")
    doc["config"]["agentic-platform:agents"][0]["model"] = "gpt-4-turbo"
    path = write_stack(tmp_path, doc)
    proc = subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "agentic-platform:agents[0].model: 'gpt-4-turbo' is not a models name" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------- checked against upstream

def test_kagent_controller_and_ui_run_restricted(unit_plan):
    """kagent 0.9.12 renders controller/ui `podSecurityContext` and `securityContext` as given."""
    (kagent,) = [r for r in unit_plan.by_type(RELEASE) if r.inputs["name"] == "kagent"]
    values = kagent.inputs["values"]
    for part in ("controller", "ui"):
        pod, ctr = values[part]["podSecurityContext"], values[part]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}, part
        assert ctr["allowPrivilegeEscalation"] is False and ctr["capabilities"] == {"drop": ["ALL"]}, part
        assert ctr["seccompProfile"] == {"type": "RuntimeDefault"} and ctr["readOnlyRootFilesystem"] is True, part


def _host_allowed(host: str, allowed: list[str]) -> bool:
    # python-sdk (mcp 1.29) TransportSecurityMiddleware._validate_host: exact, or "<base>:*" + port.
    return host in allowed or any(a.endswith(":*") and host.startswith(a[:-2] + ":") for a in allowed)


def _run_launcher(container: dict, monkeypatch) -> tuple[types.SimpleNamespace, dict]:
    """Execute the Deployment's `python -c` launcher against stand-ins for mcp-server-milvus and the
    MCP SDK, with the container's env, and return the server's settings and what it ran with."""
    assert container["command"][:2] == ["python", "-c"]
    ran: dict = {}

    class TransportSecuritySettings:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    # What FastMCP(name=..., lifespan=...) holds after upstream's import (mcp >= 1.23): default host,
    # and DNS-rebinding protection admitting only localhost.
    settings = types.SimpleNamespace(host="127.0.0.1", port=8000, stateless_http=False, json_response=False,
                                     transport_security=TransportSecuritySettings(
                                         enable_dns_rebinding_protection=True,
                                         allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"]))
    server = types.SimpleNamespace(settings=settings, config=None, run=lambda transport: ran.update(transport=transport))

    mods = {"mcp": types.ModuleType("mcp"), "mcp.server": types.ModuleType("mcp.server"),
            "mcp.server.transport_security": types.ModuleType("mcp.server.transport_security"),
            "mcp_server_milvus": types.ModuleType("mcp_server_milvus"),
            "mcp_server_milvus.server": types.ModuleType("mcp_server_milvus.server")}
    mods["mcp.server.transport_security"].TransportSecuritySettings = TransportSecuritySettings
    mods["mcp_server_milvus.server"].mcp = server
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)
    for e in container["env"]:
        monkeypatch.setenv(e["name"], e.get("value", "http://milvus.ai-data.svc.cluster.local:19530"))
    exec(compile(container["command"][2], "<launcher>", "exec"), {})
    return settings, {**ran, "config": server.config}


def test_milvus_mcp_launcher_serves_the_service_url(unit_plan, monkeypatch):
    """Upstream forces host=localhost and keeps DNS-rebinding protection for localhost only; the
    launcher must bind every interface on the container port and accept the RemoteMCPServer's Host."""
    (deploy,) = unit_plan.by_type("kubernetes:apps/v1:Deployment")
    c = deploy.inputs["spec"]["template"]["spec"]["containers"][0]
    settings, ran = _run_launcher(c, monkeypatch)
    assert settings.host == "0.0.0.0" and settings.port == c["ports"][0]["containerPort"]
    assert ran["transport"] == "streamable-http" and settings.stateless_http is True
    assert ran["config"]["milvus_uri"].startswith("http://milvus.ai-data") and ran["config"]["milvus_token"] is None
    ts = settings.transport_security
    assert ts.enable_dns_rebinding_protection is True
    url = {r.inputs["metadata"]["name"]: r.inputs["spec"]["url"] for r in unit_plan.by_type(REMOTE_MCP)}["knowledge-base"]
    parsed = urllib.parse.urlsplit(url)
    assert parsed.port == settings.port and parsed.path == "/mcp"  # FastMCP's streamable_http_path
    assert _host_allowed(parsed.netloc, ts.allowed_hosts)
    assert not _host_allowed("evil.example.com:8000", ts.allowed_hosts)


def test_redis_trigger_auth_uses_keda_parameter_names(any_plan):
    # KEDA 2.20 redis scaler: host/port/password (or address, username) from auth params; TLS is
    # enableTLS in the metadata or `tls` in the TriggerAuthentication, never both.
    (auth,) = [r for r in any_plan.by_type(TRIGGER_AUTH) if r.inputs["metadata"]["name"] == "agent-redis"]
    refs = auth.inputs["spec"]["secretTargetRef"]
    assert {r["parameter"] for r in refs} == {"host", "port", "password"}
    assert {r["name"] for r in refs} == {"redis-connection"}
    for so in any_plan.by_type(SCALED):
        if so.inputs["metadata"].get("namespace") != "ai-agents":
            continue
        (redis,) = [t for t in so.inputs["spec"]["triggers"] if t["type"] == "redis"]
        assert redis["authenticationRef"] == {"name": "agent-redis"}
        assert {"listName", "listLength", "enableTLS"} <= set(redis["metadata"])
        (prom,) = [t for t in so.inputs["spec"]["triggers"] if t["type"] == "prometheus"]
        assert {"serverAddress", "query", "threshold"} <= set(prom["metadata"])


def test_redis_trigger_speaks_tls_exactly_when_redis_does(any_plan):
    """Prod's ElastiCache has in-transit encryption on: KEDA must use TLS there, and not on dev's Valkey."""
    groups = any_plan.by_type("aws:elasticache/replicationGroup:ReplicationGroup")
    tls = any(g.inputs.get("transitEncryptionEnabled") for g in groups)
    assert tls is (any_plan.stack == "prod")
    scaled = [s for s in any_plan.by_type(SCALED) if s.inputs["metadata"].get("namespace") == "ai-agents"]
    assert scaled
    for so in scaled:
        (redis,) = [t for t in so.inputs["spec"]["triggers"] if t["type"] == "redis"]
        assert redis["metadata"]["enableTLS"] == ("true" if tls else "false"), so.inputs["metadata"]["name"]
