"""The Kubernetes Pod Security Standards, evaluated exactly as the Pod Security admission plugin does.

A line-by-line port of the checks in kubernetes/pod-security-admission at tag v0.34.9 (the release
for Kubernetes v1.34, commit d830801b613bb661dd38157cc822dd46da6146da), Apache-2.0. Each rule below
names the upstream file it comes from (``policy/check_*.go``); the check IDs, the version gates, the
order of evaluation (``policy/registry.go``) and the wording of the forbidden reasons and details are
the upstream ones, so a message here reads like the API server's ``violates PodSecurity`` error.

Pods are plain dicts as decoded from YAML/JSON (camelCase field names). Go's nil pointers are a
missing key or ``None`` here; a present empty object (``{}``) is a non-nil pointer, as upstream.

Public API:

* ``LEVELS`` -- ``("privileged", "baseline", "restricted")``.
* ``check_pod(metadata, spec, level, version="v1.34")`` -- the list of ``Violation(check, message)``.
* ``pod_templates(obj)`` -- ``[(path, metadata, spec)]`` of the pods a Kubernetes object makes.
* ``enforce_level(namespace_labels)`` / ``enforce_version(namespace_labels)`` -- the namespace's
  enforce policy from its ``pod-security.kubernetes.io/enforce[-version]`` labels.

The upstream tests' fixtures for v1.34 are vendored in ``tests/fixtures/pod-security`` (see its
PROVENANCE.md) and every one of them is evaluated by ``tests/test_pod_security.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plan.admission.pod_security.baseline import (
    _SYSCTLS_1_0,
    _SYSCTLS_1_27,
    _SYSCTLS_1_29,
    _SYSCTLS_1_32,
    _apparmor_1_0,
    _capabilities_baseline_1_0,
    _host_namespaces_1_0,
    _host_path_volumes_1_0,
    _host_ports_1_0,
    _host_probes_and_host_lifecycle_1_34,
    _privileged_1_0,
    _proc_mount_1_0,
    _seccomp_baseline_1_0,
    _seccomp_baseline_1_19,
    _selinux_options_1_0,
    _selinux_options_1_31,
    _sysctls,
    _windows_host_process_1_0,
)
from plan.admission.pod_security.core import (
    _VERSION_RE,
    ENFORCE_LEVEL_LABEL,
    ENFORCE_VERSION_LABEL,
    LATEST_VERSION,
    LEVELS,
    Violation,
    _Check,
    _field,
    _obj,
    _Version,
    _VersionedCheck,
)
from plan.admission.pod_security.restricted import (
    _allow_privilege_escalation_1_8,
    _allow_privilege_escalation_1_25,
    _capabilities_restricted_1_22,
    _capabilities_restricted_1_25,
    _restricted_volumes_1_0,
    _run_as_non_root_1_0,
    _run_as_user_1_23,
    _seccomp_restricted_1_19,
    _seccomp_restricted_1_25,
)

__all__ = [
    "CHECK_IDS",
    "LATEST_VERSION",
    "LEVELS",
    "Violation",
    "check_pod",
    "enforce_level",
    "enforce_version",
    "pod_templates",
]



_B, _R = "baseline", "restricted"

_CHECKS: tuple[_Check, ...] = (
    # baseline
    _Check("appArmorProfile", _B, (_VersionedCheck((1, 0), _apparmor_1_0),)),
    _Check("capabilities_baseline", _B, (_VersionedCheck((1, 0), _capabilities_baseline_1_0),)),
    _Check("hostNamespaces", _B, (_VersionedCheck((1, 0), _host_namespaces_1_0),)),
    _Check("hostPathVolumes", _B, (_VersionedCheck((1, 0), _host_path_volumes_1_0),)),
    _Check("hostPorts", _B, (_VersionedCheck((1, 0), _host_ports_1_0),)),
    _Check("hostProbesAndHostLifecycle", _B, (_VersionedCheck((1, 34), _host_probes_and_host_lifecycle_1_34),)),
    _Check("privileged", _B, (_VersionedCheck((1, 0), _privileged_1_0),)),
    _Check("procMount", _B, (_VersionedCheck((1, 0), _proc_mount_1_0),)),
    _Check("seLinuxOptions", _B, (
        _VersionedCheck((1, 0), _selinux_options_1_0),
        _VersionedCheck((1, 31), _selinux_options_1_31),
    )),
    _Check("seccompProfile_baseline", _B, (
        _VersionedCheck((1, 0), _seccomp_baseline_1_0),
        _VersionedCheck((1, 19), _seccomp_baseline_1_19),
    )),
    _Check("sysctls", _B, (
        _VersionedCheck((1, 0), _sysctls(_SYSCTLS_1_0)),
        _VersionedCheck((1, 27), _sysctls(_SYSCTLS_1_27)),
        _VersionedCheck((1, 29), _sysctls(_SYSCTLS_1_29)),
        _VersionedCheck((1, 32), _sysctls(_SYSCTLS_1_32)),
    )),
    _Check("windowsHostProcess", _B, (_VersionedCheck((1, 0), _windows_host_process_1_0),)),
    # restricted (each also applies the baseline checks it does not override)
    _Check("allowPrivilegeEscalation", _R, (
        _VersionedCheck((1, 8), _allow_privilege_escalation_1_8),
        _VersionedCheck((1, 25), _allow_privilege_escalation_1_25),
    )),
    _Check("capabilities_restricted", _R, (
        _VersionedCheck((1, 22), _capabilities_restricted_1_22, ("capabilities_baseline",)),
        _VersionedCheck((1, 25), _capabilities_restricted_1_25, ("capabilities_baseline",)),
    )),
    _Check("restrictedVolumes", _R, (_VersionedCheck((1, 0), _restricted_volumes_1_0, ("hostPathVolumes",)),)),
    _Check("runAsNonRoot", _R, (_VersionedCheck((1, 0), _run_as_non_root_1_0),)),
    _Check("runAsUser", _R, (_VersionedCheck((1, 23), _run_as_user_1_23),)),
    _Check("seccompProfile_restricted", _R, (
        _VersionedCheck((1, 19), _seccomp_restricted_1_19, ("seccompProfile_baseline",)),
        _VersionedCheck((1, 25), _seccomp_restricted_1_25, ("seccompProfile_baseline",)),
    )),
)

#: Every check ID, in upstream's evaluation order: baseline IDs sorted, then restricted IDs sorted
#: (policy/registry.go, populate; Go's sort on strings is by code point, as Python's).
CHECK_IDS: tuple[str, ...] = tuple(
    sorted(c.id for c in _CHECKS if c.level == _B) + sorted(c.id for c in _CHECKS if c.level == _R)
)
_ORDER = {check_id: i for i, check_id in enumerate(CHECK_IDS)}

# policy/helpers.go, relaxPolicyForUserNamespacePod: with the apiserver's
# UserNamespacesPodSecurityStandards feature gate (alpha, off by default in v1.34) a pod with
# `hostUsers: false` passes these checks outright (each upstream check returns Allowed first thing).
_RELAXED_FOR_USER_NAMESPACES = frozenset({"procMount", "runAsNonRoot", "runAsUser"})

_MAX_VERSION: _Version = max(c.versions[-1].minimum for c in _CHECKS)
assert f"v{_MAX_VERSION[0]}.{_MAX_VERSION[1]}" == LATEST_VERSION


def _parse_version(version: str) -> _Version:
    """api/helpers.go, ParseVersion ("latest" or "v1.x"), then clamped to the newest policy version
    as policy/registry.go's EvaluatePod does."""
    if version == "latest":
        return _MAX_VERSION
    match = _VERSION_RE.match(version)
    if not match:
        raise ValueError(f'invalid Pod Security version {version!r}: must be "latest" or "v1.x"')
    return min((1, int(match.group(1))), _MAX_VERSION)


def _active(check: _Check, version: _Version) -> _VersionedCheck | None:
    """policy/registry.go, inflateVersions: the implementation of ``check`` in force at ``version``."""
    active = None
    for versioned in check.versions:
        if versioned.minimum <= version:
            active = versioned
    return active


def check_pod(metadata: dict, spec: dict, level: str, version: str = LATEST_VERSION, *,
              relax_user_namespace_pods: bool = False) -> list[Violation]:
    """Evaluate a pod against a Pod Security level at a policy version, as the admission plugin does
    (policy/registry.go, checkRegistry.EvaluatePod).

    ``metadata`` is the pod's (or pod template's) metadata -- only its annotations matter (AppArmor
    beta annotations; seccomp alpha annotations before v1.19); ``spec`` is the PodSpec. ``level``
    is one of ``LEVELS``; "privileged" allows everything. "restricted" applies every baseline check
    too, except those a restricted check replaces at that version (capabilities_baseline ->
    capabilities_restricted from v1.22, seccompProfile_baseline -> seccompProfile_restricted from
    v1.19, hostPathVolumes -> restrictedVolumes). ``version`` is "v1.x" or "latest"; versions newer
    than v1.34 evaluate as v1.34. ``relax_user_namespace_pods`` mirrors the apiserver's
    UserNamespacesPodSecurityStandards feature gate (alpha, off by default in v1.34).

    Returns one ``Violation`` per failed check, in upstream's order (baseline checks by ID, then
    restricted checks by ID); an empty list means the pod is allowed.

    The plugin sees objects after API defaulting. The one default that can change the outcome is
    applied (a volume without a source is an emptyDir, see _restricted_volumes_1_0). Not applied:
    for a bare Pod with ``hostNetwork: true`` the API server defaults ``hostPort`` to the
    ``containerPort``, which only adds a hostPorts violation to a pod that hostNamespaces already
    rejects; and the SkipProbeHostEnforcement switch of clusters emulating versions before v1.34.
    """
    if level not in LEVELS:
        raise ValueError(f"invalid Pod Security level {level!r}: must be one of {', '.join(LEVELS)}")
    parsed = _parse_version(version)
    if level == "privileged":
        return []
    metadata = _obj(metadata) or {}
    spec = _obj(spec) or {}
    active = {c.id: v for c in _CHECKS if (c.level == _B or level == _R) and (v := _active(c, parsed)) is not None}
    overridden = {o for v in active.values() for o in v.overrides}
    user_namespace_pod = relax_user_namespace_pods and spec.get("hostUsers") is False
    violations = []
    for check_id in sorted(active, key=_ORDER.__getitem__):
        if check_id in overridden or (user_namespace_pod and check_id in _RELAXED_FOR_USER_NAMESPACES):
            continue
        result = active[check_id].fn(metadata, spec)
        if result is not None:
            reason = result.reason or "unknown forbidden reason"  # policy/checks.go, UnknownForbiddenReason
            violations.append(Violation(check_id, f"{reason} ({result.detail})" if result.detail else reason))
    return violations


# admission/admission.go, DefaultPodSpecExtractor.ExtractPodSpec: where each kind keeps its pod.
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "ReplicationController": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_templates(obj: dict) -> list[tuple[str, dict, dict]]:
    """The pods a Kubernetes object makes, as ``[(path, metadata, spec)]``.

    ``path`` is the dotted path of the PodSpec inside ``obj`` (``"spec"`` for a Pod,
    ``"spec.template.spec"`` for Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and
    ReplicationController, ``"spec.jobTemplate.spec.template.spec"`` for a CronJob,
    ``"template.spec"`` for a PodTemplate); ``metadata`` and ``spec`` are the pod's (``{}`` when
    absent). The kinds are those of upstream's DefaultPodSpecExtractor (admission/admission.go): the
    plugin enforces on Pods and warns/audits on the others' templates. Any other kind, or a
    controller without a template (a ReplicationController's is optional), gives ``[]``.
    """
    if not isinstance(obj, Mapping):
        return []
    path = _TEMPLATE_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return []
    node: Mapping[str, Any] | None = obj
    for key in path:
        node = _field(node, key)
        if node is None:
            return []
    metadata = dict(_field(node, "metadata") or {})
    spec = dict(_field(node, "spec") or {})
    return [(".".join((*path, "spec")), metadata, spec)]


def enforce_level(namespace_labels: dict) -> str:
    """The namespace's enforced level from its ``pod-security.kubernetes.io/enforce`` label
    (api/helpers.go, PolicyToEvaluate): missing -> "privileged" (the plugin's default when its
    configured defaults are unset); an invalid value -> "restricted" (ParseLevel fails closed)."""
    labels = namespace_labels or {}
    if ENFORCE_LEVEL_LABEL not in labels:
        return "privileged"
    level = labels[ENFORCE_LEVEL_LABEL]
    return level if level in LEVELS else "restricted"


def enforce_version(namespace_labels: dict) -> str:
    """The namespace's enforced policy version from ``pod-security.kubernetes.io/enforce-version``
    (api/helpers.go, ParseVersion): missing, "latest" or invalid -> ``LATEST_VERSION`` ("v1.34");
    "v1.x" as given, clamped to v1.34 (newer versions evaluate as the newest known)."""
    value = (namespace_labels or {}).get(ENFORCE_VERSION_LABEL)
    if not isinstance(value, str) or (value != "latest" and not _VERSION_RE.match(value)):
        return LATEST_VERSION
    major, minor = _parse_version(value)
    return f"v{major}.{minor}"
