"""The plan's one LabelSelector matcher (domain/selectors.py), against the semantics the Kubernetes
docs give ("Labels and Selectors") and apimachinery's LabelSelectorAsSelector."""

from __future__ import annotations

import importlib

import pytest

from domain.selectors import selector_matches


def expr(op: str, *values: str) -> dict:
    return {"matchExpressions": [{"key": "tier", "operator": op, **({"values": list(values)} if values else {})}]}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {}, True),                                             # empty: everything
    (None, {"tier": "web"}, False),                             # null: nothing
    (expr("In", "web", "api"), {"tier": "api"}, True),
    (expr("In", "web"), {}, False),                             # In needs the key
    (expr("NotIn", "web"), {}, True),                           # "and all resources with no labels with the key"
    (expr("NotIn", "web"), {"tier": "web"}, False),
    (expr("NotIn", "web"), {"tier": "db"}, True),
    (expr("Exists"), {"tier": ""}, True),
    (expr("Exists"), {"other": "x"}, False),
    (expr("DoesNotExist"), {}, True),
    (expr("DoesNotExist"), {"tier": "x"}, False),
    ({"matchLabels": {"app": "web"}, **expr("Exists")}, {"app": "web"}, False),      # ANDed
    ({"matchLabels": {"replicas": 2}}, {"replicas": "2"}, True),                    # values as the API stores them
], ids=repr)
def test_label_selector_semantics(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


def test_an_unknown_operator_is_not_a_selector():
    with pytest.raises(ValueError, match="Gt"):
        selector_matches(expr("Gt", "1"), {"tier": "2"})


def test_the_reachability_model_and_the_connections_use_this_one():
    # (a webhook's absent selector means every object: plan.rehearsal.up passes {})
    # (plan.connections re-binds `monitoring` to a function: the modules by their names)
    for name in ("plan.reachability", "plan.reachability.cluster", "plan.connections.derivation",
                 "plan.connections.monitoring", "plan.rehearsal.up"):
        assert importlib.import_module(name).selector_matches is selector_matches, name
