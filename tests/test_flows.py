"""Cross-layer flows: every connection the layers really declare (a consumer's URL, a connection
Secret it reads, a scaler trigger, a ServiceMonitor) is allowed by the declared NetworkPolicies.

The connections are derived from the plan, not from the FLOWS table, so a layer that starts
talking to a new place without a flow fails here."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlparse

import pytest

from components import names
from plan.reachability import egress_allows_ip, of_plan, policies_by_namespace

SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RELEASE = "kubernetes:helm.sh/v3:Release"
MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
ELASTICACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
VPC, INTERNET = "vpc", "internet"
PUBLIC_ADDRESS = "203.0.113.10"   # TEST-NET-3: outside every private range
SVC_HOST = re.compile(r"^(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc(\.cluster\.local)?$")
# ServiceMonitors rendered by charts (not plan objects): release -> metrics port the monitor scrapes.
CHART_MONITORS = {"milvus": 9091, "valkey": 9121}


def kind(plan, suffix: str) -> list:
    return [r for r in plan.resources if r.type.endswith(suffix)]


def release(plan, name: str):
    found = [r for r in plan.by_type(RELEASE) if r.inputs.get("name") == name]
    return found[0] if found else None


def target_of_url(url: str) -> tuple[str, int]:
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    m = SVC_HOST.match(u.hostname or "")
    return (m["ns"], port) if m else (INTERNET, port)


def redis_target(plan) -> tuple[str, int]:
    valkey = release(plan, "valkey")
    if valkey is not None:
        return valkey.inputs["namespace"], names.PORT_REDIS
    (group,) = plan.by_type(ELASTICACHE)
    return VPC, int(group.inputs["port"])


def container_port(plan, ns: str, service: dict, port) -> int | str:
    """A Service port (number or name) -> the pods' port (what NetworkPolicies see)."""
    for p in service["spec"]["ports"]:
        if port in (p.get("port"), p.get("name")):
            target = p.get("targetPort", p["port"])
            if isinstance(target, int):
                return target
            sel = service["spec"].get("selector") or {}
            for d in plan.by_type(DEPLOYMENT):
                tmpl = d.inputs["spec"]["template"]
                if d.inputs["metadata"].get("namespace") == ns and \
                        sel.items() <= (tmpl["metadata"].get("labels") or {}).items():
                    for c in tmpl["spec"]["containers"]:
                        for cp in c.get("ports") or []:
                            if cp.get("name") == target:
                                return cp["containerPort"]
            return target
    return port


def services(plan, ns: str) -> list[dict]:
    return [s.inputs for s in plan.by_type(SERVICE) if s.inputs["metadata"].get("namespace") == ns]


def connections(plan) -> list[tuple[str, str, int | str | None, str]]:
    """(source namespace, destination namespace | vpc | internet, port or None for 'some port', why)."""
    out = []
    redis_ns, redis_port = redis_target(plan)
    milvus = release(plan, "milvus")
    # consumers of the data layer's connection Secrets
    for s in plan.by_type(SECRET):
        md = s.inputs["metadata"]
        if md["name"] == "redis-connection":
            out.append((md["namespace"], redis_ns, redis_port, "redis-connection consumer -> Redis"))
        if md["name"] == "milvus-connection" and milvus is not None:
            out.append((md["namespace"], milvus.inputs["namespace"], names.PORT_MILVUS,
                        "milvus-connection consumer -> Milvus"))
    # kagent's ModelConfigs -> the gateway; the gateway's routes -> the model servers' pods
    for mc in kind(plan, ":ModelConfig"):
        ns, port = target_of_url(mc.inputs["spec"]["openAI"]["baseUrl"])
        out.append((mc.inputs["metadata"]["namespace"], ns, port, "ModelConfig -> gateway"))
    for gw in kind(plan, "gateway.networking.k8s.io/v1:Gateway"):
        gw_ns = gw.inputs["metadata"]["namespace"]
        for route in kind(plan, ":HTTPRoute"):
            for rule in route.inputs["spec"]["rules"]:
                for ref in rule.get("backendRefs") or []:
                    if ref.get("kind", "Service") != "Service":
                        continue
                    ns = ref.get("namespace", route.inputs["metadata"]["namespace"])
                    svc = [s for s in services(plan, ns) if s["metadata"]["name"] == ref["name"]]
                    port = ref.get("port")
                    port = container_port(plan, ns, svc[0], port) if svc and port else port
                    out.append((gw_ns, ns, port, f"gateway -> backend {ref['name']}"))
    # tools: in-cluster MCP servers by Service address, remote ones over HTTPS
    for t in kind(plan, ":RemoteMCPServer"):
        ns, port = target_of_url(t.inputs["spec"]["url"])
        out.append((t.inputs["metadata"]["namespace"], ns, port, f"agents -> tool {t.inputs['metadata']['name']}"))
    # agents' telemetry
    for a in kind(plan, "kagent.dev/v1alpha2:Agent"):
        for env in a.inputs["spec"]["declarative"]["deployment"].get("env") or []:
            if env["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT":
                ns, port = target_of_url(env["value"])
                out.append((a.inputs["metadata"]["namespace"], ns, port, "agent -> OTLP"))
    # KEDA (its operator's namespace) -> each trigger's target
    keda = release(plan, "keda")
    if keda is not None:
        for so in kind(plan, ":ScaledObject"):
            for trig in so.inputs["spec"]["triggers"]:
                if trig["type"] == "redis":
                    out.append((keda.inputs["namespace"], redis_ns, redis_port, "KEDA redis trigger"))
                if trig["type"] == "prometheus":
                    ns, port = target_of_url(trig["metadata"]["serverAddress"])
                    out.append((keda.inputs["namespace"], ns, port, "KEDA prometheus trigger"))
    # LangFuse: the platform's Redis (through the Secret), its external PostgreSQL
    lf = release(plan, "langfuse")
    if lf is not None:
        v = lf.inputs["values"]
        if any((e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name") == "redis-connection"
               for e in v["langfuse"].get("additionalEnv") or []):
            out.append((lf.inputs["namespace"], redis_ns, redis_port, "LangFuse -> Redis"))
        if not v["postgresql"]["deploy"]:
            out.append((lf.inputs["namespace"], VPC, int(v["postgresql"].get("port", 5432)), "LangFuse -> RDS"))
    kagent = release(plan, "kagent")
    if kagent is not None and kagent.inputs["values"]["database"]["postgres"].get("urlFile"):
        out.append((kagent.inputs["namespace"], VPC, 5432, "kagent -> RDS"))
    # Prometheus -> every ServiceMonitor's targets
    prom_ns = release(plan, "kube-prometheus-stack").inputs["namespace"]
    for sm in plan.by_type(MONITOR):
        spec, own = sm.inputs["spec"], sm.inputs["metadata"]["namespace"]
        ns_sel = spec.get("namespaceSelector") or {}
        if ns_sel.get("any"):
            want = spec["selector"]["matchLabels"].items()
            targets = sorted({r.inputs["metadata"]["namespace"] for r in plan.resources
                              if isinstance(r.inputs.get("metadata"), dict) and r.inputs["metadata"].get("namespace")
                              and want <= (r.inputs["metadata"].get("labels") or {}).items()})
        else:
            targets = ns_sel.get("matchNames") or [own]
        for ns in targets:
            for ep in spec["endpoints"]:
                port = ep.get("targetPort") or ep.get("port")
                matching = [s for s in services(plan, ns)
                            if spec["selector"]["matchLabels"].items() <= s["metadata"].get("labels", {}).items()]
                resolved = container_port(plan, ns, matching[0], port) if matching else port
                out.append((prom_ns, ns, resolved if isinstance(resolved, int) else None,
                            f"Prometheus -> ServiceMonitor {sm.inputs['metadata']['name']}"))
    for rel, port in CHART_MONITORS.items():
        r = release(plan, rel)
        if r is not None and r.inputs["values"]["metrics"]["serviceMonitor"]["enabled"]:
            out.append((prom_ns, r.inputs["namespace"], port, f"Prometheus -> {rel} (chart ServiceMonitor)"))
    return out


def check(plan) -> tuple[list, list[str]]:
    pairs = {(e["from"], e["to"]): e["ports"] for e in of_plan(plan)}
    policies = policies_by_namespace(plan.resources)
    (vpc,) = plan.by_type("aws:ec2/vpc:Vpc")
    vpc_address = str(ipaddress.ip_network(vpc.inputs["cidrBlock"]).network_address + 100)
    conns, blocked = connections(plan), []
    for src, dst, port, why in conns:
        if dst in (VPC, INTERNET):
            ok = egress_allows_ip(policies.get(src, []), vpc_address if dst == VPC else PUBLIC_ADDRESS, int(port))
        else:
            ports = pairs.get((src, dst))
            ok = bool(ports) and (port is None or ports == ["any"] or f"{port}/TCP" in ports)
        if not ok:
            blocked.append(f"{why}: {src} -> {dst}:{port}")
    return conns, blocked


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_declared_connection_is_allowed(stack, dev_plan, prod_plan):
    plan = dev_plan if stack == "dev" else prod_plan
    conns, blocked = check(plan)
    assert blocked == []
    # the derivation found the connections the layers make (a vacuous pass is a failure)
    whys = {c[3] for c in conns}
    for expected in ("redis-connection consumer -> Redis", "milvus-connection consumer -> Milvus",
                     "ModelConfig -> gateway", "KEDA redis trigger", "KEDA prometheus trigger",
                     "LangFuse -> Redis", "agent -> OTLP"):
        assert expected in whys, expected
    assert any(w.startswith("gateway -> backend") for w in whys)
    assert any(w.startswith("Prometheus -> ServiceMonitor") for w in whys)
    assert any(c[1] == INTERNET for c in conns), "a remote tool server over HTTPS"


def test_dev_redis_is_valkey_in_ai_data_and_keda_reaches_it(dev_plan):
    conns, _ = check(dev_plan)
    assert ("kube-system", names.NS_DATA, names.PORT_REDIS, "KEDA redis trigger") in conns
    assert (names.NS_OBSERVABILITY, names.NS_DATA, names.PORT_REDIS, "LangFuse -> Redis") in conns


def test_prod_databases_and_elasticache_are_in_the_vpc(prod_plan):
    conns, _ = check(prod_plan)
    assert (names.NS_AGENTS, VPC, 5432, "kagent -> RDS") in conns
    assert (names.NS_OBSERVABILITY, VPC, 5432, "LangFuse -> RDS") in conns
    assert (names.NS_OBSERVABILITY, VPC, names.PORT_REDIS, "LangFuse -> Redis") in conns
    assert (names.NS_AGENTS, VPC, names.PORT_REDIS, "redis-connection consumer -> Redis") in conns


def test_a_missing_flow_is_caught(prod_plan):
    """Remove the egress rules of ai-agents: its declared connections are reported blocked."""
    from plan.engine import Plan

    resources = [r for r in prod_plan.resources
                 if not (r.type.endswith(":NetworkPolicy") and r.inputs["metadata"]["name"] == "allow-egress"
                         and r.inputs["metadata"]["namespace"] == names.NS_AGENTS)]
    assert len(resources) == len(prod_plan.resources) - 1
    broken = Plan(prod_plan.project, prod_plan.stack, resources, prod_plan.outputs, prod_plan.monitor)
    _, blocked = check(broken)
    assert any("ModelConfig -> gateway" in b for b in blocked)
    assert any("kagent -> RDS" in b for b in blocked)
    assert any("agents -> tool ticketing" in b for b in blocked)
