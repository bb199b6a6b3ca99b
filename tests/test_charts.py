"""Vendored Helm chart archives (platform/charts/, built by tools/charts/build.py, docs/charts.md).

Every pin of platform/charts.yaml has a lock entry whose archive exists with the locked sha256, is the
pinned chart and version (its own Chart.yaml says so), and carries every dependency that any Chart.yaml
inside it declares -- recursively, in charts/ as a directory or an archive -- at a version the
constraint accepts and, where the chart has a Chart.lock (requirements.lock), at the locked version.
A subchart that is a placeholder (upstream not obtainable) must be recorded as one in the lock and be
disabled by default. The lock's subchart tree matches what is in the archive, and the default values
vendored in platform/chart-values/ are the archives' own values files.
No network, no Helm binary: pure reading of the archives."""

from __future__ import annotations

import hashlib
import io
import tarfile
from functools import cache
from pathlib import Path

import pytest
import yaml

from tools.charts.helm_semver import parse_version, satisfies

ROOT = Path(__file__).resolve().parent.parent
CHARTS_DIR = ROOT / "platform" / "charts"
PINS = yaml.safe_load((ROOT / "platform" / "charts.yaml").read_text())
RECIPE = yaml.safe_load((CHARTS_DIR / "sources.yaml").read_text())["charts"]
LOCK = (yaml.safe_load((CHARTS_DIR / "lock.yaml").read_text()) or {}).get("charts") or {}
VALUES_DIR = ROOT / "platform" / "chart-values"
PLACEHOLDER_ANNOTATION = "agentic-platform/placeholder"



def _todo(key: str) -> str | None:
    spec = RECIPE.get(key) or {}
    return spec.get("todo") if not spec.get("repository") else None


@cache
def archive_bytes(key: str) -> bytes:
    return (CHARTS_DIR / LOCK[key]["archive"]).read_bytes()


def unpack(data: bytes) -> tuple[str, dict[str, bytes]]:
    """(top-level directory, {chart-relative path: bytes}) of a chart archive."""
    files, tops = {}, set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for m in tf.getmembers():
            if m.isfile():
                top, _, rest = m.name.partition("/")
                tops.add(top)
                files[rest] = tf.extractfile(m).read()
    assert len(tops) == 1, f"archive has top-level entries {sorted(tops)}"
    return tops.pop(), files


@cache
def tree(key: str) -> dict:
    """The chart tree of an archive: {name, version, meta, values, files, subcharts: {name: tree}}."""
    top, files = unpack(archive_bytes(key))
    t = _tree(files, key)
    assert top == t["name"], f"{key}: top directory {top} is not the chart name {t['name']}"
    return t


def _tree(files: dict[str, bytes], where: str) -> dict:
    assert "Chart.yaml" in files, f"{where}: no Chart.yaml"
    meta = yaml.safe_load(files["Chart.yaml"]) or {}
    deps = meta.get("dependencies") or []
    if not deps and "requirements.yaml" in files:
        deps = (yaml.safe_load(files["requirements.yaml"]) or {}).get("dependencies") or []
    locked = {}
    for lock_file in ("Chart.lock", "requirements.lock"):
        if lock_file in files:
            locked = {d["name"]: str(d["version"]) for d in (yaml.safe_load(files[lock_file]) or {}).get("dependencies") or []}
            break
    subs: dict[str, dict] = {}
    dirs = sorted({p.split("/")[1] for p in files if p.startswith("charts/") and p.count("/") >= 2})
    for d in dirs:
        if d.startswith((".", "_")):
            continue
        sub_files = {p[len(f"charts/{d}/"):]: v for p, v in files.items() if p.startswith(f"charts/{d}/")}
        if "Chart.yaml" in sub_files:
            s = _tree(sub_files, f"{where}/charts/{d}")
            subs[s["name"]] = s
    for p in sorted(files):
        if p.startswith("charts/") and p.count("/") == 1 and p.endswith(".tgz"):
            _, sub_files = unpack(files[p])
            s = _tree(sub_files, f"{where}/{p}")
            assert s["name"] not in subs, f"{where}: {s['name']} twice in charts/"
            subs[s["name"]] = s
    return {"name": meta.get("name"), "version": str(meta.get("version")), "meta": meta, "deps": deps,
            "locked": locked, "files": files, "subcharts": subs}


VENDORED = [k for k in PINS if not _todo(k)]


@pytest.mark.parametrize("key", list(PINS))
def test_every_pin_is_vendored_with_its_lock(key):
    if _todo(key):
        pytest.xfail(f"sources.yaml: {' '.join(_todo(key).split())}")
    pin = PINS[key]
    assert key in LOCK, f"{key}: no entry in platform/charts/lock.yaml (run `make charts CHARTS={key}`)"
    entry = LOCK[key]
    assert str(entry["version"]) == str(pin["version"]), f"{key}: lock has {entry['version']}, pin is {pin['version']}"
    assert entry["archive"] == f"{key}-{pin['version']}.tgz"
    assert (CHARTS_DIR / entry["archive"]).is_file(), f"{key}: {entry['archive']} is missing"
    assert hashlib.sha256(archive_bytes(key)).hexdigest() == entry["sha256"], \
        f"{key}: {entry['archive']} does not match the lock's sha256 (rebuild with `make charts CHARTS={key}`)"
    assert entry["upstream"] == {k: pin[k] for k in ("chart", "repo") if k in pin}
    assert entry["source"]["commit"] == RECIPE[key]["commit"]
    assert str(RECIPE[key]["version"]) == str(pin["version"])


@pytest.mark.parametrize("key", VENDORED)
def test_archive_is_the_pinned_chart(key):
    t = tree(key)
    assert t["name"] == LOCK[key]["name"] == RECIPE[key]["name"]
    assert t["version"] == str(PINS[key]["version"]), f"{key}: Chart.yaml inside says {t['version']}"


def _missing_dependencies(t: dict, where: str) -> list[str]:
    problems = []
    for dep in t["deps"]:
        sub = t["subcharts"].get(dep["name"])
        if sub is None:
            problems.append(f"{where}: {dep['name']} {dep.get('version')} is not in charts/")
            continue
        if not satisfies(sub["version"], dep.get("version")):
            problems.append(f"{where}: {dep['name']} is {sub['version']}, Chart.yaml wants {dep.get('version')}")
        locked = t["locked"].get(dep["name"])
        if locked and parse_version(locked) != parse_version(sub["version"]):
            problems.append(f"{where}: {dep['name']} is {sub['version']}, Chart.lock pins {locked}")
        problems += _missing_dependencies(sub, f"{where}/charts/{dep['name']}")
    declared = {d["name"] for d in t["deps"]}
    problems += [f"{where}: charts/ holds {n}, which no dependency declares" for n in t["subcharts"] if n not in declared]
    return problems


@pytest.mark.parametrize("key", VENDORED)
def test_every_dependency_is_inside_at_its_pinned_version(key):
    assert _missing_dependencies(tree(key), key) == []


def _compare_lock(t: dict, locked: list[dict], where: str) -> list[str]:
    problems = []
    by_name = {s["name"]: s for s in locked}
    if sorted(by_name) != sorted(d["name"] for d in t["deps"]):
        return [f"{where}: lock lists {sorted(by_name)}, Chart.yaml declares {sorted(d['name'] for d in t['deps'])}"]
    for dep in t["deps"]:
        rec, sub = by_name[dep["name"]], t["subcharts"].get(dep["name"])
        if sub is None:
            continue  # reported by the dependency test
        if str(rec["version"]) != sub["version"]:
            problems.append(f"{where}: lock says {dep['name']} {rec['version']}, archive has {sub['version']}")
        if rec.get("alias") != dep.get("alias"):
            problems.append(f"{where}: {dep['name']} alias {rec.get('alias')} in the lock, {dep.get('alias')} in Chart.yaml")
        is_placeholder = PLACEHOLDER_ANNOTATION in ((sub["meta"].get("annotations")) or {})
        if is_placeholder or "placeholder" in rec:
            if not (is_placeholder and "placeholder" in rec):
                problems.append(f"{where}: {dep['name']} is a placeholder in only one of lock and archive")
            if rec.get("enabled_by_default") is not False:
                problems.append(f"{where}: placeholder {dep['name']} is enabled by default")
        elif rec.get("vendored") == "packaged from source":
            for k in ("repository", "commit", "path"):
                if not rec.get(k):
                    problems.append(f"{where}: lock entry of {dep['name']} has no {k}")
        problems += _compare_lock(sub, rec.get("subcharts") or [], f"{where}/charts/{dep['name']}")
    return problems


@pytest.mark.parametrize("key", VENDORED)
def test_lock_describes_the_subcharts_in_the_archive(key):
    assert _compare_lock(tree(key), LOCK[key].get("subcharts") or [], key) == []


def test_no_stray_archives_or_lock_entries():
    archives = {p.name for p in CHARTS_DIR.glob("*.tgz")}
    assert archives == {e["archive"] for e in LOCK.values()}
    assert set(LOCK) <= set(PINS)
    assert set(RECIPE) == set(PINS), "sources.yaml must have one entry (source or todo) per pin"


def _vendored_values() -> list[tuple[str, tuple[str, ...], str]]:
    """(chart key, subchart aliases from the top, file name) of platform/chart-values/
    `<key>[--<alias>[--<alias>...]].values.yaml|.values.schema.json`."""
    out = []
    for f in sorted(VALUES_DIR.glob("*.values.*")):
        key, *aliases = f.name.split(".values.")[0].split("--")
        out.append((key, tuple(aliases), f.name))
    return out


@pytest.mark.parametrize("key,aliases,name", _vendored_values())
def test_vendored_default_values_are_the_archive_values(key, aliases, name):
    """platform/chart-values/ (what test_helm_values checks the platform's values against) holds the
    values files of these very archives."""
    if key not in LOCK:
        pytest.skip(f"{key} is not vendored")
    t, where = tree(key), key
    for alias in aliases:
        dep = next((d for d in t["deps"] if (d.get("alias") or d["name"]) == alias), None)
        assert dep is not None, f"{where} has no subchart {alias}"
        t, where = t["subcharts"][dep["name"]], f"{where}/{alias}"
    inner = "values.schema.json" if name.endswith(".json") else "values.yaml"
    assert t["files"].get(inner) == (VALUES_DIR / name).read_bytes(), f"{name} differs from {key}'s {inner}"
