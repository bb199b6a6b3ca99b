"""Semantic versions and Helm's dependency version constraints (Masterminds semver v3, which Helm's
pkg/chartutil and `helm dependency` use): what a vendored subchart's version must satisfy."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def parse_version(text: str) -> tuple:
    m = _VERSION.match(str(text).strip())
    if not m:
        raise ValueError(f"not a semantic version: {text!r}")
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    return int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre


def _cmp(a: tuple, b: tuple) -> int:
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pa, pb = a[3], b[3]
    if pa == pb:
        return 0
    if not pa:
        return 1
    if not pb:
        return -1
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, int):
            return -1
        if isinstance(y, int):
            return 1
        return -1 if x < y else 1
    return -1 if len(pa) < len(pb) else 1


_TERM = re.compile(r"^(>=|=>|<=|=<|!=|>|<|=|~>|~|\^)?\s*v?([0-9xX*]+)(?:\.([0-9xX*]+))?(?:\.([0-9xX*]+))?"
                   r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _term_ok(term: str, v: tuple) -> bool:
    m = _TERM.match(term)
    if not m:
        raise ValueError(f"unsupported version constraint {term!r}")
    op, parts, pre = m.group(1) or "", [m.group(2), m.group(3), m.group(4)], m.group(5)
    wild = [p is None or p in ("x", "X", "*") for p in parts]
    nums = [0 if w else int(p) for p, w in zip(parts, wild, strict=True)]
    base = (nums[0], nums[1], nums[2], parse_version("0.0.0" + pre)[3] if pre else ())
    if v[3] and not (pre and v[:3] == base[:3]):
        return False  # a pre-release only satisfies a constraint that names one on the same x.y.z
    first_wild = wild.index(True) if True in wild else 3
    if op in ("", "=") and first_wild < 3:
        op = "~wild"
    if op in ("", "="):
        return _cmp(v, base) == 0
    if op == "!=":
        return _cmp(v, base) != 0
    if op == ">":
        if first_wild < 3:  # >1.x means >= 2.0.0
            bumped = [nums[0] + 1, 0, 0] if first_wild == 1 else [nums[0], nums[1] + 1, 0]
            return _cmp(v, (*bumped, ())) >= 0
        return _cmp(v, base) > 0
    if op in (">=", "=>"):
        return _cmp(v, base) >= 0
    if op == "<":
        return _cmp(v, base) < 0
    if op in ("<=", "=<"):
        if first_wild < 3:
            upper = [nums[0] + 1, 0, 0] if first_wild == 1 else [nums[0], nums[1] + 1, 0]
            return _cmp(v, (*upper, ())) < 0
        return _cmp(v, base) <= 0
    if op == "~wild":
        if first_wild == 0:
            return True
        upper = (nums[0] + 1, 0, 0, ()) if first_wild == 1 else (nums[0], nums[1] + 1, 0, ())
        return _cmp(v, base) >= 0 and _cmp(v, upper) < 0
    if op in ("~", "~>"):
        upper = (nums[0] + 1, 0, 0, ()) if first_wild == 1 else (nums[0], nums[1] + 1, 0, ())
        return _cmp(v, base) >= 0 and _cmp(v, upper) < 0
    if op == "^":
        if nums[0] > 0 or first_wild == 1:
            upper = (nums[0] + 1, 0, 0, ())
        elif nums[1] > 0 or first_wild == 2:
            upper = (0, nums[1] + 1, 0, ())
        else:
            upper = (0, 0, nums[2] + 1, ())
        return _cmp(v, base) >= 0 and _cmp(v, upper) < 0
    raise ValueError(f"unsupported version constraint {term!r}")


def satisfies(version: str, constraint: str | None) -> bool:
    """Whether `version` satisfies a Helm dependency version constraint (Masterminds semver v3)."""
    if constraint is None or str(constraint).strip() == "":
        return True
    v = parse_version(version)
    for group in str(constraint).split("||"):
        terms = [t for t in re.split(r"\s*,\s*|\s+(?![0-9xX*v])", group.strip()) if t]
        # join an operator separated from its version by spaces (">= 1.2")
        joined: list[str] = []
        for t in terms:
            if joined and re.fullmatch(r"(>=|=>|<=|=<|!=|>|<|=|~>|~|\^)", joined[-1]):
                joined[-1] += t
            else:
                joined.append(t)
        if all(_term_ok(t, v) for t in joined):
            return True
    return False
