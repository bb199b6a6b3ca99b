"""What the kgateway and agentgateway translations share: which controller owns a GatewayClass,
listeners, infrastructure metadata.

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import hashlib
import re

from plan.objects import K8sObject
from plan.operators.common import GATEWAY_GROUP, Obj, pins

KGATEWAY = "kgateway"
AGENTGATEWAY = "agentgateway"


def safe_label_value(name: str) -> str:
    """pkg/utils/kubeutils/dns.go SafeGatewayLabelValue / the charts' `kgateway.gateway.safeLabelValue`."""
    if len(name) <= 63:
        return name
    return f"{name[:50].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def gateway_class_controllers(objects: list[K8sObject]) -> dict[str, str]:
    """class name -> operator: the classes each controller creates by default (operators.yaml
    `gatewayClasses`) plus declared GatewayClasses with its controllerName."""
    out = {c: op for op in (KGATEWAY, AGENTGATEWAY) for c in pins()[op]["gatewayClasses"]}
    names = {pins()[op]["controllerName"]: op for op in (KGATEWAY, AGENTGATEWAY)}
    for o in objects:
        if o.kind == "GatewayClass" and o.group == GATEWAY_GROUP:
            ctrl = (o.manifest.get("spec") or {}).get("controllerName")
            if ctrl in names:
                out[o.name] = names[ctrl]
    return out


def _listener_ports(gw: Obj) -> list[int]:
    """The Gateway's listener ports, deduplicated and sorted (ir.GatewayForDeployer.Ports, a smallset)."""
    return sorted({int(listener["port"]) for listener in (gw.get("spec") or {}).get("listeners") or []})


def _helm_port(port: int) -> Obj:
    """deployer/values_helpers.go AppendPortValue: name `listener~<port>` sanitised (SanitizePortName)."""
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-zA-Z0-9-]+", "-", f"listener~{port}"))[:15]
    return {"name": name, "protocol": "TCP", "port": port, "targetPort": port}


def _infra_meta(gw: Obj, key: str) -> dict[str, str]:
    """gateway_parameters.go translateInfraMeta: infrastructure labels/annotations minus gateway.networking.k8s.io/*."""
    src = ((gw.get("spec") or {}).get("infrastructure") or {}).get(key) or {}
    return {k: str(v) for k, v in src.items() if not k.startswith(f"{GATEWAY_GROUP}/")}
