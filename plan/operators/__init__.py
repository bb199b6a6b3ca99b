"""The objects operators create at run time from the platform's objects, so admission sees their pods.

`operator_objects(objects)` returns, for every custom resource an operator the platform installs acts
on, the Deployments/StatefulSets (full pod templates), Services, ServiceAccounts and the Secrets and
ConfigMaps their pods mount that the operator itself creates. Each comes back as a `K8sObject` with
the `source` of the object it comes from, `release=None` and `controller="<operator> <version>"`.

Each translation is a port of the operator's own code at the version the platform pins
(platform/operators.yaml: versions, upstream repository/tag/commit, the controller settings the
platform's chart values give it); each module of this package cites the upstream files it follows.

* prometheus-operator (kube-prometheus-stack): `monitoring.coreos.com/v1` Prometheus -> StatefulSet
  per shard, the `prometheus-operated` Service, the config/TLS/web-config Secrets and the rule-file
  ConfigMap; Alertmanager -> StatefulSet, `alertmanager-operated`, its generated Secrets.
* kagent: `kagent.dev/v1alpha2` Agent -> config Secret, ServiceAccount, Deployment, Service.
* kgateway: `gateway.networking.k8s.io/v1` Gateway of a kgateway class -> the Envoy proxy's
  ServiceAccount, ConfigMap, Deployment, Service (and the PodDisruptionBudget/HPA its
  GatewayParameters ask for), from the controller's embedded Helm chart and GatewayParameters.
* agentgateway: Gateway of class `agentgateway` -> ServiceAccount, ConfigMap, Deployment, Service and
  the session-key Secret, with AgentgatewayParameters applied.

The controllers' settings (images, the config-reloader flags, kagent's image registry) are read from
the controller object its chart renders when it is among `objects` (the prometheus-operator
Deployment's args, the kagent controller ConfigMap, the kgateway/agentgateway controller env), else
from `defaults` in platform/operators.yaml (what those charts render with the platform's values).

Not modelled (documented per translation): the *content* of generated configuration (Secrets and
ConfigMaps carry their keys with empty values), owner references, hash annotations, status-driven
behaviour, and features the platform does not use (named where they are skipped).
"""

from __future__ import annotations

import copy

from plan.objects import K8sObject
from plan.operators.agentgateway import agentgateway_proxy
from plan.operators.alertmanager import alertmanager
from plan.operators.common import GATEWAY_GROUP, Obj, controller_label, merge_patch_containers, pins, semver_string, strategic_merge
from plan.operators.gateway_proxies import AGENTGATEWAY, KGATEWAY, gateway_class_controllers
from plan.operators.kagent import KAGENT, kagent_agent
from plan.operators.kgateway import kgateway_proxy
from plan.operators.prometheus import prometheus
from plan.operators.prometheus_operator import PO

# The translations' helpers the tests exercise directly.
__all__ = ["merge_patch_containers", "operator_objects", "pins", "semver_string", "strategic_merge"]


def operator_objects(objects: list[K8sObject]) -> list[K8sObject]:
    """Every object the platform's operators would create from `objects` (see the module docstring).
    A governing Service shared by several CRs of one namespace (prometheus-operated,
    alertmanager-operated) is returned once."""
    classes = gateway_class_controllers(objects)
    out: list[K8sObject] = []
    seen: set[tuple[str, str, str]] = set()

    def emit(manifests: list[Obj], cr: K8sObject, operator: str) -> None:
        for m in manifests:
            key = (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])
            if key in seen:
                continue
            seen.add(key)
            out.append(K8sObject(copy.deepcopy(m), cr.source, release=None, controller=controller_label(operator)))

    for o in objects:
        if o.group == "monitoring.coreos.com" and o.kind == "Prometheus":
            emit(prometheus(o, objects), o, PO)
        elif o.group == "monitoring.coreos.com" and o.kind == "Alertmanager":
            emit(alertmanager(o, objects), o, PO)
        elif o.group == "kagent.dev" and o.kind == "Agent":
            emit(kagent_agent(o, objects), o, KAGENT)
        elif o.group == GATEWAY_GROUP and o.kind == "Gateway":
            operator = classes.get(str((o.manifest.get("spec") or {}).get("gatewayClassName")))
            if operator == KGATEWAY:
                emit(kgateway_proxy(o, objects), o, KGATEWAY)
            elif operator == AGENTGATEWAY:
                emit(agentgateway_proxy(o, objects), o, AGENTGATEWAY)
    return out
