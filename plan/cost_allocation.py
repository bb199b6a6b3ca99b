"""Cost allocation as declared: the OpenCost release (chart, image, Prometheus it queries) and the
daily cost alert of every tenant with its threshold, read from the planned resources (the
PrometheusRule the cost layer generates), so the summary shows what `pulumi up` would install."""

from __future__ import annotations

import re
from typing import Any

from components import names
from components.cost import DAILY_COST_ALERT
from plan.engine import Plan

RELEASE = "kubernetes:helm.sh/v3:Release"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
_THRESHOLD = re.compile(r">\s*([0-9.]+)\s*$")


def compute(plan: Plan, _config: Any) -> dict[str, Any]:
    release = next((r for r in plan.by_type(RELEASE) if r.inputs.get("name") == names.OPENCOST_RELEASE), None)
    if release is None:
        return {}
    values = release.inputs.get("values") or {}
    exporter = (values.get("opencost") or {}).get("exporter") or {}
    image = exporter.get("image") or {}
    alerts = []
    for rule in plan.by_type(RULE):
        for group in (rule.inputs.get("spec") or {}).get("groups") or []:
            for r in group.get("rules") or []:
                if r.get("alert") == DAILY_COST_ALERT and (m := _THRESHOLD.search(r.get("expr", ""))):
                    alerts.append({"tenant": r["labels"]["tenant"], "thresholdUsdPerDay": float(m[1]),
                                   "for": r.get("for")})
    return {
        "namespace": release.inputs.get("namespace"),
        "chart": f"opencost {release.inputs.get('version')}",
        "image": f"{image.get('registry')}/{image.get('repository')}:{str(image.get('tag', '')).split('@')[0]}",
        "prometheus": ((values.get("opencost") or {}).get("prometheus") or {}).get("external", {}).get("url"),
        "alerts": sorted(alerts, key=lambda a: a["tenant"]),
    }


def summary_lines(doc: dict[str, Any]) -> list[str]:
    if not doc:
        return ["OpenCost not deployed"]
    lines = [f"OpenCost: {doc['chart']}, {doc['image']} in {doc['namespace']}, on {doc['prometheus']}"]
    lines += [f"{DAILY_COST_ALERT} {a['tenant']}: 24 h cost above ${a['thresholdUsdPerDay']:g} for {a['for']}"
              for a in doc["alerts"]]
    return lines
