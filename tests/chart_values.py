"""The checker of Helm values against the charts' own defaults (tests/test_helm_values.py): every values
key path a release sets must exist in the chart's default values.yaml at the pinned version (vendored,
unmodified, in `platform/chart-values/`, provenance in its PROVENANCE.md), or lie below a map the chart
passes through verbatim; where the chart ships values.schema.json, the coalesced values must validate.

A misspelled key is silently ignored by Helm (`replicaCont: 2` installs one replica); this checker is
what turns it into a failure.

Vendored files: `<key>.values.yaml` (and `<key>.values.schema.json`) for a key of
platform/charts.yaml, `<key>--<alias>.values.yaml` for a subchart whose values the platform sets
(under the top-level key `<alias>`, as Helm passes them)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
import yaml
from referencing import Registry, Resource

from plan.engine import ROOT

RELEASE = "kubernetes:helm.sh/v3:Release"
VALUES_DIR = ROOT / "platform" / "chart-values"
Path_ = tuple[str, ...]

# ----------------------------------------------------------------------------- allow-list
# Maps that are free-form but not detectable from the defaults (the generic rule already treats a
# default of `{}`, `[]` or null as free-form). (chart key, path) -> reason; everything below the
# path is unchecked. Keep it short: each entry hides typos below it.
FREE_FORM: dict[tuple[str, Path_], str] = {
    ("opentelemetry-collector", ("config", "exporters")):
        "collector config, rendered verbatim into the ConfigMap; exporters are named by the user "
        "(`otlphttp/langfuse`) and their settings belong to the collector, not the chart",
    ("opentelemetry-collector", ("config", "service", "pipelines")):
        "collector config, rendered verbatim; pipelines list the user's receivers/processors/exporters",
}

# Maps of named entries the chart ranges over: a NEW entry is allowed and checked against the merged
# shape of the entries the defaults ship; an existing entry is checked as usual.
NAMED_ENTRIES: dict[tuple[str, Path_], str] = {
    ("opentelemetry-collector", ("ports",)):
        "the chart renders one container/service port per entry of `ports` (templates/_pod.tpl, "
        "_config.tpl `range $key, $port := .Values.ports`); README 'Configuration / ports'",
}


# Keys the chart's templates read that its values.yaml neither sets nor shows in a comment:
# (chart key, path) -> evidence. The key then exists; below it the usual rules apply (a Kubernetes
# type is validated, anything else is unchecked).
TEMPLATE_KEYS: dict[tuple[str, Path_], str] = {
    ("kagent", ("controller", "podSecurityContext")):
        "kagent v0.9.12 helm/kagent/templates/controller-deployment.yaml:28 "
        "`.Values.controller.podSecurityContext | default .Values.podSecurityContext`",
    ("kagent", ("controller", "securityContext")):
        "kagent v0.9.12 helm/kagent/templates/controller-deployment.yaml:162 "
        "`.Values.controller.securityContext | default .Values.securityContext`",
    ("kagent", ("providers", "openAI", "config")):
        "kagent v0.9.12 helm/kagent/templates/modelconfig.yaml: `toYaml $model.config` under the provider key "
        "of the ModelConfig (values.yaml shows `config` on the ollama/azureOpenAI providers only)",
    ("kagent", ("providers", "openAI", "defaultHeaders")):
        "kagent v0.9.12 helm/kagent/templates/modelconfig.yaml: `if hasKey $model \"defaultHeaders\"` "
        "-> ModelConfig spec.defaultHeaders",
    ("nvidia-device-plugin", ("nfd", "enabled")):
        "k8s-device-plugin v0.20.0 deployments/helm/nvidia-device-plugin/Chart.yaml: dependency "
        "node-feature-discovery (alias nfd) has `condition: nfd.enabled,gfd.enabled`",
}


# Keys charts pass through verbatim (`toYaml`) as a Kubernetes object, a list of them, or a string
# map: the key itself must exist in the defaults; below it the object is validated against the
# Kubernetes type (strict schemas of kubernetes-validate) instead of the defaults' example shape.
K8S_OBJECT = {
    "resources": ("io.k8s.api.core.v1.ResourceRequirements",),
    "affinity": ("io.k8s.api.core.v1.Affinity",),
    # charts use `securityContext` for the pod or the container: either type is accepted; Bitnami's
    # `enabled` switch is the chart's own and dropped before rendering (common.compatibility)
    "securityContext": ("io.k8s.api.core.v1.SecurityContext", "io.k8s.api.core.v1.PodSecurityContext"),
    "podSecurityContext": ("io.k8s.api.core.v1.PodSecurityContext", "io.k8s.api.core.v1.SecurityContext"),
    "containerSecurityContext": ("io.k8s.api.core.v1.SecurityContext",),
}
K8S_LIST = {
    "tolerations": "io.k8s.api.core.v1.Toleration",
    "env": "io.k8s.api.core.v1.EnvVar",
    "extraEnv": "io.k8s.api.core.v1.EnvVar",
    "extraEnvs": "io.k8s.api.core.v1.EnvVar",
    "additionalEnv": "io.k8s.api.core.v1.EnvVar",
}
K8S_STRING_MAP = {"nodeSelector", "annotations", "labels", "podAnnotations", "podLabels",
                  "serviceAnnotations", "commonLabels", "commonAnnotations"}


# ----------------------------------------------------------------------------- vendored data

# Charts whose exact default values could not be obtained (none today: kgateway v2.4.3 is vendored
# from the commit it was released from, platform/charts/sources.yaml). Vendoring <key>.values.yaml
# makes test_unverified_charts_are_really_missing demand the entry's removal.
UNVERIFIED: dict[str, str] = {}


def charts() -> dict[str, dict[str, str]]:
    return yaml.safe_load((ROOT / "platform" / "charts.yaml").read_text())


def _load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def chart_key(release_inputs: dict[str, Any]) -> str:
    """The platform/charts.yaml key a planned release installs (by its vendored archive and version)."""
    lock = yaml.safe_load((ROOT / "platform" / "charts" / "lock.yaml").read_text())["charts"]
    for key, pin in charts().items():
        entry = lock.get(key) or {}
        if (release_inputs["chart"] == f"platform/charts/{entry.get('archive')}"
                and pin["version"] == release_inputs["version"]):
            return key
    raise AssertionError(f"release {release_inputs['name']}: chart {release_inputs['chart']} "
                         f"{release_inputs['version']} is not a vendored pin of platform/charts.yaml")


def defaults_of(key: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The chart's default values and its vendored subcharts' (alias -> defaults)."""
    path = VALUES_DIR / f"{key}.values.yaml"
    if not path.exists():
        raise AssertionError(f"chart '{key}' has no vendored default values: add {path.relative_to(ROOT)} "
                             f"(upstream values.yaml at the pinned version) and a PROVENANCE.md row")
    subs = {p.name[len(key) + 2:-len(".values.yaml")]: _load_yaml(p)
            for p in sorted(VALUES_DIR.glob(f"{key}--*.values.yaml"))}
    return _load_yaml(path), subs


def commented_keys(key: str) -> set[Path_]:
    """Key paths the chart's values.yaml documents as a commented-out example (`# storageClassName:
    default` below `persistence:`): optional keys its templates read but leave unset."""
    out: set[Path_] = set()
    for file in [VALUES_DIR / f"{key}.values.yaml", *sorted(VALUES_DIR.glob(f"{key}--*.values.yaml"))]:
        prefix: Path_ = tuple(file.name[len(key) + 2:-len(".values.yaml")].split("--")) if "--" in file.name else ()
        stack: list[tuple[int, Path_, bool]] = [(-1, prefix, False)]  # (indent, path, commented)
        for line in file.read_text().splitlines():
            real = re.match(r"^( *)([A-Za-z_][\w.-]*|\"[^\"]+\"):( |$)", line)
            comment = re.match(r"^( *)#( +)([A-Za-z_][\w-]*):( |$)", line)
            if real:
                indent = len(real.group(1))
                while stack[-1][0] >= indent or stack[-1][2]:
                    stack.pop()
                stack.append((indent, (*stack[-1][1], real.group(2).strip('"')), False))
            elif comment:
                indent = len(comment.group(1)) + len(comment.group(2)) - 1
                while stack[-1][0] >= indent:
                    stack.pop()
                path = (*stack[-1][1], comment.group(3))
                out.add(path)
                stack.append((indent, path, True))
    return out


def schema_of(key: str) -> dict[str, Any] | None:
    path = VALUES_DIR / f"{key}.values.schema.json"
    return json.loads(path.read_text()) if path.exists() else None


# ----------------------------------------------------------------------------- the checker

def coalesce(defaults: Any, values: Any) -> Any:
    """Helm's merge of user values over defaults: maps merge, anything else replaces, null deletes."""
    if not (isinstance(defaults, dict) and isinstance(values, dict)):
        return copy.deepcopy(values)
    out = copy.deepcopy(defaults)
    for k, v in values.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = coalesce(out.get(k), v)
    return out


def _shape_of_entries(entries: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """The merged shape of a list's dict elements (or a map's dict entries): the union of their keys."""
    shape: dict[str, Any] = {}
    for e in (entries.values() if isinstance(entries, dict) else entries):
        for k, v in (e.items() if isinstance(e, dict) else ()):
            if isinstance(shape.get(k), dict) and isinstance(v, dict):
                shape[k] = coalesce(shape[k], v)
            elif shape.get(k) is None:
                shape[k] = v
    return shape


def overlay(base: Any, top: Any) -> Any:
    """`top` over `base` keeping nulls (defaults layered on defaults: a null default is a key)."""
    if not (isinstance(base, dict) and isinstance(top, dict)):
        return copy.deepcopy(top)
    out = copy.deepcopy(base)
    for k, v in top.items():
        out[k] = overlay(out.get(k), v) if k in out and v is not None else copy.deepcopy(v)
    return out


def fmt_path(path: Path_) -> str:
    return ".".join(p if "." not in p and "/" not in p else f"[{p}]" for p in path)


@cache
def _k8s_registry() -> Registry:
    version = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"].get(
        "agentic-platform:cluster", {}).get("version", "1.34")
    version = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(f"{version}.0")][-1]
    defs = kv.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    return Resource.from_contents(defs) @ Registry()


def k8s_errors(value: Any, types: tuple[str, ...], path: Path_) -> list[str]:
    """Errors of `value` as the first Kubernetes type it fits (none if it fits one)."""
    found: list[str] = []
    for t in types:
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{t}"}
        errors = list(jsonschema.Draft202012Validator(schema, registry=_k8s_registry()).iter_errors(value))
        if not errors:
            return []
        found += [f"{fmt_path((*path, *(str(p) for p in e.absolute_path)))}: {e.message} (as {t.rsplit('.', 1)[1]})"
                  for e in errors]
    return found


class Checker:
    """Walks release values against a chart's defaults (see the module docstring)."""

    def __init__(self, key: str, defaults: dict[str, Any], commented: set[Path_] | frozenset = frozenset()):
        self.key, self.defaults, self.commented = key, defaults, commented

    def run(self, values: dict[str, Any]) -> list[str]:
        return list(self._walk(values, self.defaults, ()))

    def _k8s(self, k: str, v: Any, default: Any, sub: Path_) -> Iterator[str]:
        if k in K8S_STRING_MAP:
            if not (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())):
                yield f"{fmt_path(sub)}: expected a map of strings"
        elif k in K8S_OBJECT:
            if isinstance(default, dict) and "enabled" in default and isinstance(v, dict):
                v = {kk: vv for kk, vv in v.items() if kk != "enabled"}
            yield from k8s_errors(v, K8S_OBJECT[k], sub)
        elif isinstance(v, list):
            for i, e in enumerate(v):
                yield from k8s_errors(e, (K8S_LIST[k],), (*sub, f"[{i}]"))

    def _walk(self, values: Any, default: Any, path: Path_) -> Iterator[str]:
        if (self.key, path) in FREE_FORM:
            return
        if default is None or default == {} or default == []:
            return  # free-form: the chart documents no structure here
        if isinstance(default, list):
            if isinstance(values, list) and all(isinstance(e, dict) for e in default):
                shape = _shape_of_entries(default)
                for i, v in enumerate(values):
                    yield from self._walk(v, shape, (*path, f"[{i}]"))
            return
        if not isinstance(default, dict):
            if isinstance(values, dict) and values:
                yield f"{fmt_path(path)}: sets a map where the chart's default is {default!r}"
            return
        if not isinstance(values, dict):
            return  # a scalar replacing a map: the schema (where there is one) judges types
        named = (self.key, path) in NAMED_ENTRIES
        for k, v in values.items():
            sub = (*path, k)
            if k not in default:
                if sub in self.commented:
                    pass  # documented optional key (commented example, or TEMPLATE_KEYS): it exists
                elif named and v is not None:
                    yield from self._walk(v, _shape_of_entries(default), sub)
                else:
                    yield f"{fmt_path(sub)}: not a key of the chart's values" + (
                        " (null-delete of a missing key)" if v is None else "")
                if k in K8S_STRING_MAP or k in K8S_OBJECT or k in K8S_LIST:
                    yield from self._k8s(k, v, None, sub) if sub in self.commented and v is not None else ()
                continue
            if v is None:
                continue
            if k in K8S_STRING_MAP or k in K8S_OBJECT or (k in K8S_LIST and isinstance(default[k], list)):
                yield from self._k8s(k, v, default[k], sub)
            else:
                yield from self._walk(v, default[k], sub)


def merged_defaults(defaults: dict[str, Any], subcharts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the chart and its subcharts accept: each subchart's defaults under its alias with the
    parent's section for it on top, and one `global` section (the parent's and every subchart's)."""
    merged = dict(defaults)
    # A subchart's subchart (`<key>--<alias>--<alias>.values.yaml`) nests under its parent's alias;
    # parents first (shorter names sort first).
    for alias, sub in sorted(subcharts.items(), key=lambda kv: kv[0].count("--")):
        *parents, own = alias.split("--")
        into = merged
        for parent in parents:
            into = into.setdefault(parent, {})
        into[own] = overlay({k: v for k, v in sub.items() if k != "global"}, into.get(own) or {})
    globals_: dict[str, Any] = {}
    for sub in subcharts.values():
        globals_ = overlay(globals_, sub.get("global") or {})
    globals_ = overlay(globals_, defaults.get("global") or {})
    if globals_:
        merged["global"] = globals_
    return merged


def unknown_paths(key: str, values: dict[str, Any], defaults: dict[str, Any],
                  subcharts: dict[str, dict[str, Any]] | None = None,
                  commented: set[Path_] | frozenset = frozenset()) -> list[str]:
    """Key paths of `values` that the chart (and its subcharts, and the global section) do not have."""
    return Checker(key, merged_defaults(defaults, subcharts or {}), commented).run(values)


def schema_errors(values: dict[str, Any], defaults: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Helm validates the coalesced values (defaults + release values) against values.schema.json."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator = cls(schema)
    return [f"{fmt_path(tuple(str(p) for p in e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(coalesce(defaults, values))]


def problems(release_inputs: dict[str, Any]) -> list[str]:
    key = chart_key(release_inputs)
    defaults, subs = defaults_of(key)
    values = release_inputs.get("values") or {}
    known = commented_keys(key) | {path for (k, path) in TEMPLATE_KEYS if k == key}
    out = unknown_paths(key, values, defaults, subs, known)
    schema = schema_of(key)
    if schema is not None:
        out += [f"schema: {e}" for e in schema_errors(values, defaults, schema)]
    return out

