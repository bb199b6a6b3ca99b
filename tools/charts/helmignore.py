""".helmignore, with Helm's pkg/ignore semantics (Go filepath.Match, basename rules, odd negation):
which files `helm package` leaves out of a chart."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from tools.charts.chart_archive import BuildError


def _go_match_regex(pattern: str) -> re.Pattern:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise BuildError(f".helmignore: bad pattern {pattern!r}")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            neg = j < n and pattern[j] == "^"
            if neg:
                j += 1
            cls = []
            first = True
            while j < n and (pattern[j] != "]" or first):
                first = False
                ch = pattern[j]
                if ch == "\\":
                    j += 1
                    if j >= n:
                        raise BuildError(f".helmignore: bad pattern {pattern!r}")
                    ch = pattern[j]
                if j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
                    hi = pattern[j + 2]
                    if hi == "\\":
                        j += 1
                        hi = pattern[j + 2]
                    cls.append(f"{re.escape(ch)}-{re.escape(hi)}")
                    j += 3
                    continue
                cls.append(re.escape(ch))
                j += 1
            if j >= n:
                raise BuildError(f".helmignore: bad pattern {pattern!r}")
            out.append("[" + ("^" if neg else "") + "".join(cls) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.S)


@dataclass
class _Rule:
    raw: str
    regex: re.Pattern
    negate: bool
    must_dir: bool
    kind: str  # "root", "path" or "base"

    def match(self, path: str) -> bool:
        if self.kind == "base":
            return bool(self.regex.match(posixpath.basename(path)))
        return bool(self.regex.match(path))


class HelmIgnore:
    """The rules of a chart's .helmignore plus Helm's default `templates/.?*`."""

    def __init__(self, text: str | None):
        self.rules: list[_Rule] = []
        for line in (text or "").splitlines():
            self._add(line)
        self._add("templates/.?*")

    def _add(self, line: str) -> None:
        rule = line.strip()
        if not rule or rule.startswith("#"):
            return
        if "**" in rule:
            raise BuildError(f".helmignore: double-star (**) syntax is not supported: {rule!r}")
        raw, negate, must_dir = rule, False, False
        if rule.startswith("!"):
            negate, rule = True, rule[1:]
        if rule.endswith("/"):
            must_dir, rule = True, rule[:-1]
        if rule.startswith("/"):
            kind, rule = "root", rule[1:]
        elif "/" in rule:
            kind = "path"
        else:
            kind = "base"
        self.rules.append(_Rule(raw, _go_match_regex(rule), negate, must_dir, kind))

    def ignored(self, path: str, is_dir: bool) -> bool:
        if path in ("", ".", "./"):
            return False
        for r in self.rules:
            if r.negate:  # Helm: a negated rule ignores everything it does not match
                if r.must_dir and not is_dir:
                    return True
                if not r.match(path):
                    return True
                continue
            if r.must_dir and not is_dir:
                continue
            if r.match(path):
                return True
        return False

    def filter(self, paths) -> set[str]:
        """The paths `helm package` keeps: like its directory walk, an ignored directory drops its whole
        subtree."""
        kept = set()
        dir_cache: dict[str, bool] = {}
        for p in paths:
            parts = p.split("/")
            skip = False
            for k in range(1, len(parts)):
                d = "/".join(parts[:k])
                if d not in dir_cache:
                    dir_cache[d] = self.ignored(d, True)
                if dir_cache[d]:
                    skip = True
                    break
            if not skip and not self.ignored(p, False):
                kept.add(p)
        return kept
