"""A chart's subcharts: the ones its tree already carries, its Chart.yaml dependencies checked against
what is vendored (version constraints, Chart.lock), and whether Helm renders each with the default
values (conditions and tags, coalesced down the tree)."""

from __future__ import annotations

import sys

import yaml

from tools.charts.chart_archive import BuildError, chart_metadata, load_yaml, locked_versions, read_archive
from tools.charts.helm_semver import parse_version, satisfies


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
        if (load_yaml(sub["Chart.yaml"][0], f"{where}/{p}") or {}).get("name") == name:
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


def analyse_archive(data: bytes, where: str) -> dict:
    _, files = read_archive(data, where)
    return analyse_files(files, where)
