"""Label selectors as the API server evaluates them: one matcher for every part of the plan that
asks which objects a selector picks (NetworkPolicies, Services, monitors, webhooks).

metav1.LabelSelector (k8s.io/apimachinery pkg/apis/meta/v1/types.go; Kubernetes docs, "Labels and
Selectors", set-based requirements): every `matchLabels` pair and every `matchExpressions`
requirement must hold ("ANDed"). Operators: `In` (the key is present with one of the values),
`NotIn` (absent, or present with none of them: "selects all resources with key not equal to ...
and all resources with no labels with the key"), `Exists`, `DoesNotExist`; any other operator is
not a valid selector (LabelSelectorAsSelector returns an error). An empty selector `{}` matches
everything; a null one matches nothing ("A null label selector matches no objects") -- a caller
whose field means something else when absent (a webhook's objectSelector: every object) says so
by passing `{}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy the LabelSelector `selector` (values compared as strings, as the
    API server stores them)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        if op not in OPERATORS:
            raise ValueError(f"unknown label selector operator {op!r}")
        present = key in labels
        if not {"In": present and labels.get(key) in values,
                "NotIn": not present or labels.get(key) not in values,
                "Exists": present, "DoesNotExist": not present}[op]:
            return False
    return True
