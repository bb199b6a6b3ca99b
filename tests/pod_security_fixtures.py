"""What the Pod Security tests share (tests/test_pod_security*.py): the vendored upstream fixtures
(kubernetes/pod-security-admission v0.34.9 test/testdata/{baseline,restricted}/v1.34,
tests/fixtures/pod-security/PROVENANCE.md) and their expectations, and readers of check_pod's verdicts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from plan.admission.pod_security import (
    CHECK_IDS,
    LATEST_VERSION,
    Violation,
    check_pod,
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

