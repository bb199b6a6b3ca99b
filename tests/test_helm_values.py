"""Helm values against the charts' own defaults (the checker: tests/chart_values.py): every release of
the shared plans sets only keys its chart has, the vendored defaults and allow-lists stay true, and
the checker itself catches what it must."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plan.engine import ROOT, Plan
from tests.chart_values import (
    FREE_FORM,
    NAMED_ENTRIES,
    RELEASE,
    TEMPLATE_KEYS,
    UNVERIFIED,
    VALUES_DIR,
    chart_key,
    charts,
    defaults_of,
    fmt_path,
    merged_defaults,
    problems,
    schema_errors,
    schema_of,
    unknown_paths,
)

# ----------------------------------------------------------------------------- plans

@pytest.fixture(scope="module", params=["dev", "prod", "agentgateway"])
def each_plan(request, dev_plan, prod_plan) -> Plan:
    if request.param == "agentgateway":
        return request.getfixturevalue("agw_plan")
    return {"dev": dev_plan, "prod": prod_plan}[request.param]


def test_every_release_sets_only_keys_its_chart_has(each_plan):
    releases = each_plan.by_type(RELEASE)
    assert releases
    found: dict[str, list[str]] = {}
    for r in releases:
        if chart_key(r.inputs) in UNVERIFIED:
            continue
        try:
            found[r.inputs["name"]] = problems(r.inputs)
        except AssertionError as e:  # no vendored values: a failure too, reported with the rest
            found[r.inputs["name"]] = [str(e)]
    assert not {n: p for n, p in found.items() if p}, json.dumps({n: p for n, p in found.items() if p}, indent=1)


def test_every_chart_used_by_a_release_has_vendored_values(dev_plan, prod_plan, agw_plan):
    used = {chart_key(r.inputs) for plan in (dev_plan, prod_plan, agw_plan) for r in plan.by_type(RELEASE)}
    missing = sorted(k for k in used - set(UNVERIFIED) if not (VALUES_DIR / f"{k}.values.yaml").exists())
    assert not missing, f"no vendored default values for {missing} in {VALUES_DIR.relative_to(ROOT)}"
    assert "kube-prometheus-stack" in used and "langfuse" in used


def test_vendored_files_are_recorded_in_provenance():
    provenance = (VALUES_DIR / "PROVENANCE.md").read_text()
    vendored = sorted(p.name for p in VALUES_DIR.iterdir() if p.name.endswith((".values.yaml", ".values.schema.json")))
    assert vendored
    assert not [n for n in vendored if f"| {n} |" not in provenance]


def test_template_keys_name_pinned_charts_and_keys_the_defaults_lack():
    for key, path in TEMPLATE_KEYS:
        defaults, subs = defaults_of(key)
        node: Any = merged_defaults(defaults, subs)
        for p in path[:-1]:
            node = node[p]
        assert path[-1] not in node, f"{key}: {fmt_path(path)} is in the defaults now; drop it from TEMPLATE_KEYS"


def test_allow_lists_name_pinned_charts_and_paths_the_defaults_have():
    pins = charts()
    for key, path in (*FREE_FORM, *NAMED_ENTRIES):
        assert key in pins, key
        node: Any = defaults_of(key)[0]
        for p in path:
            assert isinstance(node, dict) and p in node, f"{key}: {fmt_path(path)} is not in the chart's defaults"
            node = node[p]


# ----------------------------------------------------------------------------- the checker itself

DEFAULTS = {
    "controller": {"replicaCount": 1, "podAnnotations": {}, "tolerations": [], "resources": {},
                   "env": [{"name": "A", "value": "b"}], "args": ["--x"], "image": {"tag": None}},
    "global": {"imageRegistry": ""},
    "sub": {"enabled": False},
}
SUB = {"persistence": {"size": "8Gi"}, "global": {"storageClass": ""}}


def test_checker_catches_a_misspelled_key():
    assert unknown_paths("x", {"controller": {"replicaCont": 2}}, DEFAULTS) == [
        "controller.replicaCont: not a key of the chart's values"]
    assert unknown_paths("x", {"controller": {"replicaCount": 2}}, DEFAULTS) == []


def test_checker_free_form_lists_subcharts_globals_and_null_delete():
    ok = {"controller": {"podAnnotations": {"any.thing/x": "1"}, "tolerations": [{"operator": "Exists"}],
                         "env": [{"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                         "args": ["--y"], "resources": {"limits": {"cpu": "1"}},
                         "image": {"tag": {"anything": 1}}},
          "sub": {"enabled": True, "persistence": {"size": "1Gi"}},
          "global": {"imageRegistry": "r", "storageClass": "gp3"}}
    assert unknown_paths("x", ok, DEFAULTS, {"sub": SUB}) == []
    # below a Kubernetes pass-through key the Kubernetes type judges, not the defaults' example
    bad = {"controller": {"env": [{"name": "C", "valuFrom": {}}], "resources": {"limit": {"cpu": "1"}},
                          "podAnnotations": {"a": 1}}}
    assert unknown_paths("x", bad, DEFAULTS) == [
        "controller.env.[0]: Additional properties are not allowed ('valuFrom' was unexpected) (as EnvVar)",
        "controller.resources: Additional properties are not allowed ('limit' was unexpected) (as ResourceRequirements)",
        "controller.podAnnotations: expected a map of strings"]
    assert unknown_paths("x", {"sub": {"persistance": {}}}, DEFAULTS, {"sub": SUB}) == [
        "sub.persistance: not a key of the chart's values"]
    assert unknown_paths("x", {"controller": {"replicaCount": None}}, DEFAULTS) == []
    assert unknown_paths("x", {"controller": {"replicas": None}}, DEFAULTS) == [
        "controller.replicas: not a key of the chart's values (null-delete of a missing key)"]


def test_checker_named_entries_and_schema():
    defaults, _ = defaults_of("opentelemetry-collector")
    new_port = {"ports": {"extra": {"enabled": True, "containerPort": 1, "servicePort": 1, "protocol": "TCP"}}}
    assert unknown_paths("opentelemetry-collector", new_port, defaults) == []
    assert unknown_paths("opentelemetry-collector", {"ports": {"extra": {"contanerPort": 1}}}, defaults) == [
        "ports.extra.contanerPort: not a key of the chart's values"]
    schema = schema_of("opentelemetry-collector")
    assert schema is not None
    assert schema_errors({"mode": "deployment", "image": {"repository": "r"}}, defaults, schema) == []
    assert schema_errors({"mode": "deploymnet", "image": {"repository": "r"}}, defaults, schema)


def test_unverified_charts_are_really_missing():
    """An exemption lasts only while the chart's values cannot be vendored."""
    for key in UNVERIFIED:
        assert key in charts(), key
        assert not (VALUES_DIR / f"{key}.values.yaml").exists(), f"{key} is vendored now: drop it from UNVERIFIED"
