"""plan.admission.pod_security against the upstream Pod Security admission fixtures (v1.34) and
upstream's own unit-test expectations.

The fixtures are kubernetes/pod-security-admission v0.34.9 test/testdata/{baseline,restricted}/v1.34
(tests/fixtures/pod-security/PROVENANCE.md). A fixture's file name is the lower-cased ID of the check
it exercises plus an index; the expected-message substrings are upstream's ``expectErrorSubstring``
(test/fixtures_*.go; the check ID where a generator sets none), which upstream's test/run.go looks
for in the API server's error.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from plan.admission.pod_security import (
    CHECK_IDS,
    LATEST_VERSION,
    LEVELS,
    Violation,
    check_pod,
    enforce_level,
    enforce_version,
    pod_templates,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pod-security"
FIXTURE_FILES = sorted(FIXTURES.glob("*/v1.34/*/*.yaml"))
EXPECTED_COUNTS = {
    ("baseline", "pass"): 14,
    ("baseline", "fail"): 34,
    ("restricted", "pass"): 22,
    ("restricted", "fail"): 74,
}

BASELINE_IDS = frozenset({
    "appArmorProfile", "capabilities_baseline", "hostNamespaces", "hostPathVolumes", "hostPorts",
    "hostProbesAndHostLifecycle", "privileged", "procMount", "seLinuxOptions", "seccompProfile_baseline",
    "sysctls", "windowsHostProcess",
})
RESTRICTED_IDS = frozenset({
    "allowPrivilegeEscalation", "capabilities_restricted", "restrictedVolumes", "runAsNonRoot", "runAsUser",
    "seccompProfile_restricted",
})
# policy/check_*_restricted.go, OverrideCheckIDs: at the restricted level these baseline checks are
# replaced by the restricted check.
OVERRIDDEN_AT_RESTRICTED = {
    "capabilities_baseline": "capabilities_restricted",
    "seccompProfile_baseline": "seccompProfile_restricted",
    "hostPathVolumes": "restrictedVolumes",
}
# test/fixtures_*.go, fixtureGenerator.expectErrorSubstring (the check ID when unset).
EXPECT_ERROR_SUBSTRING = {
    "allowPrivilegeEscalation": "allowPrivilegeEscalation",
    "appArmorProfile": "forbidden AppArmor profile",
    "capabilities_baseline": "capabilities",
    "capabilities_restricted": "unrestricted capabilities",
    "hostNamespaces": "host namespaces",
    "hostPathVolumes": "hostPath",
    "hostPorts": "hostPort",
    "hostProbesAndHostLifecycle": "probe or lifecycle host",
    "privileged": "privileged",
    "procMount": "procMount",
    "restrictedVolumes": "restricted volume types",
    "runAsNonRoot": "runAsNonRoot",
    "runAsUser": "runAsUser",
    "seLinuxOptions": "seLinuxOptions",
    "seccompProfile_baseline": "seccompProfile",
    "seccompProfile_restricted": "seccompProfile",
    "sysctls": "forbidden sysctl",
    "windowsHostProcess": "hostProcess",
}
ID_BY_LOWER = {check_id.lower(): check_id for check_id in CHECK_IDS}


def load(path: Path) -> tuple[dict, dict]:
    pod = yaml.safe_load(path.read_text())
    assert pod["kind"] == "Pod", path
    return pod.get("metadata") or {}, pod.get("spec") or {}


def classify(path: Path) -> tuple[str, str, str | None]:
    """(level, "pass"|"fail", the check ID the file name names -- None for base*.yaml)."""
    level, _version, kind, name = path.relative_to(FIXTURES).parts
    stem = re.sub(r"\d+$", "", path.stem)
    return level, kind, ID_BY_LOWER.get(stem)


def rel(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


def checks(violations: list[Violation]) -> list[str]:
    return [v.check for v in violations]


def message(spec: dict, check: str, level: str = "restricted", version: str = LATEST_VERSION, metadata: dict | None = None) -> str:
    """The message of the one violation of ``check``."""
    found = [v.message for v in check_pod(metadata or {}, spec, level, version) if v.check == check]
    assert len(found) == 1, (check, check_pod(metadata or {}, spec, level, version))
    return found[0]


# ---------------------------------------------------------------------------------------------
# The vendored upstream fixtures
# ---------------------------------------------------------------------------------------------


def test_fixture_counts():
    counts: dict[tuple[str, str], int] = {}
    for path in FIXTURE_FILES:
        level, kind, _ = classify(path)
        counts[level, kind] = counts.get((level, kind), 0) + 1
    assert counts == EXPECTED_COUNTS
    assert len(FIXTURE_FILES) == 144
    assert not list(FIXTURES.glob("privileged/**/*.yaml"))
    assert (FIXTURES / "PROVENANCE.md").is_file()


def test_every_fixture_names_a_known_check():
    for path in FIXTURE_FILES:
        level, kind, check = classify(path)
        assert check is not None or path.stem.startswith("base"), rel(path)
        assert kind == "pass" or check is not None, rel(path)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=rel)
def test_fixture(path: Path):
    level, kind, named = classify(path)
    metadata, spec = load(path)
    violations = check_pod(metadata, spec, level)
    if kind == "pass":
        assert violations == []
        return
    assert violations, f"{rel(path)} should fail {level}"
    expected = OVERRIDDEN_AT_RESTRICTED.get(named, named) if level == "restricted" else named
    assert expected in checks(violations), (rel(path), violations)
    failed = next(v for v in violations if v.check == expected)
    assert EXPECT_ERROR_SUBSTRING[named] in failed.message
    assert all(v.check in (BASELINE_IDS if level == "baseline" else BASELINE_IDS | RESTRICTED_IDS) for v in violations)
    assert check_pod(metadata, spec, "privileged") == []


@pytest.mark.parametrize("path", [p for p in FIXTURE_FILES if classify(p)[:2] == ("baseline", "pass")], ids=rel)
def test_baseline_pass_fixture_fails_restricted_only_on_restricted_checks(path: Path):
    """The baseline pass fixtures are built on the minimal baseline pod, which sets none of the
    restricted fields: allowed at baseline, rejected at restricted -- by restricted checks only."""
    metadata, spec = load(path)
    assert check_pod(metadata, spec, "baseline") == []
    assert check_pod(metadata, spec, "privileged") == []
    restricted = checks(check_pod(metadata, spec, "restricted"))
    assert restricted
    assert set(restricted) <= RESTRICTED_IDS
    # None of them sets allowPrivilegeEscalation, capabilities.drop or runAsNonRoot.
    assert {"allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot"} <= set(restricted)


def test_baseline_minimal_pod_at_restricted_reads_like_the_api_server():
    metadata, spec = load(FIXTURES / "baseline/v1.34/pass/base.yaml")
    assert check_pod(metadata, spec, "restricted") == [
        Violation("allowPrivilegeEscalation", 'allowPrivilegeEscalation != false (containers "initcontainer1", "container1" '
                  "must set securityContext.allowPrivilegeEscalation=false)"),
        Violation("capabilities_restricted", 'unrestricted capabilities (containers "initcontainer1", "container1" '
                  'must set securityContext.capabilities.drop=["ALL"])'),
        Violation("runAsNonRoot", 'runAsNonRoot != true (pod or containers "initcontainer1", "container1" '
                  "must set securityContext.runAsNonRoot=true)"),
        Violation("seccompProfile_restricted", 'seccompProfile (pod or containers "initcontainer1", "container1" '
                  'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'),
    ]


@pytest.mark.parametrize("path", [p for p in FIXTURE_FILES if classify(p)[:2] == ("restricted", "pass")], ids=rel)
def test_restricted_pass_fixture_passes_baseline(path: Path):
    metadata, spec = load(path)
    assert check_pod(metadata, spec, "baseline") == []


@pytest.mark.parametrize(
    "path",
    [p for p in FIXTURE_FILES if classify(p)[:2] == ("restricted", "fail") and classify(p)[2] in RESTRICTED_IDS],
    ids=rel,
)
def test_restricted_only_failures_pass_baseline(path: Path):
    """Restricted-fail fixtures for restricted-only checks are baseline-pass, except where the value
    is one the replaced baseline check forbids too (a hostPath volume; seccompProfile Unconfined)."""
    also_baseline_fail = {
        "restricted/v1.34/fail/restrictedvolumes19.yaml": ["hostPathVolumes"],
        "restricted/v1.34/fail/seccompprofile_restricted1.yaml": ["seccompProfile_baseline"],
        "restricted/v1.34/fail/seccompprofile_restricted4.yaml": ["seccompProfile_baseline"],
    }
    metadata, spec = load(path)
    assert checks(check_pod(metadata, spec, "baseline")) == also_baseline_fail.get(rel(path), [])


def test_restricted_fail_of_baseline_check_fails_baseline_too():
    """The baseline checks' fixtures rendered at restricted fail baseline with the named check (the
    restricted minimal pod is valid at baseline)."""
    for path in FIXTURE_FILES:
        level, kind, named = classify(path)
        if level == "restricted" and kind == "fail" and named in BASELINE_IDS:
            metadata, spec = load(path)
            assert named in checks(check_pod(metadata, spec, "baseline")), rel(path)


def test_fixture_messages_verbatim():
    cases = {
        "restricted/v1.34/fail/capabilities_restricted3.yaml": [Violation(
            "capabilities_restricted",
            'unrestricted capabilities (containers "initcontainer1", "container1" must not include "AUDIT_WRITE", "CHOWN", '
            '"DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT" '
            "in securityContext.capabilities.add)")],
        "baseline/v1.34/fail/hostports2.yaml": [Violation(
            "hostPorts", 'hostPort (containers "initcontainer1", "container1" use hostPorts 12345, 12346)')],
        "baseline/v1.34/fail/apparmorprofile0.yaml": [Violation(
            "appArmorProfile", 'forbidden AppArmor profile (annotation must not set AppArmor profile type to '
            '"container.apparmor.security.beta.kubernetes.io/container1="unconfined"")')],
        "restricted/v1.34/fail/hostpathvolumes1.yaml": [Violation(
            "restrictedVolumes", 'restricted volume types (volumes "volume-hostpath-a", "volume-hostpath-b" use '
            'restricted volume type "hostPath")')],
        "restricted/v1.34/fail/privileged0.yaml": [
            Violation("privileged", 'privileged (container "container1" must not set securityContext.privileged=true)'),
            Violation("allowPrivilegeEscalation", 'allowPrivilegeEscalation != false (container "container1" must set '
                      "securityContext.allowPrivilegeEscalation=false)"),
        ],
    }
    for name, expected in cases.items():
        metadata, spec = load(FIXTURES / name)
        assert check_pod(metadata, spec, name.split("/")[0]) == expected, name


def test_user_namespace_relaxation():
    """procMount fixtures set hostUsers: false; with the UserNamespacesPodSecurityStandards gate on
    (off by default in v1.34) they pass, and runAsNonRoot/runAsUser are relaxed the same way."""
    for name in ("procmount0", "procmount1"):
        metadata, spec = load(FIXTURES / f"baseline/v1.34/fail/{name}.yaml")
        assert checks(check_pod(metadata, spec, "baseline")) == ["procMount"]
        assert check_pod(metadata, spec, "baseline", relax_user_namespace_pods=True) == []
    metadata, spec = load(FIXTURES / "restricted/v1.34/fail/runasuser0.yaml")
    assert checks(check_pod(metadata, spec, "restricted", relax_user_namespace_pods=True)) == ["runAsUser"]  # hostUsers unset
    spec = {**spec, "hostUsers": False}
    assert check_pod(metadata, spec, "restricted", relax_user_namespace_pods=True) == []


# ---------------------------------------------------------------------------------------------
# Upstream's unit-test expectations (policy/check_*_test.go), through check_pod
# ---------------------------------------------------------------------------------------------


def test_upstream_capabilities_restricted_multiple_containers():
    spec = {"containers": [
        {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
        {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
        {"name": "c", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}}},
    ]}
    assert message(spec, "capabilities_restricted") == (
        'unrestricted capabilities (containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
        'containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add)'
    )
    windows = {"os": {"name": "windows"}, "containers": [{"name": "a"}]}
    assert "capabilities_restricted" not in checks(check_pod({}, windows, "restricted"))


def test_upstream_host_ports():
    spec = {"containers": [
        {"name": "a", "ports": [{"hostPort": 0}]},
        {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
        {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]},
    ]}
    assert message(spec, "hostPorts", "baseline") == 'hostPort (containers "b", "c" use hostPorts 10, 20, 30)'


def test_upstream_selinux_options():
    spec = {
        "securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
        "containers": [
            {"name": n, "securityContext": {"seLinuxOptions": opts}}
            for n, opts in [
                ("a", {"type": "container_t"}), ("b", {"type": "container_init_t"}), ("c", {"type": "container_kvm_t"}),
                ("d", {"type": "container_engine_t"}), ("e", {"type": "bar"}), ("f", {"user": "bar"}), ("g", {"role": "baz"}),
            ]
        ],
    }
    assert message(spec, "seLinuxOptions", "baseline") == (
        'seLinuxOptions (pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
        'types "bar", "foo"; user may not be set; role may not be set)'
    )
    # container_engine_t is allowed from v1.31 (seLinuxOptions1_31) only.
    engine = {"containers": [{"name": "d", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}]}
    assert check_pod({}, engine, "baseline", "v1.31") == []
    assert message(engine, "seLinuxOptions", "baseline", "v1.30") == (
        'seLinuxOptions (container "d" set forbidden securityContext.seLinuxOptions: type "container_engine_t")'
    )


def test_upstream_restricted_volumes():
    allowed = ["emptyDir", "secret", "persistentVolumeClaim", "downwardAPI", "configMap", "projected", "csi", "ephemeral", "image"]
    restricted = ["hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
                  "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
                  "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos"]
    volumes = [{"name": f"a{i}", source: {}} for i, source in enumerate(allowed, 1)]
    volumes += [{"name": f"b{i}", source: {}} for i, source in enumerate(restricted, 1)]
    # Upstream's unit test also has a source-less volume ("unknown"); through the API server it is
    # defaulted to emptyDir (SetDefaults_Volume), as the pass fixture restrictedvolumes0 shows.
    volumes.append({"name": "c1"})
    assert message({"volumes": volumes}, "restrictedVolumes") == (
        "restricted volume types (volumes "
        + ", ".join(f'"b{i}"' for i in range(1, 22))
        + ' use restricted volume types "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", '
        '"flexVolume", "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath", "iscsi", "nfs", '
        '"photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume")'
    )


def test_upstream_seccomp_restricted():
    spec = {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a"}, {"name": "b", "securityContext": {}},
            {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "d", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            {"name": "e", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        ],
    }
    assert message(spec, "seccompProfile_restricted") == (
        'seccompProfile (containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined")'
    )
    fallthrough = {"containers": [{"name": "a"}, {"name": "b", "securityContext": {}},
                                  {"name": "d", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}]}
    assert message(fallthrough, "seccompProfile_restricted") == (
        'seccompProfile (pod or containers "a", "b" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    )


def test_upstream_seccomp_baseline_annotations_before_1_19():
    metadata = {"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/b": "unknown",
    }}
    spec = {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    assert message(spec, "seccompProfile_baseline", "baseline", "v1.18", metadata) == (
        "seccompProfile (forbidden annotations container.seccomp.security.alpha.kubernetes.io/a=\"unconfined\", "
        'container.seccomp.security.alpha.kubernetes.io/b="unknown", seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    )
    assert check_pod(metadata, spec, "baseline", "v1.19") == []  # from 1.19 the fields, not the annotations


def test_upstream_apparmor_annotations():
    metadata = {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/": "bogus",
        "container.apparmor.security.beta.kubernetes.io/a": "",
        "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/c": "localhost/",
        "container.apparmor.security.beta.kubernetes.io/d": "localhost/foo",
        "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/f": "unknown",
    }}
    assert message({}, "appArmorProfile", "baseline", metadata=metadata) == (
        "forbidden AppArmor profiles (annotations must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/="bogus"", '
        '"container.apparmor.security.beta.kubernetes.io/e="unconfined"", '
        '"container.apparmor.security.beta.kubernetes.io/f="unknown"")'
    )
    spec = {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "foo"}],
            "initContainers": [{"name": "bar", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}
    assert message(spec, "appArmorProfile", "baseline") == (
        'forbidden AppArmor profile (container "bar" must not set AppArmor profile type to "Unconfined")'
    )


def test_upstream_host_probes_and_lifecycle():
    spec = {"containers": [{
        "name": "a",
        "livenessProbe": {"httpGet": {"host": "127.0.0.1", "port": 80}},
        "readinessProbe": {"tcpSocket": {"host": "::1", "port": 80}},
        "startupProbe": {"httpGet": {"host": "localhost", "port": 80}},
        "lifecycle": {"preStop": {"httpGet": {"host": "", "port": 80}}},
    }]}
    assert message(spec, "hostProbesAndHostLifecycle", "baseline") == (
        'probe or lifecycle host (container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost")'
    )


# ---------------------------------------------------------------------------------------------
# Levels, versions, containers
# ---------------------------------------------------------------------------------------------


def test_levels_and_order():
    assert LEVELS == ("privileged", "baseline", "restricted")
    assert set(CHECK_IDS) == BASELINE_IDS | RESTRICTED_IDS
    assert list(CHECK_IDS) == sorted(BASELINE_IDS) + sorted(RESTRICTED_IDS)  # policy/registry.go, populate
    spec = {"hostPID": True, "containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    assert checks(check_pod({}, spec, "restricted")) == [
        "hostNamespaces", "privileged", "allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot",
        "seccompProfile_restricted",
    ]
    assert check_pod({}, spec, "privileged") == []
    with pytest.raises(ValueError, match="level"):
        check_pod({}, spec, "strict")


def test_versions():
    metadata, spec = load(FIXTURES / "baseline/v1.34/fail/hostprobesandhostlifecycle0.yaml")
    assert check_pod(metadata, spec, "baseline", "v1.33") == []  # hostProbesAndHostLifecycle since v1.34
    assert checks(check_pod(metadata, spec, "baseline", "v1.34")) == ["hostProbesAndHostLifecycle"]
    assert check_pod(metadata, spec, "baseline", "latest") == check_pod(metadata, spec, "baseline")
    assert check_pod(metadata, spec, "baseline", "v1.40") == check_pod(metadata, spec, "baseline")  # newer clamps
    for bad in ("1.34", "v2.0", "v1.034", "v1", ""):
        with pytest.raises(ValueError, match="version"):
            check_pod({}, {}, "baseline", bad)


def test_sysctls_grow_by_version():
    def sysctl(name: str) -> dict:
        return {"securityContext": {"sysctls": [{"name": name, "value": "1"}]}, "containers": [{"name": "c"}]}

    for name, since in [("net.ipv4.ip_local_reserved_ports", 27), ("net.ipv4.tcp_keepalive_time", 29),
                        ("net.ipv4.tcp_rmem", 32), ("net.ipv4.tcp_wmem", 32)]:
        assert check_pod({}, sysctl(name), "baseline", f"v1.{since}") == []
        assert check_pod({}, sysctl(name), "baseline", f"v1.{since - 1}") == [Violation("sysctls", f"forbidden sysctls ({name})")]
    assert check_pod({}, sysctl("kernel.shm_rmid_forced"), "baseline", "v1.0") == []


def test_restricted_version_gates():
    metadata, spec = load(FIXTURES / "baseline/v1.34/pass/base.yaml")
    at = {v: checks(check_pod(metadata, spec, "restricted", v)) for v in ("v1.0", "v1.8", "v1.19", "v1.22", "v1.23")}
    assert at["v1.0"] == ["runAsNonRoot"]
    assert at["v1.8"] == ["allowPrivilegeEscalation", "runAsNonRoot"]
    assert at["v1.19"] == ["allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile_restricted"]
    assert at["v1.22"] == ["allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"]
    root = {"securityContext": {"runAsNonRoot": True, "runAsUser": 0}, "containers": [{"name": "c"}]}
    assert "runAsUser" not in checks(check_pod({}, root, "restricted", "v1.22"))
    assert "runAsUser" in checks(check_pod({}, root, "restricted", "v1.23"))
    # Before capabilities_restricted (v1.22) the restricted level applies capabilities_baseline.
    net_raw = {"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}]}
    assert "capabilities_baseline" in checks(check_pod({}, net_raw, "restricted", "v1.21"))
    assert "capabilities_baseline" not in checks(check_pod({}, net_raw, "restricted", "v1.22"))


def test_windows_exemptions_from_1_25():
    metadata, spec = load(FIXTURES / "restricted/v1.34/pass/base_windows.yaml")
    assert check_pod(metadata, spec, "restricted") == []
    assert checks(check_pod(metadata, spec, "restricted", "v1.24")) == [
        "allowPrivilegeEscalation", "capabilities_restricted", "seccompProfile_restricted",
    ]


def test_ephemeral_containers_are_checked():
    metadata, spec = load(FIXTURES / "restricted/v1.34/pass/base.yaml")
    spec = copy.deepcopy(spec)
    spec["ephemeralContainers"] = [{"name": "debugger", "image": "busybox", "securityContext": {"privileged": True}}]
    assert check_pod(metadata, spec, "baseline") == [
        Violation("privileged", 'privileged (container "debugger" must not set securityContext.privileged=true)'),
    ]
    expected = 'container "debugger" must set securityContext.allowPrivilegeEscalation=false'
    assert expected in message(spec, "allowPrivilegeEscalation")


def test_violation_is_frozen():
    violation = Violation("privileged", "privileged")
    with pytest.raises(dataclasses.FrozenInstanceError):
        violation.check = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# A realistic workload: Grafana's chown init container
# ---------------------------------------------------------------------------------------------


def grafana_pod() -> tuple[dict, dict]:
    """Like the Grafana Helm chart with persistence: init-chown-data runs as root to chown the volume."""
    metadata = {"labels": {"app.kubernetes.io/name": "grafana"}, "annotations": {"checksum/config": "abc"}}
    spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 472, "runAsGroup": 472, "fsGroup": 472,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{
            "name": "init-chown-data",
            "image": "docker.io/library/busybox:1.31.1",
            "command": ["chown", "-R", "472:472", "/var/lib/grafana"],
            "securityContext": {"runAsNonRoot": False, "runAsUser": 0,
                                "capabilities": {"add": ["CHOWN", "DAC_OVERRIDE"], "drop": ["ALL"]}},
            "volumeMounts": [{"name": "storage", "mountPath": "/var/lib/grafana"}],
        }],
        "containers": [{
            "name": "grafana",
            "image": "docker.io/grafana/grafana:12.0.0",
            "ports": [{"name": "grafana", "containerPort": 3000}],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            "readinessProbe": {"httpGet": {"path": "/api/health", "port": 3000}},
            "livenessProbe": {"httpGet": {"path": "/api/health", "port": 3000}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/grafana/grafana.ini", "subPath": "grafana.ini"},
                             {"name": "storage", "mountPath": "/var/lib/grafana"}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": "grafana"}},
                    {"name": "storage", "persistentVolumeClaim": {"claimName": "grafana"}}],
    }
    return metadata, spec


def test_grafana_init_container_under_restricted():
    metadata, spec = grafana_pod()
    assert check_pod(metadata, spec, "restricted") == [
        Violation("allowPrivilegeEscalation", 'allowPrivilegeEscalation != false (container "init-chown-data" '
                  "must set securityContext.allowPrivilegeEscalation=false)"),
        Violation("capabilities_restricted", 'unrestricted capabilities (container "init-chown-data" must not include '
                  '"CHOWN", "DAC_OVERRIDE" in securityContext.capabilities.add)'),
        Violation("runAsNonRoot", 'runAsNonRoot != true (container "init-chown-data" '
                  "must not set securityContext.runAsNonRoot=false)"),
        Violation("runAsUser", 'runAsUser=0 (container "init-chown-data" must not set runAsUser=0)'),
    ]
    # CHOWN and DAC_OVERRIDE are in the default set: baseline allows the pod.
    assert check_pod(metadata, spec, "baseline") == []


def test_grafana_fixed_passes_restricted():
    metadata, spec = grafana_pod()
    spec["initContainers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 472, "capabilities": {"drop": ["ALL"]},
    }
    assert check_pod(metadata, spec, "restricted") == []
    # Or drop the init container and let fsGroup own the volume.
    metadata, spec = grafana_pod()
    del spec["initContainers"]
    assert check_pod(metadata, spec, "restricted") == []


# ---------------------------------------------------------------------------------------------
# pod_templates, enforce_level, enforce_version
# ---------------------------------------------------------------------------------------------

POD_META = {"labels": {"app": "x"}, "annotations": {"a": "b"}}
POD_SPEC = {"containers": [{"name": "c", "image": "i"}]}
TEMPLATE = {"metadata": POD_META, "spec": POD_SPEC}


@pytest.mark.parametrize(("kind", "obj", "path"), [
    ("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": POD_META, "spec": POD_SPEC}, "spec"),
    ("Deployment", {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("ReplicaSet", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("StatefulSet", {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("DaemonSet", {"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("Job", {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": TEMPLATE}}, "spec.template.spec"),
    ("ReplicationController", {"apiVersion": "v1", "kind": "ReplicationController", "spec": {"template": TEMPLATE}},
     "spec.template.spec"),
    ("CronJob", {"apiVersion": "batch/v1", "kind": "CronJob",
                 "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}}},
     "spec.jobTemplate.spec.template.spec"),
    ("PodTemplate", {"apiVersion": "v1", "kind": "PodTemplate", "template": TEMPLATE}, "template.spec"),
])
def test_pod_templates(kind: str, obj: dict, path: str):
    assert pod_templates(obj) == [(path, POD_META, POD_SPEC)]


def test_pod_templates_others():
    assert pod_templates({"apiVersion": "v1", "kind": "Service", "spec": {"template": TEMPLATE}}) == []
    assert pod_templates({"apiVersion": "v1", "kind": "ConfigMap", "data": {}}) == []
    assert pod_templates({}) == []
    assert pod_templates({"kind": "ReplicationController", "spec": {"replicas": 1}}) == []  # template is optional
    assert pod_templates({"kind": "CronJob", "spec": {"jobTemplate": {}}}) == []
    assert pod_templates({"kind": "Pod"}) == [("spec", {}, {})]
    assert pod_templates({"kind": "Deployment", "spec": {"template": {"spec": POD_SPEC}}}) == [("spec.template.spec", {}, POD_SPEC)]


def test_pod_templates_feed_check_pod():
    metadata, spec = grafana_pod()
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"metadata": metadata, "spec": spec}}}}}
    [(path, meta, pod_spec)] = pod_templates(cronjob)
    assert path == "spec.jobTemplate.spec.template.spec"
    assert checks(check_pod(meta, pod_spec, "restricted")) == [
        "allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "runAsUser",
    ]


def test_enforce_level():
    assert enforce_level({}) == "privileged"
    assert enforce_level(None) == "privileged"  # type: ignore[arg-type]
    assert enforce_level({"kubernetes.io/metadata.name": "ns"}) == "privileged"
    assert enforce_level({"pod-security.kubernetes.io/warn": "restricted"}) == "privileged"  # warn is not enforce
    for level in LEVELS:
        assert enforce_level({"pod-security.kubernetes.io/enforce": level}) == level
    assert enforce_level({"pod-security.kubernetes.io/enforce": "Restricted"}) == "restricted"  # invalid: fails closed
    assert enforce_level({"pod-security.kubernetes.io/enforce": ""}) == "restricted"


def test_enforce_version():
    assert LATEST_VERSION == "v1.34"
    assert enforce_version({}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce": "baseline"}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "latest"}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "v1.25"}) == "v1.25"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "v1.99"}) == "v1.34"
    assert enforce_version({"pod-security.kubernetes.io/enforce-version": "1.25"}) == "v1.34"  # invalid: latest
    labels = {"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.33"}
    metadata, spec = load(FIXTURES / "baseline/v1.34/fail/hostprobesandhostlifecycle0.yaml")
    assert check_pod(metadata, spec, enforce_level(labels), enforce_version(labels)) == []
    assert check_pod(metadata, spec, enforce_level(labels), enforce_version({})) != []
