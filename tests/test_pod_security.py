"""plan.admission.pod_security against the upstream Pod Security admission fixtures (v1.34), and its
levels, versions and containers.

The fixtures are kubernetes/pod-security-admission v0.34.9 test/testdata/{baseline,restricted}/v1.34
(tests/fixtures/pod-security/PROVENANCE.md). A fixture's file name is the lower-cased ID of the check
it exercises plus an index; the expected-message substrings are upstream's ``expectErrorSubstring``
(test/fixtures_*.go; the check ID where a generator sets none), which upstream's test/run.go looks
for in the API server's error. Upstream's own unit-test expectations: tests/test_pod_security_upstream.py.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from plan.admission.pod_security import (
    CHECK_IDS,
    LEVELS,
    Violation,
    check_pod,
)
from tests.pod_security_fixtures import (
    BASELINE_IDS,
    EXPECT_ERROR_SUBSTRING,
    EXPECTED_COUNTS,
    FIXTURE_FILES,
    FIXTURES,
    OVERRIDDEN_AT_RESTRICTED,
    RESTRICTED_IDS,
    checks,
    classify,
    load,
    message,
    rel,
)

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


