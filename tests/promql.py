"""A small PromQL metric-name extractor and the metric allow-list loader.

Not a PromQL parser: it strips what cannot be a metric name (string literals, Grafana
variables, label matchers ``{...}``, grouping clauses ``by (...)``/``on (...)``/...,
range and subquery brackets ``[...]``, numbers and durations) and reports every remaining
identifier that is neither a function, an aggregation operator nor a keyword.

    >>> sorted(metric_names('sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{model_name=~"$model"}[$__rate_interval]))'))
    ['vllm:e2e_request_latency_seconds_bucket']

Reusable by any test that checks PromQL held as data (dashboards, PrometheusRules,
KEDA triggers).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# PromQL functions (prometheus/promql/parser/functions.go, Prometheus 3.x) and aggregation
# operators. An identifier followed by "(" must be one of these.
FUNCTIONS = frozenset(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing exp floor
    histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
    histogram_stdvar histogram_sum holt_winters hour idelta increase info irate
    label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
    min_over_time minute month pi predict_linear present_over_time quantile_over_time rad
    rate resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc
    sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year
    ts_of_max_over_time ts_of_min_over_time ts_of_last_over_time first_over_time
    start end
    """.split()
)
AGGREGATIONS = frozenset(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
    "limit_ratio".split()
)
KEYWORDS = frozenset(
    "by without on ignoring group_left group_right bool offset and or unless atan2 inf nan".split()
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+(?::\w+)?\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|\d[\d.]*(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)"
)


class PromQLError(ValueError):
    """The expression calls something that is not a PromQL function."""


def metric_names(expr: str) -> set[str]:
    """Return the metric names an instant/range PromQL expression selects."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VAR.sub(" 1 ", text)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    names: set[str] = set()
    for match in _TOKEN.finditer(text):
        ident = match.group("ident")
        if ident is None:
            continue
        if ident in KEYWORDS:
            continue
        rest = text[match.end():].lstrip()
        if rest.startswith("("):
            if ident in FUNCTIONS or ident in AGGREGATIONS:
                continue
            raise PromQLError(f"unknown PromQL function {ident!r} in {expr!r}")
        if ident in AGGREGATIONS:
            continue
        names.add(ident)
    return names


_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<args>.*)\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.S)
_NO_METRIC = re.compile(r"^\s*(?:label_names\s*\(.*\)|metrics\s*\(.*\))\s*$", re.S)


def grafana_query_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana Prometheus variable query.

    Understands ``label_values(selector, label)``, ``label_values(label)``,
    ``query_result(expr)``, ``label_names()`` and ``metrics(regex)``; anything else is
    treated as PromQL.
    """
    if _NO_METRIC.match(query):
        return set()
    m = _LABEL_VALUES.match(query)
    if m:
        args = m.group("args")
        if "," not in args:
            return set()
        selector = args.rsplit(",", 1)[0]
        return metric_names(selector)
    m = _QUERY_RESULT.match(query)
    if m:
        return metric_names(m.group("expr"))
    return metric_names(query)


def load_allow_list(path: str | Path) -> tuple[set[str], dict[str, str | None]]:
    """Read platform/metrics.yaml: (allowed series names, {deprecated name: replacement})."""
    doc = yaml.safe_load(Path(path).read_text())
    allowed: set[str] = set()
    for exporter in doc["exporters"].values():
        allowed.update(exporter.get("counters", []))
        allowed.update(exporter.get("gauges", []))
        for base in exporter.get("histograms", []):
            allowed.update({f"{base}_bucket", f"{base}_sum", f"{base}_count"})
        for base in exporter.get("summaries", []):
            allowed.update({base, f"{base}_sum", f"{base}_count"})
    deprecated = {d["name"]: d.get("replacement") for d in doc.get("deprecated", [])}
    return allowed, deprecated
