"""Prometheus -> the targets of the ServiceMonitors and PodMonitors it selects, and -> its
Alertmanagers; monitors that scrape nothing are findings."""

from __future__ import annotations

from typing import Any

from plan.connections.derivation import Derivation, service_key
from plan.reachability import (
    Pod,
    as_int,
    selector_matches,
)


def _monitor_namespaces(d: Derivation, sel: dict[str, Any] | None, own: str) -> list[str]:
    """A ServiceMonitor/PodMonitor namespaceSelector: {any: true}, {matchNames: [...]}, absent = own."""
    sel = sel or {}
    if sel.get("any"):
        return sorted(d.cluster.namespaces)
    return list(sel.get("matchNames") or [own])


def _selected_by(d: Derivation, prom: Any, monitor: Any, kind: str) -> bool:
    """Does Prometheus `prom` pick `monitor` (a ServiceMonitor or PodMonitor)? nil selector: none;
    nil namespace selector: the Prometheus's own namespace only (prometheus-operator semantics)."""
    spec = prom.manifest.get("spec") or {}
    sel, ns_sel = spec.get(f"{kind}Selector"), spec.get(f"{kind}NamespaceSelector")
    if sel is None or not selector_matches(sel, monitor.metadata.get("labels") or {}):
        return False
    if ns_sel is None:
        return monitor.namespace == prom.namespace
    return selector_matches(ns_sel, d.cluster.namespace_labels(monitor.namespace or "default"))


def _finding(obj: Any, message: str) -> dict[str, Any]:
    return {"object": obj.ref, "source": obj.source, "release": obj.release, "check": "reachability",
            "message": message}


def monitoring(d: Derivation) -> None:
    proms = [o for o in d.objects if o.group == "monitoring.coreos.com" and o.kind == "Prometheus"]
    prom_pods = {o.ref: (d.pods_of_object(o) or d.pods_where(o.namespace, {"app.kubernetes.io/name": "prometheus",
                                                                          "operator.prometheus.io/name": o.name}))
                 for o in proms}
    for sm in (o for o in d.objects if o.group == "monitoring.coreos.com" and o.kind == "ServiceMonitor"):
        spec = sm.manifest.get("spec") or {}
        scrapers = [p for prom in proms if _selected_by(d, prom, sm, "serviceMonitor") for p in prom_pods[prom.ref]]
        if proms and not any(_selected_by(d, prom, sm, "serviceMonitor") for prom in proms):
            d.findings.append(_finding(sm, "no Prometheus selects this ServiceMonitor (serviceMonitorSelector / "
                                           "serviceMonitorNamespaceSelector): its targets are never scraped"))
        namespaces = _monitor_namespaces(d, spec.get("namespaceSelector"), sm.namespace or "default")
        services = [s for (ns, _n), s in d.cluster.services.items() if ns in namespaces
                    and selector_matches(spec.get("selector") or {}, {k: str(v) for k, v in
                                                                      ((s.get("metadata") or {}).get("labels") or {}).items()})]
        if not services:
            d.findings.append(_finding(sm, f"selects no Service (selector {spec.get('selector')} in "
                                           f"{', '.join(namespaces) if len(namespaces) < 5 else 'any namespace'})"))
            continue
        for ep in spec.get("endpoints") or []:
            name, target = ep.get("port"), ep.get("targetPort")
            if name is not None:
                having = [s for s in services if any(sp.get("name") == name for sp in (s.get("spec") or {}).get("ports") or [])]
                if not having:
                    names = sorted({str(sp.get("name")) for s in services for sp in (s.get("spec") or {}).get("ports") or []})
                    d.findings.append(_finding(sm, f"endpoint port {name!r} is not a port name of the Services it selects "
                                                   f"({', '.join(f'{service_key(s)[0]}/{service_key(s)[1]}' for s in services)}: "
                                                   f"{', '.join(names)}): nothing is scraped"))
                for s in having:
                    d.to_service(scrapers, s, name, f"Prometheus scrape (ServiceMonitor {sm.namespace}/{sm.name})",
                                 direct=True)
            elif target is not None:   # a port of the pods behind the Services
                for s in services:
                    for pod in _service_pods(d, s):
                        number = as_int(target)
                        numbers = [number] if number is not None else pod.named_port(str(target), "TCP")
                        for n in numbers:
                            for src in scrapers:
                                d.need(src, pod, n, "TCP", f"Prometheus scrape (ServiceMonitor {sm.namespace}/{sm.name})")
    for pm in (o for o in d.objects if o.group == "monitoring.coreos.com" and o.kind == "PodMonitor"):
        spec = pm.manifest.get("spec") or {}
        scrapers = [p for prom in proms if _selected_by(d, prom, pm, "podMonitor") for p in prom_pods[prom.ref]]
        if proms and not scrapers:
            d.findings.append(_finding(pm, "no Prometheus selects this PodMonitor: its targets are never scraped"))
        namespaces = _monitor_namespaces(d, spec.get("namespaceSelector"), pm.namespace or "default")
        pods = [p for p in d.cluster.pods if not p.wildcard and p.namespace in namespaces
                and selector_matches(spec.get("selector") or {}, p.labels)]
        if not pods:
            d.findings.append(_finding(pm, f"selects no pod (selector {spec.get('selector')})"))
        for ep in spec.get("podMetricsEndpoints") or []:
            name = ep.get("port")
            number = as_int(ep.get("portNumber")) or as_int(ep.get("targetPort"))
            for pod in pods:
                numbers = [number] if number is not None else pod.named_port(str(name), "TCP")
                for n in numbers:
                    for src in scrapers:
                        d.need(src, pod, n, "TCP", f"Prometheus scrape (PodMonitor {pm.namespace}/{pm.name})")
            if name is not None and pods and not any(p.named_port(str(name), "TCP") for p in pods):
                d.findings.append(_finding(pm, f"endpoint port {name!r} is not a container port name of the pods it selects"))
    for prom in proms:
        for am in (((prom.manifest.get("spec") or {}).get("alerting") or {}).get("alertmanagers") or []):
            svc = d.cluster.service(am.get("namespace") or prom.namespace, am.get("name"))
            d.to_service(prom_pods[prom.ref], svc, am.get("port"), "Prometheus -> Alertmanager",
                         f"{am.get('namespace')}/Service/{am.get('name')}", direct=True)


def _service_pods(d: Derivation, svc: dict[str, Any]) -> list[Pod]:
    sel = (svc.get("spec") or {}).get("selector") or {}
    ns = service_key(svc)[0]
    return [p for p in d.cluster.pods_in.get(ns, []) if sel and not p.wildcard
            and selector_matches({"matchLabels": sel}, p.labels)]
