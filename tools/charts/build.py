"""Vendor the pinned Helm charts as reproducible archives, built from their upstream git sources.

    python -m tools.charts.build [--sources MIRROR_DIR] [--check] [CHART ...]   (from the repository root)

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
import hashlib
import os
import posixpath
import re
import sys
import tempfile
from pathlib import Path

import yaml

from tools.charts.chart_archive import BuildError, Chart, archive_bytes, chart_metadata, write_archive
from tools.charts.git_sources import Sources
from tools.charts.helmignore import HelmIgnore
from tools.charts.subcharts import in_tree_subcharts, mark_enabled, resolve_dependencies

ROOT = Path(__file__).resolve().parents[2]
CHARTS_YAML = ROOT / "platform" / "charts.yaml"
SOURCES_YAML = ROOT / "platform" / "charts" / "sources.yaml"
OUT_DIR = ROOT / "platform" / "charts"
LOCK_YAML = OUT_DIR / "lock.yaml"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentic-platform" / "chart-sources"
UTF8_BOM = b"\xef\xbb\xbf"
PLACEHOLDER_ANNOTATION = "agentic-platform/placeholder"


# --------------------------------------------------------------------------------------------------
# Assembling a chart
# --------------------------------------------------------------------------------------------------

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
# Generated by `python -m tools.charts.build` from platform/charts/sources.yaml -- do not edit; run `make charts`.
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
