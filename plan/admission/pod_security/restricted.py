"""The restricted checks of the Pod Security Standards (kubernetes/pod-security-admission v0.34.9,
policy/check_*.go), each named after its upstream file and version gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plan.admission.pod_security.baseline import _valid_seccomp_type
from plan.admission.pod_security.core import (
    _container_setters,
    _containers,
    _field,
    _int,
    _is_windows,
    _join_quote,
    _list,
    _name,
    _obj,
    _pluralize,
    _Pod,
    _Result,
    _str,
)


def _allow_privilege_escalation_1_8(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_allowPrivilegeEscalation.go, allowPrivilegeEscalation_1_8: every container must
    set securityContext.allowPrivilegeEscalation=false."""
    bad = [_name(c) for c in _containers(spec) if (_field(c, "securityContext") or {}).get("allowPrivilegeEscalation") is not False]
    if bad:
        return _Result(
            "allowPrivilegeEscalation != false",
            f"{_pluralize('container', 'containers', len(bad))} {_join_quote(bad)} "
            "must set securityContext.allowPrivilegeEscalation=false",
        )
    return None


def _allow_privilege_escalation_1_25(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_allowPrivilegeEscalation.go, allowPrivilegeEscalation_1_25: Windows pods exempt."""
    return None if _is_windows(spec) else _allow_privilege_escalation_1_8(metadata, spec)


def _capabilities_restricted_1_22(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_capabilities_restricted.go, capabilitiesRestricted_1_22: every container must
    drop "ALL" and may add only NET_BIND_SERVICE."""
    missing_drop_all: list[str] = []
    adding_forbidden: list[str] = []
    forbidden_caps: set[str] = set()
    for container in _containers(spec):
        capabilities = _field(_field(container, "securityContext"), "capabilities")
        if capabilities is None:
            missing_drop_all.append(_name(container))
            continue
        if "ALL" not in [str(c) for c in _list(capabilities, "drop")]:
            missing_drop_all.append(_name(container))
        added_forbidden = False
        for cap in _list(capabilities, "add"):
            if str(cap) != "NET_BIND_SERVICE":
                added_forbidden = True
                forbidden_caps.add(str(cap))
        if added_forbidden:
            adding_forbidden.append(_name(container))
    details: list[str] = []
    if missing_drop_all:
        details.append(
            f"{_pluralize('container', 'containers', len(missing_drop_all))} {_join_quote(missing_drop_all)} "
            'must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding_forbidden:
        details.append(
            f"{_pluralize('container', 'containers', len(adding_forbidden))} {_join_quote(adding_forbidden)} "
            f"must not include {_join_quote(sorted(forbidden_caps))} in securityContext.capabilities.add"
        )
    if details:
        return _Result("unrestricted capabilities", "; ".join(details))
    return None


def _capabilities_restricted_1_25(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_capabilities_restricted.go, capabilitiesRestricted_1_25: Windows pods exempt."""
    return None if _is_windows(spec) else _capabilities_restricted_1_22(metadata, spec)


# policy/check_restrictedVolumes.go: the volume sources restricted pods may use ...
_ALLOWED_VOLUME_SOURCES = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret",
)
# ... and the restricted ones, in the order upstream names the first one set.
_RESTRICTED_VOLUME_SOURCES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
    "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos",
)


def _restricted_volumes_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_restrictedVolumes.go, restrictedVolumes_1_0: only configMap, csi, downwardAPI,
    emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes.

    The plugin sees the object after API defaulting, and the API server defaults a volume that sets
    no source to ``emptyDir: {}`` (kubernetes pkg/apis/core/v1/defaults.go, SetDefaults_Volume), so
    such a volume is allowed here too (upstream's fixture restricted/v1.34/pass/restrictedvolumes0
    relies on it)."""
    bad_volumes: list[str] = []
    bad_types: set[str] = set()
    for raw in _list(spec, "volumes"):
        volume = _obj(raw) or {}
        if any(volume.get(source) is not None for source in _ALLOWED_VOLUME_SOURCES):
            continue
        source = next((s for s in _RESTRICTED_VOLUME_SOURCES if volume.get(s) is not None), None)
        if source is None:
            continue  # no source at all: defaulted to emptyDir (upstream's "unknown" cannot occur after defaulting)
        bad_volumes.append(_str(volume, "name"))
        bad_types.add(source)
    if bad_volumes:
        return _Result(
            "restricted volume types",
            f"{_pluralize('volume', 'volumes', len(bad_volumes))} {_join_quote(bad_volumes)} "
            f"{_pluralize('uses', 'use', len(bad_volumes))} "
            f"{_pluralize('restricted volume type', 'restricted volume types', len(bad_types))} {_join_quote(sorted(bad_types))}",
        )
    return None


def _run_as_non_root_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_runAsNonRoot.go, runAsNonRoot_1_0: runAsNonRoot=true at pod level (containers
    may leave it unset) or on every container; nothing may set it to false. (User-namespace
    relaxation: see _RELAXED_FOR_USER_NAMESPACES.)"""
    bad_setters: list[str] = []
    pod_run_as_non_root = False
    pod_value = (_field(spec, "securityContext") or {}).get("runAsNonRoot")
    if pod_value is not None:
        if pod_value is not True:
            bad_setters.append("pod")
        else:
            pod_run_as_non_root = True
    explicitly_bad: list[str] = []
    implicitly_bad: list[str] = []
    for container in _containers(spec):
        value = (_field(container, "securityContext") or {}).get("runAsNonRoot")
        if value is not None:
            if value is not True:
                explicitly_bad.append(_name(container))
        elif not pod_run_as_non_root:
            implicitly_bad.append(_name(container))
    _container_setters(bad_setters, explicitly_bad)
    if bad_setters:
        return _Result("runAsNonRoot != true", f"{' and '.join(bad_setters)} must not set securityContext.runAsNonRoot=false")
    if implicitly_bad:
        return _Result(
            "runAsNonRoot != true",
            f"pod or {_pluralize('container', 'containers', len(implicitly_bad))} {_join_quote(implicitly_bad)} "
            "must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user_1_23(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_runAsUser.go, runAsUser_1_23: neither the pod nor a container sets runAsUser=0.
    (User-namespace relaxation: see _RELAXED_FOR_USER_NAMESPACES.)"""

    def is_root(security_context: Mapping[str, Any] | None) -> bool:
        return security_context is not None and _int(security_context.get("runAsUser")) == 0

    bad_setters = ["pod"] if is_root(_field(spec, "securityContext")) else []
    _container_setters(bad_setters, [_name(c) for c in _containers(spec) if is_root(_field(c, "securityContext"))])
    if bad_setters:
        return _Result("runAsUser=0", f"{' and '.join(bad_setters)} must not set runAsUser=0")
    return None


def _seccomp_restricted_1_19(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_seccompProfile_restricted.go, seccompProfileRestricted_1_19: seccompProfile.type
    RuntimeDefault or Localhost, set at pod level or on every container."""
    bad_setters: list[str] = []
    bad_values: set[str] = set()
    pod_seccomp_set = False
    pod_profile = _field(_field(spec, "securityContext"), "seccompProfile")
    if pod_profile is not None:
        if not _valid_seccomp_type(pod_profile):
            bad_setters.append("pod")
            bad_values.add(_str(pod_profile, "type"))
        else:
            pod_seccomp_set = True
    explicitly_bad: list[str] = []
    implicitly_bad: list[str] = []
    for container in _containers(spec):
        profile = _field(_field(container, "securityContext"), "seccompProfile")
        if profile is not None:
            if not _valid_seccomp_type(profile):
                explicitly_bad.append(_name(container))
                bad_values.add(_str(profile, "type"))
        elif not pod_seccomp_set:
            implicitly_bad.append(_name(container))
    _container_setters(bad_setters, explicitly_bad)
    if bad_setters:
        return _Result(
            "seccompProfile",
            f"{' and '.join(bad_setters)} must not set securityContext.seccompProfile.type to {_join_quote(sorted(bad_values))}",
        )
    if implicitly_bad:
        return _Result(
            "seccompProfile",
            f"pod or {_pluralize('container', 'containers', len(implicitly_bad))} {_join_quote(implicitly_bad)} "
            'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        )
    return None


def _seccomp_restricted_1_25(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_seccompProfile_restricted.go, seccompProfileRestricted_1_25: Windows pods exempt."""
    return None if _is_windows(spec) else _seccomp_restricted_1_19(metadata, spec)
