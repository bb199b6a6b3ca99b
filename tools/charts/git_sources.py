"""The charts' upstream git repositories: local bare mirrors (--sources) or blob-less partial clones in
a cache directory, read with git plumbing (ls-tree, cat-file --batch)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tools.charts.chart_archive import BuildError


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
