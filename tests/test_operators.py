"""plan/operators/: the objects kagent, kgateway and agentgateway create from the platform's custom
resources, checked against what each operator's source (at the pinned version) builds, and admitted
by Pod Security like any other pod; the operator pins, strategic merge, and the platform's own
objects. prometheus-operator's: tests/test_operators_prometheus.py."""

from __future__ import annotations

import copy

import pytest
import yaml

from plan import objects as ko
from plan.admission.admit import namespace_levels
from plan.engine import ROOT
from plan.objects import K8sObject
from plan.operators import merge_patch_containers, operator_objects, pins, semver_string, strategic_merge
from tests.operator_objects import by_ref, container, obj, pod_spec, violations

# --------------------------------------------------------------------------------------------- pins


def test_operator_pins_follow_the_chart_pins():
    """A chart bump must come with a look at the translation: operators.yaml repeats the pins."""
    charts = yaml.safe_load((ROOT / "platform" / "charts.yaml").read_text())
    for name, p in pins().items():
        assert str(charts[p["chart"]]["version"]) == str(p["chartVersion"]), name
        assert p["source"]["commit"] and len(p["source"]["commit"]) == 40, name


def test_semver_tolerant():
    assert semver_string("v3.14.0-distroless") == "3.14.0-distroless"
    assert semver_string("v0.34") == "0.34.0"


# --------------------------------------------------------------------------------------------- kagent

MODEL_CONFIG = {"apiVersion": "kagent.dev/v1alpha2", "kind": "ModelConfig",
                "metadata": {"name": "llama-via-gateway", "namespace": "ai-agents"},
                "spec": {"provider": "OpenAI", "model": "llama", "apiKeySecret": "kagent-gateway-token",
                         "apiKeySecretKey": "token", "openAI": {"baseUrl": "http://gw/v1"}}}
RESTRICTED_CONTAINER = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}, "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": False, "capabilities": {"drop": ["ALL"]}}
AGENT = {"apiVersion": "kagent.dev/v1alpha2", "kind": "Agent",
         "metadata": {"name": "support", "namespace": "ai-agents", "labels": {"app.kubernetes.io/name": "support"}},
         "spec": {"type": "Declarative", "description": "d", "declarative": {
             "modelConfig": "llama-via-gateway", "systemMessage": "s", "tools": [],
             "deployment": {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                            "securityContext": RESTRICTED_CONTAINER,
                            "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                            "labels": {"kagent.dev/monitored": "true"},
                            "env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4317"}]}}}}


def test_kagent_agent_objects():
    out = by_ref(operator_objects([obj(MODEL_CONFIG), obj(AGENT, "urn:agent")]))
    assert set(out) == {"ai-agents/Secret/support", "ai-agents/ServiceAccount/support", "ai-agents/Deployment/support",
                        "ai-agents/Service/support"}
    dep = out["ai-agents/Deployment/support"]
    assert dep.source == "urn:agent" and dep.controller == "kagent v0.9.12"
    labels = {"app": "kagent", "kagent": "support", "app.kubernetes.io/managed-by": "kagent",
              "app.kubernetes.io/part-of": "kagent", "app.kubernetes.io/name": "support", "kagent.dev/monitored": "true"}
    assert dep.metadata["labels"] == labels and dep.manifest["spec"]["template"]["metadata"]["labels"] == labels
    assert dep.manifest["spec"]["selector"]["matchLabels"] == {"app": "kagent", "kagent": "support"}
    assert "replicas" not in dep.manifest["spec"]  # left to KEDA's HPA
    pod = pod_spec(dep)
    assert pod["serviceAccountName"] == "support"
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    kagent = container(dep, "kagent")
    assert kagent["image"] == "cr.kagent.dev/kagent-dev/kagent/app:0.9.12"
    assert kagent["securityContext"] == RESTRICTED_CONTAINER
    assert kagent["ports"] == [{"name": "http", "containerPort": 8080}]
    assert kagent["args"] == ["--host", "0.0.0.0", "--port", "8080", "--filepath", "/config"]
    env = {e["name"]: e for e in kagent["env"]}
    assert [e["name"] for e in kagent["env"]][:2] == ["OTEL_EXPORTER_OTLP_ENDPOINT", "OPENAI_API_KEY"]
    assert env["OPENAI_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "kagent-gateway-token", "key": "token"}}
    assert env["KAGENT_URL"]["value"] == "http://kagent-controller.ai-agents:8083"
    assert {"name": "config", "secret": {"secretName": "support"}} in pod["volumes"]
    svc = out["ai-agents/Service/support"].manifest["spec"]
    assert svc == {"selector": {"app": "kagent", "kagent": "support"}, "type": "ClusterIP",
                   "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}
    assert violations(dep) == []


def test_kagent_controller_configmap_and_code_execution():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kagent-controller", "namespace": "kagent"},
          "data": {"KAGENT_CONTROLLER_NAME": "kagent-controller", "IMAGE_REGISTRY": "mirror.example",
                   "IMAGE_REPOSITORY": "kagent-dev/kagent/app", "IMAGE_TAG": "0.9.12", "OTEL_TRACING_ENABLED": "true",
                   "DEFAULT_SERVICE_ACCOUNT_NAME": "agents"}}
    agent = copy.deepcopy(AGENT)
    agent["spec"]["declarative"]["executeCodeBlocks"] = True
    agent["spec"]["declarative"]["deployment"]["securityContext"] = {"runAsNonRoot": True}
    out = by_ref(operator_objects([obj(MODEL_CONFIG), obj(cm), obj(agent)]))
    assert "ai-agents/ServiceAccount/support" not in out  # runs as the global default account
    dep = out["ai-agents/Deployment/support"]
    kagent = container(dep, "kagent")
    assert kagent["image"] == "mirror.example/kagent-dev/kagent/app:0.9.12"
    env = {e["name"]: e for e in kagent["env"]}
    assert env["KAGENT_URL"]["value"] == "http://kagent-controller.kagent:8083" and env["OTEL_TRACING_ENABLED"]["value"] == "true"
    # code execution without allowPrivilegeEscalation=false makes the container privileged
    assert kagent["securityContext"] == {"runAsNonRoot": True, "privileged": True}
    assert "privileged" in violations(dep, "baseline")


def test_kagent_byo_agent():
    agent = {"apiVersion": "kagent.dev/v1alpha2", "kind": "Agent", "metadata": {"name": "byo", "namespace": "ai-agents"},
             "spec": {"type": "BYO", "byo": {"deployment": {"image": "ghcr.io/me/agent:1.0", "cmd": "/run", "args": ["-v"],
                                                            "serviceAccountName": "mine"}}}}
    out = by_ref(operator_objects([obj(agent)]))
    dep = out["ai-agents/Deployment/byo"]
    kagent = container(dep, "kagent")
    assert (kagent["image"], kagent["command"], kagent["args"]) == ("ghcr.io/me/agent:1.0", ["/run"], ["-v"])
    assert pod_spec(dep)["serviceAccountName"] == "mine" and "ai-agents/ServiceAccount/byo" not in out
    assert all(v.get("name") != "config" for v in pod_spec(dep)["volumes"])


# --------------------------------------------------------------------------------------------- kgateway

GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": "ai-inference-gateway", "namespace": "ai-gateway"},
           "spec": {"gatewayClassName": "kgateway",
                    "infrastructure": {"parametersRef": {"group": "gateway.kgateway.dev", "kind": "GatewayParameters",
                                                         "name": "ai-inference-gateway"}},
                    "listeners": [{"name": "https", "port": 443, "protocol": "HTTP"},
                                  {"name": "http", "port": 80, "protocol": "HTTP"}]}}
GWP = {"apiVersion": "gateway.kgateway.dev/v1alpha1", "kind": "GatewayParameters",
       "metadata": {"name": "ai-inference-gateway", "namespace": "ai-gateway"},
       "spec": {"kube": {
           "deployment": {"replicas": 3},
           "envoyContainer": {"resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                              "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                  "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
           "podTemplate": {"extraLabels": {"app.kubernetes.io/component": "gateway-proxy", "team": "platform"},
                           "securityContext": {"runAsNonRoot": True, "runAsUser": 10101,
                                               "seccompProfile": {"type": "RuntimeDefault"}}},
           "service": {"type": "LoadBalancer",
                       "extraAnnotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}},
           "podDisruptionBudget": {"spec": {"minAvailable": 1}}}}}


def test_kgateway_proxy_objects():
    out = by_ref(operator_objects([obj(GATEWAY, "urn:gw"), obj(GWP)]))
    name = "ai-inference-gateway"
    assert set(out) == {f"ai-gateway/{k}/{name}" for k in ("ServiceAccount", "ConfigMap", "Deployment", "Service",
                                                             "PodDisruptionBudget")}
    dep = out[f"ai-gateway/Deployment/{name}"]
    assert dep.source == "urn:gw" and dep.controller == "kgateway v2.4.3"
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name, "gateway.networking.k8s.io/gateway-name": name}
    assert dep.manifest["spec"]["selector"]["matchLabels"] == selector and dep.manifest["spec"]["replicas"] == 3
    assert dep.metadata["labels"] == {**selector, "kgateway": "kube-gateway", "app.kubernetes.io/component": "proxy",
                                      "app.kubernetes.io/managed-by": "kgateway", "app.kubernetes.io/version": "v2.4.3",
                                      "gateway.networking.k8s.io/gateway-class-name": "kgateway"}
    pod_labels = dep.manifest["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/component"] == "proxy" and pod_labels["team"] == "platform"  # sprig merge: chart wins
    pod = pod_spec(dep)
    assert pod["serviceAccountName"] == name and pod["terminationGracePeriodSeconds"] == 60
    # listeners on 80/443: allowPrivilegedPorts adds the sysctl to the GatewayParameters' pod context
    assert pod["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
    proxy = container(dep, "kgateway-proxy")
    assert proxy["image"] == "cr.kgateway.dev/kgateway-dev/envoy-wrapper:v2.4.3"
    # DeepMergeSecurityContext over the default (runAsUser 10101, readOnlyRootFilesystem); drop slices append
    assert proxy["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                        "runAsUser": 10101, "capabilities": {"drop": ["ALL", "ALL"]},
                                        "seccompProfile": {"type": "RuntimeDefault"}}
    assert [p["containerPort"] for p in proxy["ports"]] == [80, 443, 9091]
    assert proxy["ports"][0]["name"] == "listener-80"
    assert proxy["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}}
    assert {"configMap": {"name": name}, "name": "envoy-config"} in pod["volumes"]
    svc = out[f"ai-gateway/Service/{name}"].manifest
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["selector"] == selector
    assert svc["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}
    assert out[f"ai-gateway/ServiceAccount/{name}"].manifest["automountServiceAccountToken"] is False
    pdb = out[f"ai-gateway/PodDisruptionBudget/{name}"].manifest
    assert pdb["spec"] == {"selector": {"matchLabels": selector}, "minAvailable": 1}
    assert violations(dep) == []


def test_kgateway_unprivileged_ports_controller_env_and_missing_parameters():
    gw = copy.deepcopy(GATEWAY)
    gw["spec"]["listeners"] = [{"name": "http", "port": 8080, "protocol": "HTTP"}]
    controller = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kgateway", "namespace": "ai-gateway"},
                  "spec": {"template": {"spec": {"containers": [{"name": "controller", "env": [
                      {"name": "KGW_DEFAULT_IMAGE_REGISTRY", "value": "mirror.example/kgateway"},
                      {"name": "KGW_DEFAULT_IMAGE_TAG", "value": "v2.4.3"}]}]}}}}
    out = by_ref(operator_objects([obj(gw), obj(GWP), obj(controller)]))
    dep = out["ai-gateway/Deployment/ai-inference-gateway"]
    assert "sysctls" not in pod_spec(dep)["securityContext"]
    assert container(dep, "kgateway-proxy")["image"] == "mirror.example/kgateway/envoy-wrapper:v2.4.3"
    # a Gateway whose GatewayParameters do not exist gets no proxy (the deployer errors out)
    assert operator_objects([obj(GATEWAY)]) == []
    # a Gateway of another class is not kgateway's
    other = copy.deepcopy(GATEWAY)
    other["spec"]["gatewayClassName"] = "istio"
    assert operator_objects([obj(other), obj(GWP)]) == []


def test_kgateway_default_parameters_fail_restricted():
    """kgateway's in-memory defaults set a container context without seccomp and no pod context:
    a Gateway without GatewayParameters would be rejected by a `restricted` namespace."""
    gw = copy.deepcopy(GATEWAY)
    del gw["spec"]["infrastructure"]
    (dep,) = [o for o in operator_objects([obj(gw)]) if o.kind == "Deployment"]
    assert violations(dep) == ["seccompProfile_restricted"]


# --------------------------------------------------------------------------------------------- agentgateway

AGW_GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "ai-inference-agentgateway", "namespace": "ai-gateway"},
               "spec": {"gatewayClassName": "agentgateway",
                        "infrastructure": {"parametersRef": {"group": "agentgateway.dev", "kind": "AgentgatewayParameters",
                                                             "name": "ai-inference-agentgateway"}},
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
AGWP = {"apiVersion": "agentgateway.dev/v1alpha1", "kind": "AgentgatewayParameters",
        "metadata": {"name": "ai-inference-agentgateway", "namespace": "ai-gateway"},
        "spec": {"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}},
                 "service": {"spec": {"type": "ClusterIP"}}}}


def test_agentgateway_proxy_objects():
    out = by_ref(operator_objects([obj(AGW_GATEWAY, "urn:agw"), obj(AGWP)]))
    name = "ai-inference-agentgateway"
    assert set(out) == {f"ai-gateway/{k}/{name}" for k in ("ServiceAccount", "ConfigMap", "Deployment", "Service")} | {
        f"ai-gateway/Secret/{name}-session-key"}
    dep = out[f"ai-gateway/Deployment/{name}"]
    assert dep.controller == "agentgateway v1.4.1"
    agw = container(dep, "agentgateway")
    assert agw["image"] == "cr.agentgateway.dev/agentgateway:v1.4.1"
    assert agw["resources"] == {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    env = {e["name"]: e for e in agw["env"]}
    assert env["SESSION_KEY"]["valueFrom"]["secretKeyRef"] == {"name": f"{name}-session-key", "key": "key"}
    assert env["XDS_ADDRESS"]["value"] == "http://agentgateway.ai-gateway.svc.cluster.local:9978"
    assert out[f"ai-gateway/Service/{name}"].manifest["spec"]["type"] == "ClusterIP"  # the service overlay
    assert pod_spec(dep)["serviceAccountName"] == name
    # the chart's container context has no seccompProfile and nothing sets one at pod level
    assert violations(dep) == ["seccompProfile_restricted"]
    params = copy.deepcopy(AGWP)
    params["spec"]["deployment"] = {"spec": {"template": {"spec": {"securityContext": {
        "seccompProfile": {"type": "RuntimeDefault"}}}}}}
    (dep,) = [o for o in operator_objects([obj(AGW_GATEWAY), obj(params)]) if o.kind == "Deployment"]
    assert pod_spec(dep)["securityContext"]["sysctls"]  # strategic merge keeps the chart's sysctl
    assert violations(dep) == []


# --------------------------------------------------------------------------------------------- helpers


def test_strategic_merge_semantics():
    base = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "args": ["--a"]}], "dnsPolicy": "Default"}
    patch = {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}], "args": ["--b"]}, {"name": "b"}],
             "dnsPolicy": None}
    assert strategic_merge(base, patch) == {"containers": [
        {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}], "args": ["--b"]}, {"name": "b"}]}
    merged = merge_patch_containers([{"name": "a", "readinessProbe": {"httpGet": {"path": "/"}, "periodSeconds": 5}}],
                                    [{"name": "a", "readinessProbe": {"exec": {"command": ["true"]}}}])
    assert merged[0]["readinessProbe"] == {"exec": {"command": ["true"]}, "periodSeconds": 5}


# --------------------------------------------------------------------------------------------- the platform's own objects


@pytest.fixture(scope="module")
def prod_declared(prod_plan) -> list[K8sObject]:
    return ko.declared(prod_plan)


def test_platform_agents_and_gateway_pass_their_namespaces(prod_declared):
    """Every object the operators create from the prod stack's Agents and Gateway: one Deployment per
    Agent (what the KEDA ScaledObjects target) and the gateway's proxy, each admitted at its
    namespace's Pod Security level."""
    out = operator_objects(prod_declared)
    agents = [o.name for o in prod_declared if o.kind == "Agent"]
    deployments = {o.name for o in out if o.kind == "Deployment" and o.controller.startswith("kagent")}
    assert agents and deployments == set(agents)
    agent_ns = {o.namespace for o in prod_declared if o.kind == "Agent"}
    scaled = {o.manifest["spec"]["scaleTargetRef"]["name"] for o in prod_declared
              if o.kind == "ScaledObject" and o.namespace in agent_ns}
    assert scaled <= deployments
    gateways = [o for o in prod_declared if o.kind == "Gateway" and o.manifest["spec"]["gatewayClassName"] == "kgateway"]
    proxies = {(p.name, p.source) for p in out if p.kind == "Deployment"}
    assert gateways and all((g.name, g.source) in proxies for g in gateways)
    levels = namespace_levels(prod_declared)
    for o in out:
        level = levels.get(o.namespace or "default", "privileged")
        assert violations(o, level) == [], o.ref
    refs = [o.ref for o in out]
    assert len(refs) == len(set(refs))
