"""Variations of the real plans and small synthetic plans for the rehearsal tests
(tests/test_rehearsal*.py)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from plan import rehearsal
from plan.engine import Plan, Resource
from plan.objects import K8sObject

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"



def variant(plan: Plan, resources: list[Resource] | None = None, objects: list[K8sObject] | None = None) -> Plan:
    """A copy of a plan with other resources or objects (the monitor, for mocked values, is shared)."""
    return dataclasses.replace(plan, resources=list(plan.resources if resources is None else resources),
                               objects=list(plan.objects if objects is None else objects), extras={}, policies=[])


def edit(plan: Plan, pick: Callable[[Resource], bool], change: Callable[[Resource], dict[str, Any]]) -> Plan:
    out = [dataclasses.replace(r, **change(r)) if pick(r) else r for r in plan.resources]
    assert out != plan.resources, "the variation changed nothing"
    return variant(plan, resources=out)


def strip(plan: Plan, pick: Callable[[Resource], bool], drop: Callable[[str], bool]) -> Plan:
    """`pick`ed resources no longer depend on the URNs `drop` selects (explicitly or through inputs)."""
    def change(r: Resource) -> dict[str, Any]:
        opts = copy.deepcopy(r.options)
        opts["dependsOn"] = [u for u in opts.get("dependsOn", []) if not drop(u)]
        opts["inputDependencies"] = {k: [u for u in v if not drop(u)] for k, v in opts.get("inputDependencies", {}).items()}
        return {"dependencies": [u for u in r.dependencies if not drop(u)], "options": opts}
    return edit(plan, pick, change)


def release(plan: Plan, name: str) -> Resource:
    (r,) = [r for r in plan.by_type(RELEASE) if r.inputs["name"] == name]
    return r


def one(plan: Plan, typ: str, name: str) -> Resource:
    (r,) = [r for r in plan.by_type(typ) if r.name == name]
    return r


def found(result: dict[str, Any], cls: str, level: str = "mandatory") -> list[dict[str, Any]]:
    return [h for part in ("up", "destroy") for h in result[part]["hazards"] if h["class"] == cls and h["level"] == level]


def rehearse(plan: Plan) -> dict[str, Any]:
    return rehearsal.rehearse(plan, None)


def synthetic(resources: list[Resource], objects: list[K8sObject], stack: str = "synthetic") -> Plan:
    return Plan("agentic-platform", stack, resources, {}, None, objects=objects)  # type: ignore[arg-type]


def res(name: str, typ: str, deps: list[str] = (), inputs: dict | None = None, **kw: Any) -> Resource:
    urn = f"urn:pulumi:synthetic::agentic-platform::{typ}::{name}"
    return Resource(urn=urn, type=typ, name=name, parent=None, custom=True, protect=kw.pop("protect", False),
                    dependencies=list(deps), inputs=inputs or {}, options=kw.pop("options", {}), **kw)


def annotated(plan: Plan, urn: str, annotations: dict[str, str | None]) -> Plan:
    """A copy of a plan whose objects from `urn` carry other annotations (None removes one)."""
    objs = []
    for o in plan.objects:
        if o.source == urn:
            m = copy.deepcopy(o.manifest)
            ann = m["metadata"].setdefault("annotations", {})
            for k, v in annotations.items():
                ann.pop(k, None) if v is None else ann.__setitem__(k, v)
            o = dataclasses.replace(o, manifest=m)
        objs.append(o)
    return variant(plan, objects=objs)
