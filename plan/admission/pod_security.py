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

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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

#: The Pod Security levels, least to most restrictive (api/constants.go).
LEVELS: tuple[str, str, str] = ("privileged", "baseline", "restricted")

#: The newest policy version this port knows: the newest minimum version of any check
#: (hostProbesAndHostLifecycle, v1.34). "latest" and any newer version evaluate as this one,
#: as upstream's registry does (policy/registry.go, EvaluatePod: `if r.maxVersion.Older(lv.Version)`).
LATEST_VERSION = "v1.34"

# Namespace labels (api/constants.go).
_LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LEVEL_LABEL = _LABEL_PREFIX + "enforce"
ENFORCE_VERSION_LABEL = _LABEL_PREFIX + "enforce-version"

# api/helpers.go, ParseVersion: "latest" or "v1.x".
_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")

_Version = tuple[int, int]
_Pod = Mapping[str, Any]


@dataclass(frozen=True)
class Violation:
    """One failed check: ``check`` is the upstream check ID (e.g. ``"capabilities_restricted"``);
    ``message`` is the forbidden reason followed by its detail in parentheses, as the API server
    prints it (policy/checks.go, AggregateCheckResult.ForbiddenDetail), e.g.
    ``allowPrivilegeEscalation != false (container "x" must set securityContext.allowPrivilegeEscalation=false)``."""

    check: str
    message: str


@dataclass(frozen=True)
class _Result:
    """policy/checks.go, CheckResult: a check's outcome (``None`` from a check function = allowed)."""

    reason: str
    detail: str


_CheckFn = Callable[[_Pod, _Pod], "_Result | None"]


@dataclass(frozen=True)
class _VersionedCheck:
    """policy/checks.go, VersionedCheck: the implementation in force from ``minimum`` on; a
    restricted check may replace (override) baseline checks while it is in force."""

    minimum: _Version
    fn: _CheckFn
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Check:
    """policy/checks.go, Check: an ID, its level and its implementations by minimum version."""

    id: str
    level: str
    versions: tuple[_VersionedCheck, ...]


# ---------------------------------------------------------------------------------------------
# Helpers (policy/helpers.go, policy/visitor.go) and a little of Go's semantics.
# ---------------------------------------------------------------------------------------------


def _obj(value: Any) -> Mapping[str, Any] | None:
    """A Go pointer-to-struct: the mapping, or ``None`` for nil (missing, null or not an object)."""
    return value if isinstance(value, Mapping) else None


def _field(parent: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    """``parent.key`` as a nil-able struct pointer."""
    return _obj(parent.get(key)) if parent is not None else None


def _list(parent: Mapping[str, Any] | None, key: str) -> list[Any]:
    """``parent.key`` as a Go slice (nil = empty)."""
    value = parent.get(key) if parent is not None else None
    return list(value) if isinstance(value, (list, tuple)) else []


def _str(parent: Mapping[str, Any] | None, key: str) -> str:
    """``parent.key`` as a Go string (unset = "")."""
    value = parent.get(key) if parent is not None else None
    return "" if value is None else str(value)


def _is_true(value: Any) -> bool:
    """A Go ``bool``/``*bool`` that is set and true."""
    return value is True


def _int(value: Any) -> int | None:
    """A Go ``*int64``/``int32``: the integer, or ``None`` when unset."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _containers(spec: _Pod) -> Iterator[Mapping[str, Any]]:
    """policy/visitor.go, visitContainers: init containers, then containers, then ephemeral containers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _list(spec, key):
            yield container if isinstance(container, Mapping) else {}


def _name(container: Mapping[str, Any]) -> str:
    return _str(container, "name")


def _join_quote(items: list[str]) -> str:
    """policy/helpers.go, joinQuote: ``"a", "b"`` (plain quotes, no escaping)."""
    if not items:
        return ""
    return '"' + '", "'.join(items) + '"'


def _pluralize(singular: str, plural: str, count: int) -> str:
    """policy/helpers.go, pluralize."""
    return singular if count == 1 else plural


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def _go_quote(value: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote), used for annotation values in messages."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _is_windows(spec: _Pod) -> bool:
    """``podSpec.OS != nil && podSpec.OS.Name == corev1.Windows`` (the 1.25+ Windows exemptions)."""
    return _str(_field(spec, "os"), "name") == "windows"


def _container_setters(setters: list[str], bad_containers: list[str]) -> list[str]:
    """Append ``container "a"`` / ``containers "a", "b"`` to the list of bad setters (a recurring idiom)."""
    if bad_containers:
        setters.append(f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)}")
    return setters


# ---------------------------------------------------------------------------------------------
# Baseline checks.
# ---------------------------------------------------------------------------------------------

# policy/check_appArmorProfile.go (corev1.DeprecatedAppArmorBeta* constants).
_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_appArmorProfile.go, appArmorProfile_1_0: appArmorProfile.type of the pod and
    containers must be RuntimeDefault or Localhost; the deprecated beta annotations must be empty,
    'runtime/default' or 'localhost/*'."""

    def allowed_type(profile: Mapping[str, Any]) -> bool:
        return _str(profile, "type") in ("RuntimeDefault", "Localhost")

    bad_setters: list[str] = []
    bad_values: set[str] = set()
    pod_profile = _field(_field(spec, "securityContext"), "appArmorProfile")
    if pod_profile is not None and not allowed_type(pod_profile):
        bad_setters.append("pod")
        bad_values.add(_str(pod_profile, "type"))
    bad_containers: list[str] = []
    for container in _containers(spec):
        profile = _field(_field(container, "securityContext"), "appArmorProfile")
        if profile is not None and not allowed_type(profile):
            bad_containers.append(_name(container))
            bad_values.add(_str(profile, "type"))
    _container_setters(bad_setters, bad_containers)
    forbidden_annotations: list[str] = []
    for key, raw in (_obj(metadata.get("annotations")) or {}).items():
        value = "" if raw is None else str(raw)
        if str(key).startswith(_APPARMOR_ANNOTATION_PREFIX) and not (
            value == "" or value == "runtime/default" or value.startswith("localhost/")
        ):
            forbidden_annotations.append(f"{key}={_go_quote(value)}")
    bad_value_list = sorted(bad_values)
    if forbidden_annotations:
        bad_value_list.extend(sorted(forbidden_annotations))
        bad_setters.append(_pluralize("annotation", "annotations", len(forbidden_annotations)))
    if bad_setters:
        return _Result(
            _pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_value_list)),
            f"{' and '.join(bad_setters)} must not set AppArmor profile type to {_join_quote(bad_value_list)}",
        )
    return None


# policy/check_capabilities_baseline.go, capabilities_allowed_1_0: the default container runtime set.
_CAPABILITIES_ALLOWED_1_0 = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def _capabilities_baseline_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_capabilities_baseline.go, capabilitiesBaseline_1_0: capabilities.add may only
    hold capabilities of the default set."""
    bad_containers: list[str] = []
    non_default: set[str] = set()
    for container in _containers(spec):
        capabilities = _field(_field(container, "securityContext"), "capabilities")
        if capabilities is None:
            continue
        valid = True
        for cap in _list(capabilities, "add"):
            if str(cap) not in _CAPABILITIES_ALLOWED_1_0:
                valid = False
                non_default.add(str(cap))
        if not valid:
            bad_containers.append(_name(container))
    if bad_containers:
        return _Result(
            "non-default capabilities",
            f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
            f"must not include {_join_quote(sorted(non_default))} in securityContext.capabilities.add",
        )
    return None


def _host_namespaces_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_hostNamespaces.go, hostNamespaces_1_0: hostNetwork, hostPID, hostIPC unset or false."""
    host_namespaces = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if _is_true(spec.get(key))]
    if host_namespaces:
        return _Result("host namespaces", ", ".join(host_namespaces))
    return None


def _host_path_volumes_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_hostPathVolumes.go, hostPathVolumes_1_0: no hostPath volumes."""
    host_volumes = [_str(v, "name") for v in _list(spec, "volumes") if _field(_obj(v), "hostPath") is not None]
    if host_volumes:
        return _Result("hostPath volumes", f"{_pluralize('volume', 'volumes', len(host_volumes))} {_join_quote(host_volumes)}")
    return None


def _host_ports_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_hostPorts.go, hostPorts_1_0: containers' ports[*].hostPort unset or 0."""
    bad_containers: list[str] = []
    forbidden_ports: set[str] = set()
    for container in _containers(spec):
        valid = True
        for port in _list(container, "ports"):
            host_port = _int((_obj(port) or {}).get("hostPort"))
            if host_port:  # HostPort != 0
                valid = False
                forbidden_ports.add(str(host_port))
        if not valid:
            bad_containers.append(_name(container))
    if bad_containers:
        return _Result(
            "hostPort",
            f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
            f"{_pluralize('uses', 'use', len(bad_containers))} {_pluralize('hostPort', 'hostPorts', len(forbidden_ports))} "
            f"{', '.join(sorted(forbidden_ports))}",  # sets.String.List(): sorted as strings, as upstream
        )
    return None


def _forbidden_hosts(handler: Mapping[str, Any] | None) -> list[str]:
    """policy/check_hostProbesAndhostLifecycle.go, getForbiddenHostProbes/getForbiddenHostLifecycle:
    the non-empty httpGet.host and tcpSocket.host of a probe or lifecycle handler."""
    if handler is None:
        return []
    hosts = []
    for action in ("httpGet", "tcpSocket"):
        host = _str(_field(handler, action), "host")
        if host:
            hosts.append(host)
    return hosts


def _host_probes_and_host_lifecycle_1_34(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_hostProbesAndhostLifecycle.go, hostProbesAndHostLifecycleV1Dot34: probes' and
    lifecycle handlers' httpGet.host / tcpSocket.host must be unset or empty (new in v1.34)."""
    bad_containers: set[str] = set()
    forbidden: set[str] = set()
    for container in _containers(spec):
        lifecycle = _field(container, "lifecycle")
        handlers = [_field(container, probe) for probe in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [_field(lifecycle, hook) for hook in ("postStart", "preStop")]
        for handler in handlers:
            hosts = _forbidden_hosts(handler)
            if hosts:
                bad_containers.add(_name(container))
                forbidden.update(hosts)
    if bad_containers:
        return _Result(
            "probe or lifecycle host",
            f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(sorted(bad_containers))} "
            f"{_pluralize('uses', 'use', len(bad_containers))} "
            f"{_pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(forbidden))} {_join_quote(sorted(forbidden))}",
        )
    return None


def _privileged_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_privileged.go, privileged_1_0: securityContext.privileged unset or false."""
    bad = [_name(c) for c in _containers(spec) if _is_true((_field(c, "securityContext") or {}).get("privileged"))]
    if bad:
        return _Result(
            "privileged",
            f"{_pluralize('container', 'containers', len(bad))} {_join_quote(bad)} must not set securityContext.privileged=true",
        )
    return None


def _proc_mount_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_procMount.go, procMount_1_0: securityContext.procMount unset or "Default".
    (Its user-namespace relaxation is applied by check_pod, see _RELAXED_FOR_USER_NAMESPACES.)"""
    bad_containers: list[str] = []
    forbidden_types: set[str] = set()
    for container in _containers(spec):
        security_context = _field(container, "securityContext")
        if security_context is None or security_context.get("procMount") is None:
            continue
        proc_mount = str(security_context["procMount"])
        if proc_mount != "Default":
            bad_containers.append(_name(container))
            forbidden_types.add(proc_mount)
    if bad_containers:
        return _Result(
            "procMount",
            f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
            f"must not set securityContext.procMount to {_join_quote(sorted(forbidden_types))}",
        )
    return None


# policy/check_seLinuxOptions.go: allowed seLinuxOptions.type values; container_engine_t since v1.31.
_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux_options(spec: _Pod, allowed_types: frozenset[str]) -> _Result | None:
    """policy/check_seLinuxOptions.go, seLinuxOptions: seLinuxOptions.type of the pod and containers
    in the allowed set; seLinuxOptions.user and .role unset."""
    bad_types: set[str] = set()
    set_user = set_role = False

    def valid(opts: Mapping[str, Any]) -> bool:
        nonlocal set_user, set_role
        ok = True
        if _str(opts, "type") not in allowed_types:
            ok = False
            bad_types.add(_str(opts, "type"))
        if _str(opts, "user"):
            ok = False
            set_user = True
        if _str(opts, "role"):
            ok = False
            set_role = True
        return ok

    bad_setters: list[str] = []
    pod_opts = _field(_field(spec, "securityContext"), "seLinuxOptions")
    if pod_opts is not None and not valid(pod_opts):
        bad_setters.append("pod")
    bad_containers: list[str] = []
    for container in _containers(spec):
        opts = _field(_field(container, "securityContext"), "seLinuxOptions")
        if opts is not None and not valid(opts):
            bad_containers.append(_name(container))
    _container_setters(bad_setters, bad_containers)
    if bad_setters:
        bad_data: list[str] = []
        if bad_types:
            bad_data.append(f"{_pluralize('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
        if set_user:
            bad_data.append("user may not be set")
        if set_role:
            bad_data.append("role may not be set")
        return _Result(
            "seLinuxOptions",
            f"{' and '.join(bad_setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(bad_data)}",
        )
    return None


def _selinux_options_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_seLinuxOptions.go, seLinuxOptions1_0."""
    return _selinux_options(spec, _SELINUX_TYPES_1_0)


def _selinux_options_1_31(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_seLinuxOptions.go, seLinuxOptions1_31 (adds container_engine_t)."""
    return _selinux_options(spec, _SELINUX_TYPES_1_31)


# policy/check_seccompProfile_baseline.go: the alpha annotations (policy versions before v1.19).
_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _valid_seccomp_type(profile: Mapping[str, Any]) -> bool:
    """policy/check_seccompProfile_baseline.go, validSeccomp: Localhost or RuntimeDefault."""
    return _str(profile, "type") in ("Localhost", "RuntimeDefault")


def _seccomp_baseline_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_seccompProfile_baseline.go, seccompProfileBaseline_1_0: the seccomp alpha
    annotations may only name 'runtime/default', 'docker/default' or 'localhost/*'."""
    annotations = _obj(metadata.get("annotations")) or {}

    def valid(value: str) -> bool:
        return value in ("runtime/default", "docker/default") or value.startswith("localhost/")

    forbidden: set[str] = set()
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION_PREFIX + _name(c) for c in _containers(spec)]
    for key in keys:
        if key in annotations:
            value = "" if annotations[key] is None else str(annotations[key])
            if not valid(value):
                forbidden.add(f"{key}={_go_quote(value)}")
    if forbidden:
        return _Result(
            "seccompProfile",
            f"forbidden {_pluralize('annotation', 'annotations', len(forbidden))} {', '.join(sorted(forbidden))}",
        )
    return None


def _seccomp_baseline_1_19(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_seccompProfile_baseline.go, seccompProfileBaseline_1_19: a seccompProfile.type
    that is set (pod or container) must be RuntimeDefault or Localhost."""
    bad_setters: list[str] = []
    bad_values: set[str] = set()
    pod_profile = _field(_field(spec, "securityContext"), "seccompProfile")
    if pod_profile is not None and not _valid_seccomp_type(pod_profile):
        bad_setters.append("pod")
        bad_values.add(_str(pod_profile, "type"))
    bad_containers: list[str] = []
    for container in _containers(spec):
        profile = _field(_field(container, "securityContext"), "seccompProfile")
        if profile is not None and not _valid_seccomp_type(profile):
            bad_containers.append(_name(container))
            bad_values.add(_str(profile, "type"))
    _container_setters(bad_setters, bad_containers)
    if bad_setters:
        return _Result(
            "seccompProfile",
            f"{' and '.join(bad_setters)} must not set securityContext.seccompProfile.type to {_join_quote(sorted(bad_values))}",
        )
    return None


# policy/check_sysctls.go: the "safe" sysctls; the list grows in v1.27, v1.29 and v1.32.
_SYSCTLS_1_0 = frozenset({
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> _CheckFn:
    """policy/check_sysctls.go, sysctls: spec.securityContext.sysctls[*].name in the allowed set
    (forbidden names listed in their order, as upstream)."""

    def check(metadata: _Pod, spec: _Pod) -> _Result | None:
        names = [_str(_obj(s), "name") for s in _list(_field(spec, "securityContext"), "sysctls")]
        forbidden = [name for name in names if name not in allowed]
        if forbidden:
            return _Result("forbidden sysctls", ", ".join(forbidden))
        return None

    return check


def _windows_host_process_1_0(metadata: _Pod, spec: _Pod) -> _Result | None:
    """policy/check_windowsHostProcess.go, windowsHostProcess_1_0: windowsOptions.hostProcess of the
    pod and containers unset or false."""

    def host_process(security_context: Mapping[str, Any] | None) -> bool:
        return _is_true((_field(security_context, "windowsOptions") or {}).get("hostProcess"))

    bad_containers = [_name(c) for c in _containers(spec) if host_process(_field(c, "securityContext"))]
    setters = ["pod"] if host_process(_field(spec, "securityContext")) else []
    _container_setters(setters, bad_containers)
    if setters:
        return _Result("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")
    return None


# ---------------------------------------------------------------------------------------------
# Restricted checks.
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# The registry (policy/registry.go) with each check's version gates (the Check() constructors).
# ---------------------------------------------------------------------------------------------

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
