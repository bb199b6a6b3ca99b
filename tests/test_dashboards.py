"""Grafana dashboards and alert rules held as data in platform/ use real metric names only.

platform/metrics.yaml is the allow-list (metric names per exporter, with the version each
was checked against); every PromQL expression in platform/dashboards/*.json and
platform/alerts.yaml must select only names listed there. No network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

try:  # tests/ as a package (rootdir on sys.path) or as a plain directory (pytest prepend)
    from tests.promql import (
        PromQLError,
        grafana_query_metric_names,
        load_allow_list,
        metric_names,
    )
except ImportError:  # pragma: no cover - depends on how pytest was invoked
    from promql import PromQLError, grafana_query_metric_names, load_allow_list, metric_names

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ROOT / "platform"
DASHBOARD_DIR = PLATFORM / "dashboards"
EXPECTED_DASHBOARDS = {
    "agent-overview.json",
    "llm-performance.json",
    "resource-usage.json",
    "cost-tracking.json",
}
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
ALLOWED, DEPRECATED = load_allow_list(PLATFORM / "metrics.yaml")
ALERTS = yaml.safe_load((PLATFORM / "alerts.yaml").read_text())
RULES = [rule for group in ALERTS["groups"] for rule in group["rules"]]
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _panels(dashboard: dict):
    """All panels, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _targets(dashboard: dict):
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def _unknown(names: set[str]) -> list[str]:
    return sorted(n for n in names if n not in ALLOWED)


# --------------------------------------------------------------------------- extractor


def test_extractor_catches_unknown_metric():
    names = metric_names("rate(vllm:made_up_total[5m])")
    assert names == {"vllm:made_up_total"}
    assert _unknown(names) == ["vllm:made_up_total"]


def test_extractor_ignores_functions_labels_keywords_numbers_and_variables():
    expr = (
        'histogram_quantile(0.99, sum by (namespace, agent, le) ('
        'rate(agent_request_duration_seconds_bucket{namespace=~"$namespace", agent!="x y"}'
        "[$__rate_interval] offset 1h))) > bool 10"
        " and on (namespace) group_left (agent) vllm:num_requests_waiting{model_name=~\"${model}\"}"
        " unless ignoring (pod) sum without (pod) (up) * $gpu_hour_price / 1e-9"
    )
    assert metric_names(expr) == {
        "agent_request_duration_seconds_bucket",
        "vllm:num_requests_waiting",
        "up",
    }


def test_extractor_handles_subqueries_and_aggregation_suffix_clauses():
    expr = (
        "sum(sum_over_time((max by (pod) (kube_pod_container_resource_requests{"
        'resource="nvidia_com_gpu"}) * on (pod) group_left () kube_pod_info)[$__range:1m])) by (namespace) / 60'
    )
    assert metric_names(expr) == {"kube_pod_container_resource_requests", "kube_pod_info"}


def test_extractor_rejects_unknown_function():
    with pytest.raises(PromQLError):
        metric_names("made_up_function(up)")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('label_values(agent_requests_total{namespace=~"$namespace"}, agent)', {"agent_requests_total"}),
        ("label_values(namespace)", set()),
        ("query_result(topk(5, sum by (pod) (vllm:num_requests_waiting)))", {"vllm:num_requests_waiting"}),
        ("label_names()", set()),
        ("metrics(vllm:.*)", set()),
    ],
)
def test_grafana_variable_query_extractor(query, expected):
    assert grafana_query_metric_names(query) == expected


# --------------------------------------------------------------------------- allow-list


def test_metrics_yaml_groups_name_their_source():
    doc = yaml.safe_load((PLATFORM / "metrics.yaml").read_text())
    for name, group in doc["exporters"].items():
        assert group.get("source"), f"{name}: no source"
        kinds = ("counters", "gauges", "histograms", "summaries")
        assert any(group.get(k) for k in kinds), f"{name}: no metrics"
        for kind in kinds:
            for metric in group.get(kind, []):
                assert re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", metric), f"{name}: {metric!r}"


def test_deprecated_names_are_not_allowed():
    assert not set(DEPRECATED) & ALLOWED


# --------------------------------------------------------------------------- dashboards


def test_all_four_dashboards_exist():
    assert {p.name for p in DASHBOARDS} >= EXPECTED_DASHBOARDS


def test_dashboard_uids_are_unique():
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shape(path):
    dashboard = _load(path)
    assert isinstance(dashboard.get("uid"), str) and 0 < len(dashboard["uid"]) <= 40
    assert dashboard.get("title")
    assert dashboard.get("schemaVersion", 0) >= 36
    assert dashboard.get("panels")
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        assert panel.get("title"), panel
        assert "gridPos" in panel, panel["title"]
        if panel["type"] != "row":
            assert panel.get("targets"), f"{panel['title']}: no targets"
            for target in panel["targets"]:
                assert target.get("expr"), f"{panel['title']}: empty expr"
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_has_prometheus_datasource_variable(path):
    variables = {v["name"]: v for v in _load(path)["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_known_metrics_only(path):
    dashboard = _load(path)
    problems = []
    for panel, target in _targets(dashboard):
        names = metric_names(target["expr"])
        assert names, f"{panel['title']}: no metric in {target['expr']!r}"
        if unknown := _unknown(names):
            problems.append(f"{panel['title']!r}: {unknown}")
        if old := sorted(names & set(DEPRECATED)):
            problems.append(f"{panel['title']!r}: deprecated {old}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variable_queries_use_known_metrics_only(path):
    for variable in _load(path)["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        assert query == variable.get("definition", query)
        names = grafana_query_metric_names(query)
        assert not _unknown(names), f"variable {variable['name']}: {_unknown(names)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variables_used_in_queries_are_defined(path):
    dashboard = _load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for panel, target in _targets(dashboard):
        for var in re.findall(r"\$\{?(\w+)", target["expr"]):
            assert var.startswith("__") or var in defined, f"{panel['title']}: ${var} undefined"


def test_cost_dashboard_price_is_a_constant_variable():
    dashboard = _load(DASHBOARD_DIR / "cost-tracking.json")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    price = variables["gpu_hour_price"]
    assert price["type"] == "constant"
    float(price["query"])
    spend = [t for _, t in _targets(dashboard) if "$gpu_hour_price" in t["expr"]]
    assert spend, "no panel multiplies by $gpu_hour_price"
    gpu = [t for _, t in _targets(dashboard) if 'resource="nvidia_com_gpu"' in t["expr"]]
    assert gpu, "GPU-hours must come from kube-state-metrics nvidia_com_gpu requests"


def test_llm_dashboard_uses_current_vllm_names():
    exprs = " ".join(t["expr"] for _, t in _targets(_load(DASHBOARD_DIR / "llm-performance.json")))
    for name in (
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "tgi_queue_size",
        "tgi_request_duration_bucket",
    ):
        assert name in exprs, name


# --------------------------------------------------------------------------- alerts


def test_alert_names_are_unique():
    names = [r["alert"] for r in RULES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
def test_alert_rule_shape(rule):
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    assert DURATION.match(str(rule["for"])), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"]
    assert rule["annotations"].get("description")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
def test_alert_expr_uses_known_metrics_only(rule):
    names = metric_names(rule["expr"])
    assert names
    assert not _unknown(names), _unknown(names)
    assert not names & set(DEPRECATED)


def _rule(name: str) -> dict:
    return next(r for r in RULES if r["alert"] == name)


def _threshold(expr: str) -> float:
    m = re.search(r">\s*([0-9.]+)\s*$", expr.strip())
    assert m, expr
    return float(m.group(1))


def test_agent_high_latency_is_p99_over_10s_for_5m():
    rule = _rule("AgentHighLatency")
    assert rule["for"] == "5m"
    assert _threshold(rule["expr"]) == 10
    assert "histogram_quantile(0.99" in rule["expr"].replace(" ", "")
    assert metric_names(rule["expr"]) == {"agent_request_duration_seconds_bucket"}


def test_agent_high_error_rate_is_over_5_percent_for_5m():
    rule = _rule("AgentHighErrorRate")
    assert rule["for"] == "5m"
    assert _threshold(rule["expr"]) == 0.05
    assert metric_names(rule["expr"]) == {"agent_errors_total", "agent_requests_total"}


@pytest.mark.parametrize(
    "name",
    [
        "HighGPUUtilization",
        "GPULowUtilization",
        "GPUMemoryPressure",
        "VLLMKVCacheNearFull",
        "VLLMRequestsQueued",
        "GatewayHigh5xxRate",
        "ModelServerDown",
    ],
)
def test_required_alerts_exist(name):
    assert _rule(name)
