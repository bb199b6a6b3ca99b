"""The baseline checks of the Pod Security Standards (kubernetes/pod-security-admission v0.34.9,
policy/check_*.go), each named after its upstream file and version gate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plan.admission.pod_security.core import (
    _CheckFn,
    _container_setters,
    _containers,
    _field,
    _go_quote,
    _int,
    _is_true,
    _join_quote,
    _list,
    _name,
    _obj,
    _pluralize,
    _Pod,
    _Result,
    _str,
)

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
