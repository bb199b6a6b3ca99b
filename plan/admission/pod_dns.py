"""A pod's DNS settings as the API server validates them (kubernetes pkg/apis/core/validation/
validation.go, validateDNSPolicy and validatePodDNSConfig; Kubernetes docs "DNS for Services and
Pods", Pod's DNS Config). A pod the plan's DNS flows would reason about but the API server rejects
is a rejection here, not a flow: `dnsPolicy: None` with no nameserver never runs.

Limits since Kubernetes 1.28 (KEP-2595 ExpandedDNSConfig, GA and always on): at most 3
nameservers, 32 search domains and 2048 characters of search list (joined by spaces)."""

from __future__ import annotations

import ipaddress
from typing import Any

from plan.admission.pod_security import pod_templates
from plan.objects import K8sObject

DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048


def _ip_problem(value: Any) -> str | None:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return f"{value!r} must be a valid IP address"
    return None


def spec_problems(spec: dict[str, Any]) -> list[str]:
    """What the API server says about a PodSpec's dnsPolicy and dnsConfig ([] when it admits them)."""
    policy = spec.get("dnsPolicy", "ClusterFirst")
    config = spec.get("dnsConfig")
    if policy not in DNS_POLICIES:
        return [f"dnsPolicy: Unsupported value {policy!r}: supported values: {', '.join(DNS_POLICIES)}"]
    if policy == "None" and config is None:
        return ["dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
    config = config or {}
    servers, searches = config.get("nameservers") or [], config.get("searches") or []
    if policy == "None" and not servers:
        return ["dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"]
    out = []
    if len(servers) > MAX_NAMESERVERS:
        out.append(f"dnsConfig.nameservers: must not have more than {MAX_NAMESERVERS} nameservers")
    out += [f"dnsConfig.nameservers[{i}]: {p}" for i, s in enumerate(servers) if (p := _ip_problem(s))]
    if len(searches) > MAX_SEARCH_PATHS:
        out.append(f"dnsConfig.searches: must not have more than {MAX_SEARCH_PATHS} search paths")
    if len(" ".join(map(str, searches))) > MAX_SEARCH_CHARS:
        out.append(f"dnsConfig.searches: must not have more than {MAX_SEARCH_CHARS} characters (including spaces)")
    out += [f"dnsConfig.options[{i}].name: Required value" for i, opt in enumerate(config.get("options") or [])
            if not (opt or {}).get("name")]
    return out


def check(objects: list[K8sObject]) -> list[tuple[K8sObject, str]]:
    return [(o, f"{path}.{problem}") for o in objects for path, _meta, spec in pod_templates(o.manifest)
            for problem in spec_problems(spec)]
