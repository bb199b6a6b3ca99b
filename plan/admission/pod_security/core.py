"""The shared vocabulary of the Pod Security checks: levels, versions, results, and the small
accessors and message formatters of kubernetes/pod-security-admission's policy/helpers.go."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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
