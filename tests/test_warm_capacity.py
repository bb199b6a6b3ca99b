"""Warm capacity (gpuPools[].warmNodes): a static NodePool `<pool>-warm` of the pool's template that
Karpenter keeps at `replicas` nodes; the models of the pool select both by a shared label; the CRD's
static-pool rules and the StaticCapacity feature gate are admission checks; the cost floor, the
cold-start section and the pre-flight's vCPU quotas count the warm nodes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from components import names
from components.config import ConfigError
from domain.durations import timeout_seconds
from domain.instances import instance_facts
from domain.units import duration_seconds
from plan.admission.node_pools import check as node_pool_check
from plan.coldstart import warm_starts
from plan.cost import estimate
from plan.engine import Plan
from plan.objects import K8sObject
from plan.preflight import pool_demands
from plan.preflight.quotas import pool_needs
from tests.conftest import EXAMPLES, dev_pool_problems, plan_file, variant_plan, write_stack
from tests.test_cost import _config

EXAMPLE = "tenants"          # examples/Pulumi.tenants.yaml: gpu-inference keeps 1 warm node
POOL, WARM = "gpu-inference", names.warm_pool_name("gpu-inference")


def _objects(plan, kind: str) -> dict[str, K8sObject]:
    return {o.name: o for o in plan.objects if o.kind == kind}


def test_the_warm_pool_is_the_pools_template_with_replicas_and_only_a_node_limit():
    plan = variant_plan(EXAMPLE)
    pools = _objects(plan, "NodePool")
    dynamic, warm = pools[POOL].manifest["spec"], pools[WARM].manifest["spec"]
    assert warm["replicas"] == 1 and warm["limits"] == {"nodes": "1"} and "weight" not in warm
    assert warm["template"] == dynamic["template"]           # node class, requirements, labels, taints
    assert dynamic["template"]["metadata"]["labels"][names.GPU_POOL_LABEL] == POOL
    assert "replicas" not in dynamic and names.GPU_RESOURCE in dynamic["limits"]
    # the model selects the label both pools' nodes carry, not karpenter.sh/nodepool (one pool's name)
    model = _objects(plan, "Deployment")["qwen-1-5b"].manifest["spec"]["template"]["spec"]
    assert model["nodeSelector"] == {names.GPU_POOL_LABEL: POOL}
    gates = [e["value"] for o in _objects(plan, "Deployment").values() if o.name == "karpenter"
             for c in o.manifest["spec"]["template"]["spec"]["containers"] for e in c.get("env") or []
             if e["name"] == "FEATURE_GATES"]
    assert gates and "StaticCapacity=true" in gates[0]
    assert not [f for f in plan.extras["admission"] if f["check"] == "nodePool"]


def test_the_plan_says_which_models_start_on_a_warm_node_and_costs_it():
    plan = variant_plan(EXAMPLE)
    warm = plan.extras["coldStart"]["qwen-1-5b"]["warmCapacity"]
    cs = plan.extras["coldStart"]["qwen-1-5b"]
    assert warm["pool"] == WARM and warm["minReplicas"] == 1 and warm["scaleOutNodesLeft"] == 0
    assert warm["seconds"] == cs["pull"]["seconds"] + cs["warmNodeSeconds"] < cs["totalSeconds"]
    (line,) = [x for x in plan.extras["cost"]["pools"] if x["name"] == POOL]
    assert "1 warm node(s)" in line["basis"]


def _static(name: str = WARM, **spec: Any) -> K8sObject:
    return K8sObject({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
                      "spec": {"replicas": 1, "limits": {"nodes": "1"}, **spec}}, source="urn:test")


def _karpenter(static_capacity: bool | None) -> K8sObject:
    """The controller's Deployment; StaticCapacity None: FEATURE_GATES does not name it (default off)."""
    named = "" if static_capacity is None else f",StaticCapacity={str(static_capacity).lower()}"
    gates = f"ReservedCapacity=true,NodeRepair=true{named},CapacityBuffer=false"
    return K8sObject({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "karpenter"},
                      "spec": {"template": {"spec": {"containers": [
                          {"name": "controller", "env": [{"name": "FEATURE_GATES", "value": gates}]}]}}}},
                     source="urn:test", release="karpenter")


def _messages(*objects: K8sObject) -> list[str]:
    return [msg for _, msg in node_pool_check(list(objects))]


def test_a_static_pool_with_the_gate_on_and_a_node_limit_is_admitted():
    assert _messages(_static(), _karpenter(True)) == []


@pytest.mark.parametrize(("obj", "gate", "expected"), [
    (_static(limits={"nodes": "1", "nvidia.com/gpu": "8"}), True, "only 'limits.nodes'"),
    (_static(weight=10), True, "'weight' is not supported"),
    (_static(), False, "StaticCapacity is off"),
    (_static(), None, "StaticCapacity is off"),
    (_static(name="gpu-inference"), True, "exactly when its name ends with '-warm'"),
    (K8sObject({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x-warm"},
                "spec": {"limits": {"nvidia.com/gpu": "8"}}}, source="urn:test"), True, "exactly when"),
])
def test_the_crds_static_rules_and_the_gate_are_checked(obj, gate, expected):
    (msg,) = _messages(obj, _karpenter(gate))
    assert expected in msg


def test_a_static_pool_without_a_rendered_controller_is_reported():
    (msg,) = _messages(_static())
    assert "no Karpenter controller is rendered" in msg


def test_pool_names_ending_in_warm_are_refused():
    assert dev_pool_problems("gpuPools[0].name", name="big-warm") == [
        ("gpuPools[0].name", "'big-warm' ends with '-warm', kept for the pools of warm nodes (warmNodes)")]
    assert dev_pool_problems("gpuPools[0].name", name="big-warmer") == []
    assert dev_pool_problems("gpuPools[0].warmNodes", warmNodes=-1)
    assert dev_pool_problems("gpuPools[0]", warmNodes=2) == []


def _dev_with_warm(n: int):
    cfg = _config("dev")
    pools = [p.model_dump(by_alias=True) for p in cfg.gpu_pools]
    pools[0]["warmNodes"] = n
    models = [m.model_dump(by_alias=True, exclude_none=True) for m in cfg.models]
    for m in models:
        m["minReplicas"] = 0
    try:
        return _config("dev", gpuPools=pools, models=models)
    except ConfigError as err:   # pragma: no cover - a broken fixture, not a result
        raise AssertionError(err.problems) from err


def test_warm_nodes_raise_the_floor_and_the_ceiling():
    cold, warm = estimate(_dev_with_warm(0), "us-west-2"), estimate(_dev_with_warm(2), "us-west-2")
    pool = _dev_with_warm(2).gpu_pools[0].name
    before, after = ([x for x in d["pools"] if x["name"] == pool][0] for d in (cold, warm))
    assert before["floor"] == 0 and after["floor"] > 0            # no model replica runs, the warm nodes do
    assert after["ceiling"] > before["ceiling"]
    assert warm["total"]["floorHourly"] > cold["total"]["floorHourly"]


def test_models_are_placed_on_warm_nodes_in_order_and_only_if_every_type_fits():
    cfg = _dev_with_warm(1)
    models = [m.model_dump(by_alias=True, exclude_none=True) for m in cfg.models]
    first = copy.deepcopy(models[0])
    models = [{**first, "minReplicas": 1}, {**first, "name": "second", "minReplicas": 1}]
    cfg = _config("dev", gpuPools=[p.model_dump(by_alias=True) for p in cfg.gpu_pools], models=models)
    placed = warm_starts(cfg)
    assert placed[first["name"]]["minReplicas"] == 1 and placed["second"]["minReplicas"] == 0
    assert placed["second"]["scaleOutNodesLeft"] == 0


def test_preflight_counts_the_warm_nodes_vcpus():
    cfg = _dev_with_warm(2)
    (demand,) = [d for d in pool_demands(cfg) if d.name == cfg.gpu_pools[0].name]
    assert demand.warm_nodes == 2
    facts = [instance_facts(t) for t in demand.instance_types]
    base = pool_needs(demand.name, facts, demand.capacity_types, demand.gpu_limit, demand.vcpu_limit, [])
    more = pool_needs(demand.name, facts, demand.capacity_types, demand.gpu_limit, demand.vcpu_limit, [], 2)
    assert [n.vcpus for n in more] > [n.vcpus for n in base]
    assert all("2 warm node(s)" in n.basis for n in more)


NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _node_pools(plan: Plan) -> dict[str, Any]:
    return {r.inputs["metadata"]["name"]: r for r in plan.by_type(NODE_POOL)}


def _delete_timeout(plan: Plan, urn: str) -> str | None:
    (req,) = [req for req, u in plan.monitor.requests if u == urn]
    return req.customTimeouts.delete


def test_warm_nodes_to_zero_deletes_the_static_pool(tmp_path):
    """gpuPools[].warmNodes 1 -> 0 on the tenants example: `<pool>-warm` leaves the program, so
    `pulumi up` deletes it (its URN is gone; no static pool stays at replicas 0, which would keep
    the CRD's static-ness and the gate's need), the StaticCapacity gate goes off with the last one,
    and the pool's own nodes lose the shared label (drift once, docs/compute.md) while the models
    select karpenter.sh/nodepool again. The delete is awaited as long as Karpenter's drain may take
    (terminationGracePeriod + margin), not pulumi-kubernetes' 10 minutes."""
    before = variant_plan(EXAMPLE)
    doc = yaml.safe_load((EXAMPLES / f"Pulumi.{EXAMPLE}.yaml").read_text())
    (pool,) = [p for p in doc["config"]["agentic-platform:gpuPools"] if p["name"] == POOL]
    pool["warmNodes"] = 0
    after = plan_file(str(write_stack(tmp_path, doc, EXAMPLE)), analysed=False)
    warm = _node_pools(before)[WARM]
    assert WARM in _node_pools(before) and WARM not in _node_pools(after)
    assert warm.urn not in {r.urn for r in after.resources}
    assert not [n for n, r in _node_pools(after).items() if "replicas" in r.inputs["spec"]]
    grace = duration_seconds(warm.inputs["spec"]["template"]["spec"]["terminationGracePeriod"])
    assert _delete_timeout(before, warm.urn) == f"{grace + timeout_seconds('nodeTerminationMargin')}s" and grace >= 3600
    for plan, gate in ((before, True), (after, None)):
        (release,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("name") == "karpenter"]
        assert release.inputs["values"]["settings"]["featureGates"].get("staticCapacity") is gate
    labels = _node_pools(after)[POOL].inputs["spec"]["template"]["metadata"]["labels"]
    assert names.GPU_POOL_LABEL not in labels
    (model,) = [r for r in after.by_type("kubernetes:apps/v1:Deployment") if r.inputs["metadata"]["name"] == "qwen-1-5b"]
    assert model.inputs["spec"]["template"]["spec"]["nodeSelector"] == {names.NODEPOOL_LABEL: POOL}
