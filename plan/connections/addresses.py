"""Addresses in the objects (container env, mounted ConfigMaps, kagent and KEDA resources),
connection Secrets (RDS, ElastiCache, the data layer's Valkey and Milvus) and load balancers."""

from __future__ import annotations

from typing import Any

import yaml

from components import data, names
from domain.yamlfile import load_yaml
from plan.admission.pod_security import pod_templates
from plan.admission.references import pod_references
from plan.connections.derivation import HOST_PORT, Derivation, backend_objects
from plan.reachability import (
    External,
    Pod,
    as_int,
)

RDS = "aws:rds/instance:Instance"
ELASTICACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
HOST_PORT_DEFAULTS = {"DATABASE": 5432, "POSTGRES": 5432, "REDIS": 6379, "CLICKHOUSE": 8123}


def _mounted_configmaps(spec: dict[str, Any]) -> set[str]:
    """ConfigMaps a pod reads (volumes, projected, envFrom, env; optional ones too)."""
    return {name for kind, name in pod_references(spec, optional=True) if kind == "ConfigMap" and name}


def _milvus_config(d: Derivation, srcs: list[Pod], text: str, why: str) -> None:
    """Milvus' config (milvus.yaml): etcd.endpoints ("host:port") and minio.address/port (S3)."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError:
        return
    if not isinstance(doc, dict):
        return
    for ep in ((doc.get("etcd") or {}).get("endpoints") or []) if isinstance(doc.get("etcd"), dict) else []:
        m = HOST_PORT.match(str(ep))
        if m:
            d.to_address(srcs, m[1], int(m[2]), f"{why}: etcd")
    minio = doc.get("minio")
    if isinstance(minio, dict) and minio.get("address"):
        port = as_int(minio.get("port")) or (443 if minio.get("useSSL") else 9000)
        d.to_address(srcs, str(minio["address"]), port, f"{why}: object storage")


def _config_strings(text: str) -> list[str]:
    """The string values of a config file: its YAML/JSON scalars (comments are not config), else
    its lines without `#` comments."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, (dict, list)):
        out: list[str] = []
        stack: list[Any] = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str):
                out.append(node)
        return out
    return [line.split("#", 1)[0] for line in text.splitlines() if not line.lstrip().startswith(("#", "//"))]


def pods_by_source(d: Derivation) -> dict[int, list[Pod]]:
    """The cluster's pods by the object that makes them (keyed by the object's id)."""
    out: dict[int, list[Pod]] = {}
    for p in d.cluster.pods:
        if p.source is not None:
            out.setdefault(id(p.source), []).append(p)
    return out


def addresses(d: Derivation) -> None:
    """URLs and host/port pairs in container env and in the ConfigMaps each pod mounts."""
    configmaps = {(o.namespace, o.name): o for o in d.objects if o.kind == "ConfigMap" and not o.group}
    by_source = pods_by_source(d)
    for o in d.objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            srcs = by_source.get(id(o), [])
            if not srcs:
                continue
            for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
                env = {e.get("name"): e.get("value") for e in c.get("env") or [] if isinstance(e.get("value"), str)}
                for name, value in env.items():
                    why = f"{o.kind}/{o.name} env {name}"
                    if "://" in value:
                        d.to_url(srcs, value, why)
                    elif name.endswith("_HOST") and value:
                        prefix = name[: -len("_HOST")]
                        port = as_int(env.get(f"{prefix}_PORT")) or HOST_PORT_DEFAULTS.get(prefix.split("_")[-1])
                        d.to_address(srcs, value, port, why)
                    elif HOST_PORT.match(value) and "." in value.split(":")[0]:
                        m = HOST_PORT.match(value)
                        d.to_address(srcs, m[1], int(m[2]), why)   # type: ignore[index]
            for cm_name in sorted(_mounted_configmaps(spec)):
                cm = configmaps.get((o.namespace, cm_name))
                if cm is None:
                    continue
                for key, text in (cm.manifest.get("data") or {}).items():
                    if not isinstance(text, str):
                        continue
                    why = f"{o.kind}/{o.name} config {cm_name}/{key}"
                    for value in _config_strings(text):
                        if "://" in value:
                            d.to_url(srcs, value, why)
                    if "etcd" in text and "minio" in text:
                        _milvus_config(d, srcs, text, why)


def custom_resources(d: Derivation) -> None:
    """ModelConfig / RemoteMCPServer URLs (agents, the kagent controller), Agent env, KEDA triggers."""
    agents = [o for o in d.objects if o.kind == "Agent" and o.group == "kagent.dev"]
    agent_pods = {a.ref: d.pods_of_object(a) for a in agents}
    kagent_controller = d.pods_where(None, {"app.kubernetes.io/name": "kagent", "app.kubernetes.io/component": "controller"})
    for a in agents:
        if not agent_pods[a.ref]:
            d.unresolved.append({"from": a.ref, "to": "its model, tools and telemetry", "why": "kagent agent",
                                 "problem": "no pods for this Agent among the objects (plan/operators.py)"})
    for o in d.objects:
        spec = o.manifest.get("spec") or {}
        if o.kind == "ModelConfig" and o.group == "kagent.dev":
            users = [p for a in agents if ((a.manifest.get("spec") or {}).get("declarative") or {}).get("modelConfig") == o.name
                     and a.namespace == o.namespace for p in agent_pods[a.ref]]
            for provider in spec.values():
                if isinstance(provider, dict) and isinstance(provider.get("baseUrl"), str):
                    d.to_url(users, provider["baseUrl"], f"agent -> model (ModelConfig {o.name})")
        elif o.kind == "RemoteMCPServer" and o.group == "kagent.dev" and isinstance(spec.get("url"), str):
            users = [p for a in agents if a.namespace == o.namespace and any(
                ((t.get("mcpServer") or {}).get("name") == o.name)
                for t in ((a.manifest.get("spec") or {}).get("declarative") or {}).get("tools") or [])
                for p in agent_pods[a.ref]]
            d.to_url(users + kagent_controller, spec["url"], f"tool {o.name} (RemoteMCPServer)")
        elif o.kind == "Agent" and o.group == "kagent.dev":
            for e in (((spec.get("declarative") or {}).get("deployment") or {}).get("env") or []):
                if isinstance(e.get("value"), str) and "://" in e["value"]:
                    d.to_url(agent_pods[o.ref], e["value"], f"agent env {e.get('name')}")
        elif o.kind == "ScaledObject" and o.group == "keda.sh":
            keda = d.pods_where(None, {"app": "keda-operator"})
            for t in spec.get("triggers") or []:
                md = t.get("metadata") or {}
                why = f"KEDA {t.get('type')} trigger ({o.namespace}/{o.name})"
                if isinstance(md.get("serverAddress"), str):
                    d.to_url(keda, md["serverAddress"], why)
                if isinstance(md.get("address"), str):
                    m = HOST_PORT.match(md["address"])
                    if m:
                        d.to_address(keda, m[1], int(m[2]), why)
                auth = (t.get("authenticationRef") or {}).get("name")
                for ta in backend_objects(d, "TriggerAuthentication", o.namespace, auth) if auth else []:
                    for ref in (ta.manifest.get("spec") or {}).get("secretTargetRef") or []:
                        if ref.get("parameter") in ("host", "address", "addresses"):
                            _secret_target(d, keda, o.namespace, ref.get("name"), why)


def _secret_deps(d: Derivation, secret: Any) -> list[Any]:
    res = d.by_urn.get(secret.source)
    return [d.by_urn[u] for u in (res.dependencies if res is not None else []) if u in d.by_urn]


def _secret_target(d: Derivation, srcs: list[Pod], ns: str, name: str | None, why: str) -> None:
    """Where a connection Secret points: an RDS instance or ElastiCache group it is built from (the
    VPC), or the data layer's in-cluster Valkey / Milvus."""
    if not name or not srcs:
        return
    secrets = [o for o in backend_objects(d, "Secret", ns, name) if not o.group]
    for s in secrets:
        for dep in _secret_deps(d, s):
            if dep.type == RDS:
                port = as_int(dep.inputs.get("port")) or 5432
                for p in srcs:
                    d.need(p, External("RDS PostgreSQL (in the VPC)", d.vpc), port, "TCP", f"{why} (Secret {name})")
                return
            if dep.type == ELASTICACHE:
                port = as_int(dep.inputs.get("port")) or names.PORT_REDIS
                for p in srcs:
                    d.need(p, External("ElastiCache (in the VPC)", d.vpc), port, "TCP", f"{why} (Secret {name})")
                return
        if name == data.REDIS_SECRET:
            d.to_service(srcs, d.cluster.service(names.NS_DATA, data.VALKEY_RELEASE), names.PORT_REDIS,
                         f"{why} (Secret {name})", f"{names.NS_DATA}/Service/{data.VALKEY_RELEASE}")
        elif name == data.MILVUS_SECRET:
            d.to_service(srcs, d.cluster.service(names.NS_DATA, data.MILVUS_RELEASE), names.PORT_MILVUS,
                         f"{why} (Secret {name})", f"{names.NS_DATA}/Service/{data.MILVUS_RELEASE}")


def _secret_refs(spec: dict[str, Any]) -> set[str]:
    """Secrets a pod reads (volumes, projected, env, envFrom, image pull; optional ones too)."""
    return {name for kind, name in pod_references(spec, optional=True) if kind == "Secret" and name}


def connection_secrets(d: Derivation) -> None:
    by_source = pods_by_source(d)
    for o in d.objects:
        for _path, _meta, spec in pod_templates(o.manifest):
            for name in sorted(_secret_refs(spec)):
                _secret_target(d, by_source.get(id(o), []), o.namespace or "default", name, f"{o.kind}/{o.name} reads")


def load_balancers(d: Derivation) -> None:
    nlb = External("NLB (its ENIs in the VPC; IP targets)", d.vpc)
    for (ns, name), svc in d.cluster.services.items():
        spec = svc.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            continue
        for sp in spec.get("ports") or []:
            for pod, number, proto, _ in d.cluster.backends(svc, as_int(sp.get("port")) or 0):
                d.need(nlb, pod, number, proto, f"load balancer -> {ns}/Service/{name}:{sp.get('port')}")
