#!/usr/bin/env python3
"""Vendor the pinned Helm charts as reproducible archives, built from their upstream git sources.

    python tools/charts/build.py [--sources MIRROR_DIR] [--check] [CHART ...]

For every chart key of platform/charts.yaml (or the keys given) it follows platform/charts/sources.yaml:
reads the chart directory at the pinned commit (from MIRROR_DIR/<owner>+<name>/repo when given, else
from a `git clone --bare --filter=blob:none` of the https URL into a cache dir), applies the fixups the
upstream release build does, honours the chart's .helmignore the way `helm package` does, adds the
subcharts (each assembled the same way, recursively) under charts/<name>/, checks that every dependency
of every Chart.yaml is satisfied, and writes platform/charts/<key>-<version>.tgz: sorted entries under
the chart name, mtime = the chart commit's time, uid/gid 0, no user/group names, modes 0644/0755,
gzip header mtime 0 -- so a rebuild gives the same sha256. platform/charts/lock.yaml records what was
built. --check rebuilds into a temporary directory and exits 1 if an archive's sha256 differs from the
lock (one line per chart). Standard library + PyYAML only.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import posixpath
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS_YAML = ROOT / "platform" / "charts.yaml"
SOURCES_YAML = ROOT / "platform" / "charts" / "sources.yaml"
OUT_DIR = ROOT / "platform" / "charts"
LOCK_YAML = OUT_DIR / "lock.yaml"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentic-platform" / "chart-sources"
UTF8_BOM = b"\xef\xbb\xbf"
PLACEHOLDER_ANNOTATION = "agentic-platform/placeholder"


class BuildError(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# Semantic versions and Helm (Masterminds semver v3) constraints
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# .helmignore (Helm's pkg/ignore semantics: Go filepath.Match, basename rules, odd negation)
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Git sources
# --------------------------------------------------------------------------------------------------

def repo_slug(url: str) -> str:
    m = re.match(r"^https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    if not m:
        raise BuildError(f"repository must be an https://github.com/<owner>/<name> URL: {url!r}")
    return f"{m.group(1)}+{m.group(2)}"


def _git(git_dir: Path, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
    p = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=input, capture_output=True)
    if check and p.returncode:
        raise BuildError(f"git {' '.join(args)} ({git_dir}): {p.stderr.decode(errors='replace').strip()}")
    return p.stdout


class Repo:
    def __init__(self, url: str, git_dir: Path, partial: bool):
        self.url, self.git_dir, self.partial = url, git_dir, partial
        self._trees: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self._blobs: dict[str, bytes] = {}

    def has_commit(self, commit: str) -> bool:
        p = subprocess.run(["git", f"--git-dir={self.git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, env={**os.environ, "GIT_NO_LAZY_FETCH": "1"})
        return p.returncode == 0

    def ensure_commit(self, commit: str) -> None:
        if self.has_commit(commit):
            return
        if self.partial:
            _git(self.git_dir, "fetch", "--quiet", "--filter=blob:none", "origin", commit, check=False)
        if not self.has_commit(commit):
            raise BuildError(f"commit {commit} is not in {self.url} ({self.git_dir})")

    def tag_commit(self, tag: str) -> str | None:
        out = _git(self.git_dir, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}", check=False)
        return out.decode().strip() or None

    def commit_time(self, commit: str) -> int:
        return int(_git(self.git_dir, "show", "-s", "--format=%ct", commit).decode().strip())

    def tree(self, commit: str, path: str) -> dict[str, tuple[str, str]]:
        """{path relative to `path`: (mode, blob sha)} of every entry below `path` at `commit`."""
        key = (commit, path)
        if key not in self._trees:
            out = _git(self.git_dir, "ls-tree", "-r", "-z", "--full-tree", commit, "--", path.rstrip("/") + "/")
            entries = {}
            prefix = path.rstrip("/") + "/"
            for rec in out.split(b"\0"):
                if not rec:
                    continue
                meta, name = rec.split(b"\t", 1)
                mode, typ, sha = meta.decode().split()
                name = name.decode()
                if typ == "commit":
                    raise BuildError(f"{self.url}@{commit}: {name} is a submodule; not supported")
                entries[name[len(prefix):]] = (mode, sha)
            self._trees[key] = entries
        return self._trees[key]

    def entry(self, commit: str, path: str) -> tuple[str, str, str] | None:
        out = _git(self.git_dir, "ls-tree", "-z", "--full-tree", commit, "--", path)
        if not out:
            return None
        meta, _ = out.rstrip(b"\0").split(b"\t", 1)
        mode, typ, sha = meta.decode().split()
        return mode, typ, sha

    def blobs(self, shas) -> dict[str, bytes]:
        shas = list(shas)
        need = sorted({s for s in shas if s not in self._blobs})
        if need:
            if self.partial:  # fetch the missing blobs in one go instead of one lazy fetch per object
                subprocess.run(["git", f"--git-dir={self.git_dir}", "fetch", "--quiet", "--no-tags",
                                "--no-write-fetch-head", "--filter=blob:none", "--stdin", "origin"],
                               input="\n".join(need).encode(), capture_output=True)
            out = _git(self.git_dir, "cat-file", "--batch", input="\n".join(need).encode() + b"\n")
            pos = 0
            for sha in need:
                nl = out.index(b"\n", pos)
                header = out[pos:nl].decode().split()
                if len(header) < 3 or header[1] != "blob":
                    raise BuildError(f"{self.url}: cannot read blob {sha}: {' '.join(header)}")
                size = int(header[2])
                self._blobs[sha] = out[nl + 1:nl + 1 + size]
                pos = nl + 1 + size + 1
        return {s: self._blobs[s] for s in shas}


class Sources:
    """Git repositories by URL: local mirrors (--sources) or partial clones in a cache dir."""

    def __init__(self, mirror_dir: Path | None, cache_dir: Path):
        self.mirror_dir, self.cache_dir = mirror_dir, cache_dir
        self._repos: dict[str, Repo] = {}

    def get(self, url: str) -> Repo:
        if url in self._repos:
            return self._repos[url]
        slug = repo_slug(url)
        if self.mirror_dir is not None:
            git_dir = self.mirror_dir / slug / "repo"
            if not git_dir.exists():
                raise BuildError(f"no mirror of {url} at {git_dir}")
            repo = Repo(url, git_dir, partial=False)
        else:
            git_dir = self.cache_dir / f"{slug}.git"
            if not git_dir.exists():
                git_dir.parent.mkdir(parents=True, exist_ok=True)
                print(f"  cloning {url} (blob:none) into {git_dir}", file=sys.stderr)
                p = subprocess.run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", url, str(git_dir)])
                if p.returncode:
                    raise BuildError(f"git clone {url} failed")
            repo = Repo(url, git_dir, partial=True)
        self._repos[url] = repo
        return repo


# --------------------------------------------------------------------------------------------------
# Assembling a chart
# --------------------------------------------------------------------------------------------------

@dataclass
class Chart:
    name: str
    version: str
    files: dict[str, tuple[bytes, int]]           # chart-relative path -> (data, mode)
    lock: dict                                     # what the lock records about it
    mtime: int = 0


def _load_yaml(data: bytes, what: str):
    try:
        return yaml.safe_load(data.decode("utf-8")) if data else None
    except yaml.YAMLError as e:
        raise BuildError(f"{what}: {e}") from None


def chart_metadata(files: dict[str, tuple[bytes, int]], what: str) -> tuple[dict, list[dict]]:
    if "Chart.yaml" not in files:
        raise BuildError(f"{what}: no Chart.yaml")
    meta = _load_yaml(files["Chart.yaml"][0], f"{what}/Chart.yaml") or {}
    deps = meta.get("dependencies") or []
    if not deps and "requirements.yaml" in files:  # apiVersion v1 charts
        deps = (_load_yaml(files["requirements.yaml"][0], f"{what}/requirements.yaml") or {}).get("dependencies") or []
    return meta, deps


def locked_versions(files: dict[str, tuple[bytes, int]], what: str) -> dict[str, str]:
    """{dependency name: version} of the chart's Chart.lock (requirements.lock for apiVersion v1): what
    `helm dependency build` puts into charts/."""
    for name in ("Chart.lock", "requirements.lock"):
        if name in files:
            doc = _load_yaml(files[name][0], f"{what}/{name}") or {}
            return {d["name"]: str(d["version"]) for d in doc.get("dependencies") or []}
    return {}


def set_chart_fields(text: str, fields: dict) -> str:
    """What `helm package --version X --app-version Y` changes, as a minimal line edit of Chart.yaml: a
    top-level field is rewritten in place, or added after `version:` when the file lacks it."""
    lines = text.splitlines(keepends=True)
    for key, value in fields.items():
        new = f'{key}: "{value}"'
        idx = next((i for i, ln in enumerate(lines) if re.match(rf"^{re.escape(key)}\s*:", ln)), None)
        if idx is not None:
            lines[idx] = new + "\n"
            continue
        vidx = next((i for i, ln in enumerate(lines) if re.match(r"^version\s*:", ln)), None)
        if vidx is None:
            raise BuildError("Chart.yaml has no top-level version")
        lines.insert(vidx + 1, new + "\n")
    out = "".join(lines)
    meta = yaml.safe_load(out)
    for key, value in fields.items():
        if str(meta.get(key)) != str(value):
            raise BuildError(f"set-chart-fields: {key} reads {meta.get(key)!r}, not {value!r}")
    return out


def envsubst(text: str, variables: dict) -> str:
    def repl(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise BuildError(f"envsubst: ${name} has no value in the recipe")
        return str(variables[name])
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, text)


def placeholder_chart(spec: dict) -> Chart:
    name, version, reason = spec["name"], str(spec["version"]), " ".join(str(spec["placeholder"]).split())
    chart_yaml = yaml.safe_dump({
        "apiVersion": "v2", "name": name, "version": version, "type": "application",
        "description": f"PLACEHOLDER for {name} {version}, whose upstream chart could not be obtained. "
                       "It renders nothing and fails when enabled.",
        "annotations": {PLACEHOLDER_ANNOTATION: reason},
    }, sort_keys=False, width=1000)
    fail = (f"{{{{- fail \"{name} {version} is a placeholder in this vendored archive (upstream chart not "
            f"obtainable, see docs/charts.md); it cannot be enabled\" }}}}\n")
    files = {"Chart.yaml": (chart_yaml.encode(), 0o644), "templates/placeholder.yaml": (fail.encode(), 0o644)}
    return Chart(name, version, files, {"name": name, "version": version, "placeholder": reason})


def assemble(spec: dict, sources: Sources, where: str) -> Chart:
    """The chart `spec` describes, with its subcharts inside, as `helm package` would ship it."""
    name, version = spec["name"], str(spec["version"])
    if "placeholder" in spec:
        return placeholder_chart(spec)
    for k in ("repository", "commit", "path"):
        if not spec.get(k):
            raise BuildError(f"{where}: no {k}")
    url, commit, path = spec["repository"], spec["commit"], spec["path"].strip("/")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise BuildError(f"{where}: commit must be 40 hex digits")
    repo = sources.get(url)
    repo.ensure_commit(commit)
    if spec.get("tag"):
        tagged = repo.tag_commit(spec["tag"])
        if tagged != commit:
            raise BuildError(f"{where}: tag {spec['tag']} of {url} is {tagged}, not {commit}")
    tree = repo.tree(commit, path)
    if not tree:
        raise BuildError(f"{where}: {path} is empty or missing at {commit}")
    applied: list[str] = []

    # Symlinks: Helm follows them when it packages; the recipe must say they are to be resolved.
    links = {p: sha for p, (mode, sha) in tree.items() if mode == "120000"}
    entries = {p: (mode, sha) for p, (mode, sha) in tree.items() if mode != "120000"}
    fixups = spec.get("fixups") or []
    if links:
        if "resolve-symlinks" not in fixups:
            raise BuildError(f"{where}: {path} has symlinks {sorted(links)}; add the resolve-symlinks fixup")
        targets = repo.blobs(links.values())
        for p, sha in sorted(links.items()):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(f"{path}/{p}"), targets[sha].decode()))
            ent = repo.entry(commit, target)
            if ent is None:
                raise BuildError(f"{where}: symlink {p} -> {target} dangles at {commit}")
            if ent[1] == "tree":
                for sub, (m, s) in repo.tree(commit, target).items():
                    if m == "120000":
                        raise BuildError(f"{where}: nested symlink {target}/{sub}")
                    entries[f"{p}/{sub}"] = (m, s)
            else:
                if ent[0] == "120000":
                    raise BuildError(f"{where}: symlink {p} -> {target} is itself a symlink")
                entries[p] = (ent[0], ent[2])
            applied.append(f"resolve-symlinks: {p} -> {target}")
    blobs = repo.blobs(sha for _, sha in entries.values())
    files = {p: (blobs[sha], 0o755 if mode == "100755" else 0o644) for p, (mode, sha) in entries.items()}

    for fx in fixups:
        if fx == "resolve-symlinks":
            continue
        if not isinstance(fx, dict) or len(fx) != 1:
            raise BuildError(f"{where}: unknown fixup {fx!r}")
        (kind, arg), = fx.items()
        if kind == "envsubst":
            tpl, out, variables = arg["template"], arg["output"], arg.get("vars") or {}
            if tpl not in files:
                raise BuildError(f"{where}: envsubst template {tpl} missing")
            files[out] = (envsubst(files[tpl][0].decode(), variables).encode(), 0o644)
            applied.append("envsubst: " + " ".join(f"{k}={v}" for k, v in variables.items()) + f" < {tpl} > {out}")
        elif kind == "set-chart-fields":
            files["Chart.yaml"] = (set_chart_fields(files["Chart.yaml"][0].decode(), arg).encode(),
                                   files["Chart.yaml"][1])
            applied.append("set-chart-fields: " + ", ".join(f"{k}={v}" for k, v in arg.items()))
        elif kind == "copy":
            ent = repo.entry(commit, arg["from"])
            if ent is None or ent[1] != "blob" or ent[0] == "120000":
                raise BuildError(f"{where}: copy: {arg['from']} is not a file at {commit}")
            data = repo.blobs([ent[2]])[ent[2]]
            before = files.get(arg["to"], (None,))[0]
            files[arg["to"]] = (data, 0o755 if ent[0] == "100755" else 0o644)
            applied.append(f"copy: {arg['from']} -> {arg['to']}" + (" (identical to the committed file)" if before == data else ""))
        else:
            raise BuildError(f"{where}: unknown fixup {kind!r}")

    # .helmignore, like helm package's directory walk (also over in-tree charts/).
    ignore = HelmIgnore(files[".helmignore"][0].decode() if ".helmignore" in files else None)
    kept = ignore.filter(files)
    files = {p: (d[len(UTF8_BOM):] if d.startswith(UTF8_BOM) else d, m) for p, (d, m) in files.items() if p in kept}

    meta, deps = chart_metadata(files, where)
    if meta.get("name") != name or str(meta.get("version")) != version:
        raise BuildError(f"{where}: Chart.yaml at {commit} is {meta.get('name')} {meta.get('version')}, "
                         f"the recipe says {name} {version}")

    chart = Chart(name, version, files, {}, mtime=repo.commit_time(commit))
    source = {"repository": url, "tag": spec.get("tag"), "commit": commit, "path": path}
    if spec.get("ref"):
        source["ref"] = spec["ref"]
    chart.lock = {"name": name, "version": version, "source": source, "fixups": applied}

    # Subcharts: in-tree ones (directories or archives under charts/) and the recipe's.
    present: dict[str, dict] = {}
    for sub, rel, blob in in_tree_subcharts(files, where):
        sub.update({"repository": url, "commit": commit, "path": f"{path}/{rel}"})
        if blob is not None:
            sub["archive_sha256"] = hashlib.sha256(blob).hexdigest()
        present.setdefault(sub["name"], sub)
    for i, sspec in enumerate(spec.get("subcharts") or []):
        sub = assemble(sspec, sources, f"{where} > {sspec.get('name', i)}")
        if sub.name in present:
            raise BuildError(f"{where}: subchart {sub.name} is already in the upstream tree")
        # What `helm dependency build` leaves in charts/: the subchart's own archive.
        tgz_name = f"charts/{sub.name}-{sub.version}.tgz"
        if ignore.ignored(tgz_name, False) or ignore.ignored("charts", True):
            raise BuildError(f"{where}: the chart's .helmignore would drop {tgz_name}")
        blob = archive_bytes(sub)
        files[tgz_name] = (blob, 0o644)
        entry = dict(sub.lock)
        entry["vendored"] = "placeholder" if "placeholder" in entry else "packaged from source"
        entry["archive"] = tgz_name
        entry["archive_sha256"] = hashlib.sha256(blob).hexdigest()
        present[sub.name] = entry
    chart.lock["subcharts"] = resolve_dependencies(deps, present, files, where)
    return chart


def _values_of(files: dict[str, tuple[bytes, int]], where: str) -> dict:
    if "values.yaml" not in files:
        return {}
    try:
        return yaml.load(files["values.yaml"][0].decode("utf-8"), Loader=_ValuesLoader) or {}
    except yaml.YAMLError as e:
        print(f"  warning: {where}/values.yaml does not parse ({e}); conditions not evaluated", file=sys.stderr)
        return {}


class _ValuesLoader(yaml.SafeLoader):
    pass


_ValuesLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _lookup(values: dict, dotted: str):
    cur = values
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def enabled_by_default(dep: dict, values: dict):
    """Helm's condition/tags rule against the parent's default values: the first condition path that
    resolves to a bool decides; else tags (any true enables); else enabled."""
    for cond in str(dep.get("condition") or "").split(","):
        cond = cond.strip()
        if cond:
            v = _lookup(values, cond)
            if isinstance(v, bool):
                return v
    tags = dep.get("tags") or []
    tag_values = [values.get("tags", {}).get(t) for t in tags if isinstance(values.get("tags"), dict)]
    tag_values = [t for t in tag_values if isinstance(t, bool)]
    if tag_values:
        return any(tag_values)
    return True


def resolve_dependencies(deps: list[dict], present: dict[str, dict], files, where: str) -> list[dict]:
    locked = locked_versions(files, where)
    out = []
    used = set()
    for dep in deps:
        dname = dep.get("name")
        sub = present.get(dname)
        if sub is None:
            raise BuildError(f"{where}: dependency {dname} {dep.get('version')} is neither in the upstream "
                             "tree nor in the recipe's subcharts")
        if not satisfies(sub["version"], dep.get("version")):
            raise BuildError(f"{where}: dependency {dname} wants {dep.get('version')!r}, the archive has {sub['version']}")
        if dname in locked and parse_version(locked[dname]) != parse_version(sub["version"]):
            raise BuildError(f"{where}: dependency {dname} is locked at {locked[dname]} (Chart.lock), "
                             f"the archive has {sub['version']}")
        constraint = dep.get("version")
        entry = {"name": dname, "version": sub["version"], "constraint": None if constraint is None else str(constraint)}
        if dep.get("alias"):
            entry["alias"] = dep["alias"]
        if dep.get("condition"):
            entry["condition"] = dep["condition"]
        entry["enabled_by_default"] = None  # set by mark_enabled() once the whole tree is assembled
        for k, v in sub.items():
            if k == "source":
                entry.update(v)
            elif k not in ("name", "version"):
                entry[k] = v
        if "subcharts" in entry:
            entry["subcharts"] = entry.pop("subcharts")
        out.append(entry)
        used.add(dname)
    for n, sub in present.items():
        if n not in used:
            raise BuildError(f"{where}: subchart {n} {sub['version']} is not a dependency of the Chart.yaml")
    return out


def _coalesce(defaults, override):
    """Helm's coalescing of a chart's default values with the values its parent passes down."""
    if not isinstance(override, dict) or not isinstance(defaults, dict):
        return defaults if override is None else override
    out = dict(defaults)
    for k, v in override.items():
        out[k] = _coalesce(defaults.get(k), v)
    return out


def _subchart_files(files: dict[str, tuple[bytes, int]], name: str, where: str):
    for p in sorted(files):
        rest = p[len("charts/"):] if p.startswith("charts/") else None
        if rest is None:
            continue
        if "/" not in rest and rest.endswith(".tgz"):
            _, sub = read_archive(files[p][0], f"{where}/{p}")
        elif rest.count("/") == 1 and rest.endswith("/Chart.yaml"):
            top = rest.split("/", 1)[0]
            sub = {q[len(f"charts/{top}/"):]: v for q, v in files.items() if q.startswith(f"charts/{top}/")}
        else:
            continue
        if (_load_yaml(sub["Chart.yaml"][0], f"{where}/{p}") or {}).get("name") == name:
            return sub
    return None


def mark_enabled(files: dict[str, tuple[bytes, int]], subcharts: list[dict], passed: dict | None,
                 enabled: bool, where: str) -> None:
    """Fill in `enabled_by_default` of every subchart record: whether Helm renders it when the top chart
    is installed with its default values (its own condition/tags and every ancestor's)."""
    values = _coalesce(_values_of(files, where), passed or {})
    _, deps = chart_metadata(files, where)
    by_name = {d.get("name"): d for d in deps}
    for entry in subcharts:
        dep = by_name[entry["name"]]
        on = bool(enabled and enabled_by_default(dep, values))
        entry["enabled_by_default"] = on
        sub = _subchart_files(files, entry["name"], where)
        if sub is None:
            raise BuildError(f"{where}: subchart {entry['name']} not found in the assembled chart")
        scope = values.get(dep.get("alias") or dep["name"])
        mark_enabled(sub, entry.get("subcharts") or [], scope if isinstance(scope, dict) else {}, on,
                     f"{where}/charts/{entry['name']}")


def in_tree_subcharts(files: dict[str, tuple[bytes, int]], where: str) -> list[tuple[dict, str, bytes | None]]:
    """The subcharts a chart tree already carries under charts/ (archives or directories, skipping
    `_`/`.` entries as Helm does): (lock record marked `vendored`, path in the chart, archive bytes
    or None for a directory)."""
    out = []
    for p in sorted(files):
        if not p.startswith("charts/"):
            continue
        rest = p[len("charts/"):]
        top = rest.split("/", 1)[0]
        if top.startswith(("_", ".")):
            continue
        if "/" not in rest and rest.endswith(".tgz"):
            sub = analyse_archive(files[p][0], f"{where}/{p}")
            sub["vendored"] = "in-tree archive"
            out.append((sub, p, files[p][0]))
        elif rest == f"{top}/Chart.yaml":
            subfiles = {q[len(f"charts/{top}/"):]: v for q, v in files.items() if q.startswith(f"charts/{top}/")}
            sub = analyse_files(subfiles, f"{where}/charts/{top}")
            sub["vendored"] = "in-tree directory"
            out.append((sub, f"charts/{top}", None))
    return out


def analyse_files(files: dict[str, tuple[bytes, int]], where: str) -> dict:
    """Lock record of a chart that is already assembled (in-tree directory or archive)."""
    meta, deps = chart_metadata(files, where)
    present: dict[str, dict] = {}
    for sub, _rel, _blob in in_tree_subcharts(files, where):
        present.setdefault(sub["name"], sub)
    rec = {"name": meta.get("name"), "version": str(meta.get("version"))}
    rec["subcharts"] = resolve_dependencies(deps, present, files, where)
    return rec


def read_archive(data: bytes, where: str) -> tuple[str, dict[str, tuple[bytes, int]]]:
    files, top = {}, None
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            head, _, rest = m.name.lstrip("./").partition("/")
            top = top or head
            if head != top:
                raise BuildError(f"{where}: more than one top-level directory")
            files[rest] = (tf.extractfile(m).read(), m.mode & 0o777)
    return top, files


def analyse_archive(data: bytes, where: str) -> dict:
    _, files = read_archive(data, where)
    return analyse_files(files, where)


# --------------------------------------------------------------------------------------------------
# Reproducible archive
# --------------------------------------------------------------------------------------------------

def archive_bytes(chart: Chart) -> bytes:
    """The chart as a reproducible .tgz: sorted regular-file entries under <name>/, mtime = the chart
    commit's time, uid/gid 0, no user/group names, modes 0644/0755, gzip header without name or mtime."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(chart.files):
            data, mode = chart.files[p]
            ti = tarfile.TarInfo(f"{chart.name}/{p}")
            ti.size, ti.mode, ti.mtime = len(data), 0o755 if mode & 0o111 else 0o644, chart.mtime
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.type = tarfile.REGTYPE
            tf.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_archive(chart: Chart, dest: Path) -> str:
    blob = archive_bytes(chart)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(dest)
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

def load_inputs():
    pins = yaml.safe_load(CHARTS_YAML.read_text())
    recipe = yaml.safe_load(SOURCES_YAML.read_text())
    return pins, recipe.get("charts") or {}


def load_lock() -> dict:
    if LOCK_YAML.exists():
        return (yaml.safe_load(LOCK_YAML.read_text()) or {}).get("charts") or {}
    return {}


LOCK_HEADER = """\
# Generated by tools/charts/build.py from platform/charts/sources.yaml -- do not edit; run `make charts`.
# One entry per chart key of platform/charts.yaml: the archive vendored under platform/charts/, its
# sha256, the install source it replaces (upstream), the git source it was built from, the fixups
# applied, and every subchart inside it (recursively) with its own source, the Chart.yaml condition
# and whether that condition is true with the chart's default values.
"""


def write_lock(entries: dict, order: list[str]) -> None:
    ordered = {k: entries[k] for k in order if k in entries}
    text = LOCK_HEADER + yaml.safe_dump({"charts": ordered}, sort_keys=False, width=110, allow_unicode=True)
    LOCK_YAML.write_text(text)


def build_one(key: str, pin: dict, spec: dict, sources: Sources, out_dir: Path) -> dict:
    if str(spec.get("version")) != str(pin.get("version")) or spec.get("name") is None:
        raise BuildError(f"{key}: sources.yaml says {spec.get('name')} {spec.get('version')}, "
                         f"platform/charts.yaml pins {pin.get('version')}")
    chart = assemble(spec, sources, key)
    mark_enabled(chart.files, chart.lock["subcharts"], None, True, key)
    archive = f"{key}-{chart.version}.tgz"
    digest = write_archive(chart, out_dir / archive)
    lock = {"name": chart.name, "version": chart.version, "archive": archive, "sha256": digest,
            "size": (out_dir / archive).stat().st_size,
            "upstream": {k: pin[k] for k in ("chart", "repo") if k in pin}}
    lock.update({k: v for k, v in chart.lock.items() if k not in ("name", "version")})
    return lock


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=Path, help="directory of bare git mirrors: <dir>/<owner>+<name>/repo")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"clone cache (default {DEFAULT_CACHE})")
    ap.add_argument("--check", action="store_true", help="rebuild into a temp dir and compare with the lock")
    ap.add_argument("charts", nargs="*", metavar="CHART", help="chart keys of platform/charts.yaml (default all)")
    args = ap.parse_args(argv)

    pins, recipe = load_inputs()
    unknown = [k for k in args.charts if k not in pins]
    if unknown:
        ap.error(f"not keys of platform/charts.yaml: {', '.join(unknown)}")
    keys = args.charts or list(pins)
    sources = Sources(args.sources.resolve() if args.sources else None, args.cache)
    lock = load_lock()
    failed = False

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            for key in keys:
                spec = recipe.get(key)
                if not spec or spec.get("todo") or not spec.get("repository"):
                    print(f"{key}: skipped (no source in sources.yaml{': TODO' if spec and spec.get('todo') else ''})")
                    continue
                try:
                    got = build_one(key, pins[key], spec, sources, Path(tmp))
                except BuildError as e:
                    print(f"{key}: FAILED to build: {e}")
                    failed = True
                    continue
                want = (lock.get(key) or {}).get("sha256")
                on_disk = OUT_DIR / got["archive"]
                disk_sha = hashlib.sha256(on_disk.read_bytes()).hexdigest() if on_disk.exists() else None
                if want != got["sha256"]:
                    print(f"{key}: DIFFERS: rebuilt {got['archive']} sha256 {got['sha256']}, lock {want}")
                    failed = True
                elif disk_sha != want:
                    print(f"{key}: DIFFERS: platform/charts/{got['archive']} sha256 {disk_sha}, lock {want}")
                    failed = True
                else:
                    print(f"{key}: ok {got['archive']} {got['sha256']}")
        return 1 if failed else 0

    for key in keys:
        spec = recipe.get(key)
        if not spec or spec.get("todo") or not spec.get("repository"):
            print(f"{key}: skipped (no source in sources.yaml{': TODO' if spec and spec.get('todo') else ''})")
            lock.pop(key, None)
            continue
        try:
            entry = build_one(key, pins[key], spec, sources, OUT_DIR)
        except BuildError as e:
            print(f"{key}: FAILED: {e}")
            failed = True
            continue
        old = (lock.get(key) or {}).get("archive")
        if old and old != entry["archive"] and (OUT_DIR / old).exists():
            (OUT_DIR / old).unlink()
        lock[key] = entry
        print(f"{key}: {entry['archive']} {entry['size']} bytes sha256 {entry['sha256']}")
    for key in list(lock):  # keys no longer pinned
        if key not in pins:
            old = lock.pop(key).get("archive")
            if old and (OUT_DIR / old).exists():
                (OUT_DIR / old).unlink()
    write_lock(lock, list(pins))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
