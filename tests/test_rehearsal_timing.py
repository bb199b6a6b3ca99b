"""The first deploy's estimate (plan/rehearsal/timing.py, clock.py, addons.py): the critical
path, the list schedule, the levers, and the EKS add-ons created beside their nodes."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from domain.durations import durations, timeout_seconds
from plan import rehearsal
from plan.engine import read_stack, run_program
from plan.objects import declared
from plan.rehearsal import timing
from plan.rehearsal.addons import addon_timeout, node_waits
from plan.rehearsal.clock import list_schedule, longest
from plan.rehearsal.facts import ADDON, NODEGROUP
from plan.rehearsal.graph import Graph
from plan.rehearsal.timing import schedule
from plan.rehearsal.world import build_world
from tests.conftest import write_stack
from tests.rehearsal_cases import (
    RELEASE,
    SERVICE,
    annotated,
    edit,
    found,
    one,
    rehearse,
    release,
    res,
    synthetic,
)
from tests.test_scaling import with_tenants


def test_critical_path_is_a_chain_of_waits(any_plan):
    up = any_plan.extras["rehearsal"]["up"]
    path = up["criticalPath"]
    assert path[0]["startMinutes"] == 0 and path[0]["after"] is None
    for prev, step in zip(path, path[1:], strict=False):
        assert step["after"] in ("dependsOn", "input", "parent", "provider", "nodes", "pods"), step
        # "nodes": an EKS add-on created beside its node group, whose end the nodes decided;
        # "pods": a Service whose pods' owner ended later
        assert step["after"] != "nodes" or step["type"] == ADDON, step
        assert step["after"] != "pods" or step["type"] == SERVICE, step
        assert step["startMinutes"] == pytest.approx(prev["startMinutes"] + prev["minutes"], abs=0.15), (prev, step)
    by_urn = {r.urn: r for r in any_plan.resources}
    assert all(by_urn[s["urn"]].type == s["type"] for s in path)
    assert up["criticalPathMinutes"] == pytest.approx(path[-1]["startMinutes"] + path[-1]["minutes"], abs=0.15)
    assert up["minutes"] >= up["criticalPathMinutes"]   # slots (--parallel) only add to the unbounded path


def test_prod_over_its_goal_names_levers(prod_plan):
    up = prod_plan.extras["rehearsal"]["up"]
    assert up["goalMinutes"] == 20
    if up["minutes"] <= 20:
        return
    levers = up["levers"]
    if not levers:   # every edge on the path is one a rule needs: the summary says so
        assert any("no lever" in line for line in rehearsal.summary_lines(prod_plan.extras["rehearsal"]))
        return
    after = [lv["criticalPathAfter"] for lv in levers]
    assert after == sorted(after, reverse=True) and after[0] < up["criticalPathMinutes"]
    assert all(lv["minutesSaved"] >= 0.5 for lv in levers)
    # the model servers are not awaited (pulumi.com/skipAwait): no lever may name them
    served = (":apps/v1:Deployment::llama-3-70b", ":core/v1:Service::llama-3-70b")
    assert not any(lv["kind"] == "await" and any(s in u for u in lv["resources"] for s in served) for lv in levers)
    # no lever drops an edge a rule needs (the node group before Karpenter, Karpenter before its NodePools)
    needed = {release(prod_plan, "karpenter").urn, prod_plan.by_type("aws:eks/nodeGroup:NodeGroup")[0].urn}
    assert not [lv for lv in levers if lv["kind"] == "dependsOn" and needed & set(lv["from"])]


@pytest.mark.slow
def test_fast_and_linear(any_plan):
    best = min(_timed(lambda: rehearsal.rehearse(any_plan, None)) for _ in range(5))
    assert best < 0.5, f"{best:.2f}s"


@pytest.mark.slow
def test_time_grows_linearly_with_tenants_and_models(tmp_path):
    """The rehearsal of prod with 1 and 8 more tenants, each with a model (tests/test_scaling.py's
    variation): the time per resource stays flat (no quadratic step). Without a goal, so without
    the lever search: that adds at most 8 rounds of a bounded number of linear passes, a number
    that depends on the path's shape rather than on the count of resources."""
    rate = {}
    for n in (1, 8):
        plan = run_program(read_stack(str(write_stack(tmp_path, with_tenants(n, n), f"scale{n}"))))
        plan.objects = declared(plan)
        config = SimpleNamespace(environment="scale", models=[])
        # best of 5: milliseconds, so a busy neighbour's noise is filtered out
        best = min(_timed(lambda plan=plan, config=config: rehearsal.rehearse(plan, config)) for _ in range(5))
        rate[n] = best / len(plan.resources)
    assert rate[8] <= 2.5 * rate[1], {n: f"{r * 1e6:.0f} us/resource" for n, r in rate.items()}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_the_estimate_does_not_depend_on_registration_order():
    """Resources registered from callbacks come in a different order from run to run; with more ready
    steps than slots the schedule's ties once followed that order (prod's estimate read 26.5 or 26.7
    minutes from the same code). Ties now break by URN: both orders give one schedule."""
    durations = [300, 60, 240, 120, 180, 30]
    resources = [res(f"step-{i}", "aws:ec2/vpc:Vpc") for i in range(len(durations))]
    dur = {r.urn: d for r, d in zip(resources, durations, strict=True)}
    forward = list_schedule(Graph(resources, set()), dur, parallel=2)
    backward = list_schedule(Graph(resources[::-1], set()), dur, parallel=2)
    assert forward == backward


# ------------------------------------------------------------------ EKS add-ons beside their nodes

def addon(plan, addon_name: str):
    (r,) = [r for r in plan.by_type(ADDON) if r.inputs["addonName"] == addon_name]
    return r


def test_deployment_addons_are_created_beside_the_node_group(any_plan):
    """CoreDNS and the EBS CSI driver no longer wait for the system node group: the provider polls
    them through DEGRADED (addon.go waitAddonCreated), their create timeout covers the node group's
    window, and the rehearsal ends them at the nodes + their pods' start, not before."""
    (ng,) = any_plan.by_type(NODEGROUP)
    w = build_world(any_plan, None)
    sched = schedule(w)
    waits = node_waits(w)
    for name in ("coredns", "aws-ebs-csi-driver"):
        r = addon(any_plan, name)
        assert not w.graph.after(r.urn, ng.urn), f"{name} waits for the node group"
        window = timeout_seconds("nodeGroupCreate") + timeout_seconds("addonCreate")
        assert rehearsal.seconds(r.options["customTimeouts"]["create"]) == window
        nw = waits[r.urn]
        assert nw.beside and nw.needs == (ng.urn,)
        assert sched["finish"][r.urn] == max(sched["begin"][r.urn] + sched["steps"][r.urn].seconds,
                                             sched["finish"][ng.urn] + nw.pod_start_s)
        assert sched["finish"][r.urn] > sched["finish"][ng.urn]   # ACTIVE only once its pods ran
    # the Pod Identity agent before the EBS CSI controller asks it for credentials
    assert w.graph.after(addon(any_plan, "aws-ebs-csi-driver").urn, addon(any_plan, "eks-pod-identity-agent").urn)


def test_await_windows_are_sourced_data_the_rehearsal_reads(any_plan):
    """The provider defaults and margins the components build timeouts from live in
    platform/durations.yaml `timeouts`, each with its source; an add-on without customTimeouts is
    judged against the same add-on default the components add to the node group's window."""
    windows = durations()["timeouts"]
    assert {"nodeGroupCreate", "addonCreate", "addonApiRetries", "nodeTerminationMargin"} <= set(windows)
    assert all(int(w["seconds"]) > 0 and w["source"].strip() for w in windows.values())
    r = addon(any_plan, "eks-node-monitoring-agent")
    assert "customTimeouts" not in r.options or not r.options["customTimeouts"].get("create")
    assert addon_timeout(r) == timeout_seconds("addonCreate")

def after_node_group(plan, addon_name: str):
    """Today's wiring before this change: the add-on depends on the system node group."""
    (ng,) = plan.by_type(NODEGROUP)
    r = addon(plan, addon_name)
    opts = {**r.options, "dependsOn": [*r.options["dependsOn"], ng.urn]}
    return edit(plan, lambda x: x.urn == r.urn, lambda x: {"dependencies": [*x.dependencies, ng.urn], "options": opts})


def test_the_addon_after_the_node_group_ends_later(dev_plan):
    ebs = addon(dev_plan, "aws-ebs-csi-driver").urn
    now = schedule(build_world(dev_plan, None))["finish"][ebs]
    before = schedule(build_world(after_node_group(dev_plan, "aws-ebs-csi-driver"), None))["finish"][ebs]
    assert before - now == 140 - 40   # its own 140 s after the nodes vs the pods' 40 s start


def test_a_node_wait_longer_than_the_addon_timeout(dev_plan):
    r = addon(dev_plan, "aws-ebs-csi-driver")
    short = edit(dev_plan, lambda x: x.urn == r.urn,
                 lambda x: {"options": {**x.options, "customTimeouts": {"create": "2m"}}})
    hz = [h for h in found(rehearse(short), "await-timeout") if r.urn in h["resources"]]
    assert hz and "120s" in hz[0]["message"] and "node group" in hz[0]["message"]
    assert not [h for h in found(rehearse(dev_plan), "await-timeout") if r.urn in h["resources"]]


def test_a_node_group_waiting_for_the_addon_that_waits_for_it(dev_plan):
    (ng,) = dev_plan.by_type(NODEGROUP)
    r = addon(dev_plan, "coredns")
    cyclic = edit(dev_plan, lambda x: x.urn == ng.urn, lambda x: {
        "dependencies": [*x.dependencies, r.urn],
        "options": {**x.options, "dependsOn": [*x.options["dependsOn"], r.urn]}})
    hz = [h for h in found(rehearse(cyclic), "node-source") if r.urn in h["resources"]]
    assert hz and "neither finishes" in hz[0]["message"] and ng.urn in hz[0]["resources"]


def test_addon_pods_that_fit_no_node_source():
    cluster = res("c", "eks:index:Cluster")
    ng = res("ng", NODEGROUP, [cluster.urn], {"taints": [{"key": "dedicated", "value": "x", "effect": "NO_SCHEDULE"}],
                                              "instanceTypes": ["m7i.large"]})
    dns = res("dns", ADDON, [cluster.urn], {"addonName": "coredns"})
    proxy = res("proxy", ADDON, [cluster.urn], {"addonName": "kube-proxy"})   # a DaemonSet: no nodes needed
    hz = found(rehearse(synthetic([cluster, ng, dns, proxy], [])), "node-source")
    assert [h["resources"] for h in hz] == [[dns.urn]] and "taint dedicated" in hz[0]["message"]


def test_a_node_wait_holds_its_slot_until_its_nodes_and_pods():
    """clock: the add-on (10 s of its own) ends at the node group's end + its pods' start (30 s),
    in the unbounded analysis and in the list schedule (where it holds its slot meanwhile)."""
    a, ng, ad = (res(n, "aws:ec2/vpc:Vpc") for n in ("a", "ng", "ad"))
    g = Graph([a, ng, ad], set())
    dur = {a.urn: 0, ng.urn: 100, ad.urn: 10}
    late = {ad.urn: ((ng.urn,), 30)}
    assert longest(g, dur, late=late)[0][ad.urn] == 130
    assert list_schedule(g, dur, parallel=2, late=late) == 130
    assert list_schedule(g, dur, parallel=2) == 100


# ------------------------------------------------------------------------------ levers, and awaits

def test_an_unneeded_depends_on_on_the_critical_path_is_a_lever():
    """The lever search with a lever to find: `b` waits for `slow` by dependsOn without using it."""
    slow = res("slow", "aws:rds/instance:Instance")
    quick = res("quick", "aws:ec2/vpc:Vpc")
    b = res("b", "aws:elasticache/replicationGroup:ReplicationGroup", [slow.urn, quick.urn],
            options={"dependsOn": [slow.urn, quick.urn], "inputDependencies": {}})
    up = rehearse(synthetic([slow, quick, b], [], stack="prod"))["up"]
    assert up["criticalPathMinutes"] == 30 and up["goalMinutes"] == 20
    (lever,) = [lv for lv in up["levers"] if lv["kind"] == "dependsOn"]
    assert lever["from"] == [slow.urn] and lever["to"] == [b.urn]
    # RDS 15 min, ElastiCache 15 min, the VPC seconds: b then starts after the VPC
    assert lever["minutesSaved"] == pytest.approx(14.9) and lever["criticalPathAfter"] == pytest.approx(15.1)
    lines = rehearsal.summary_lines(rehearse(synthetic([slow, quick, b], [], "prod")))
    assert any(line.strip().startswith("-14.9 min: 1 step(s) wait for slow") for line in lines), lines


def test_a_load_balancer_service_waits_for_its_pods_and_its_address_together(prod_plan):
    """pulumi-kubernetes awaits the endpoints and the load balancer's address in one loop
    (provider/pkg/await/service.go): the NLB Service takes the longer of the two, not their sum."""
    nlb = one(prod_plan, SERVICE, "gateway-nlb")
    st = schedule(build_world(prod_plan, None))["steps"][nlb.urn]
    lb = rehearsal.durations()["loadBalancer"]["seconds"]
    assert "meanwhile the load balancer" in st.note
    assert st.seconds == st.apply_s + lb


# ------------------------------------------------------------------------------ Services' awaits

def test_the_nlb_is_created_beside_the_gateway_and_lasts_until_its_proxy_pods(prod_plan):
    """The NLB Service no longer waits for the Gateway: the controller provisions the NLB while
    kgateway starts, and the Service's await (endpoints settled with no not-ready address, and the
    NLB's address) ends when the proxy pods kgateway creates from the Gateway are Ready."""
    nlb = one(prod_plan, SERVICE, "gateway-nlb")
    gw = one(prod_plan, "kubernetes:gateway.networking.k8s.io/v1:Gateway", "gateway-gateway")
    lbc = release(prod_plan, "aws-load-balancer-controller")
    w = build_world(prod_plan, None)
    assert not w.graph.after(nlb.urn, gw.urn) and w.graph.after(nlb.urn, lbc.urn)
    sched = schedule(w)
    st = sched["steps"][nlb.urn]
    assert [ps.obj.source for ps in st.endpoints_from] == [gw.urn]
    lb = rehearsal.durations()["loadBalancer"]["seconds"]
    assert sched["finish"][nlb.urn] > sched["finish"][gw.urn] > sched["begin"][nlb.urn]
    assert sched["finish"][nlb.urn] >= sched["begin"][nlb.urn] + st.apply_s + lb


def test_a_service_longer_than_its_await_waiting_for_pods_made_later(prod_plan):
    nlb = one(prod_plan, SERVICE, "gateway-nlb")
    sched = schedule(build_world(prod_plan, None))
    waited = sched["finish"][nlb.urn] - sched["begin"][nlb.urn]
    assert waited > rehearsal.durations()["loadBalancer"]["seconds"] + 10
    short = annotated(prod_plan, nlb.urn, {"pulumi.com/timeoutSeconds": str(waited - 5)})
    hz = [h for h in found(rehearse(short), "await-timeout") if nlb.urn in h["resources"]]
    assert hz and f"may take {waited}s" in hz[0]["message"]
    enough = annotated(prod_plan, nlb.urn, {"pulumi.com/timeoutSeconds": str(waited + 5)})
    assert not [h for h in found(rehearse(enough), "await-timeout") if nlb.urn in h["resources"]]


def test_a_service_created_before_its_pods_only_settles(dev_plan):
    """Dev's in-cluster PostgreSQL: its StatefulSet waits for its Service, so the Service's await
    sees no pods and ends once its endpoints settle (service.go, pulumi/pulumi-kubernetes#3142),
    and the StatefulSet pays the node launch -- not the Service."""
    svc = one(dev_plan, SERVICE, "langfuse-stores-postgresql")
    sts = one(dev_plan, "kubernetes:apps/v1:StatefulSet", "langfuse-stores-postgresql")
    w = build_world(dev_plan, None)
    assert w.graph.after(sts.urn, svc.urn)
    steps = schedule(w)["steps"]
    assert steps[svc.urn].seconds == steps[svc.urn].apply_s + 10 and "settle" in steps[svc.urn].note
    assert "node 90s" in steps[sts.urn].note


def test_karpenter_crds_wait_for_no_nodes(any_plan):
    (ng,) = any_plan.by_type(NODEGROUP)
    crds = next(r for r in any_plan.by_type(RELEASE) if r.inputs["name"] == "karpenter-crd")
    w = build_world(any_plan, None)
    assert not w.graph.after(crds.urn, ng.urn)
    assert w.graph.after(release(any_plan, "karpenter").urn, crds.urn)


def test_awaits_the_platform_needs_and_the_last_step_are_no_levers(prod_plan, monkeypatch):
    """neededReady (platform/durations.yaml) names awaits others need finished (LangFuse migrates
    against its ClickHouse at start); without the table the search proposes dropping ClickHouse's
    await, with it not. And never the last step's await: that ends `pulumi up` sooner, not LangFuse."""
    table = rehearsal.durations()
    assert "langfuse-stores-clickhouse" in table["neededReady"]
    w = build_world(prod_plan, None)
    sched = schedule(w, 20)
    last = sched["path"][-1]
    assert sched["levers"] == [] and w.graph.by_urn[last].name == "langfuse"
    # (timing's own binding of durations(): the lever search reads neededReady through it)
    monkeypatch.setattr(timing, "durations", lambda: {k: v for k, v in table.items() if k != "neededReady"})
    levers = schedule(build_world(prod_plan, None), 20)["levers"]
    named = {w.graph.by_urn[u].name for lv in levers if lv["kind"] == "await" for u in lv["resources"]}
    assert "langfuse-stores-clickhouse" in named and "langfuse" not in named


@pytest.mark.parametrize("name", ["vpc-cni", "kube-proxy", "eks-pod-identity-agent"])
def test_an_addon_created_before_the_addon_api_is_ready_outwaits_its_retries(dev_plan, name):
    """Created as the cluster turns ACTIVE, each may be retried up to 20 min (durations.yaml
    timeouts.addonApiRetries): the provider's default window alone would end the deploy there."""
    r = addon(dev_plan, name)
    assert addon_timeout(r) >= timeout_seconds("addonCreate") + timeout_seconds("addonApiRetries")
    default = edit(dev_plan, lambda x: x.urn == r.urn,
                   lambda x: {"options": {k: v for k, v in x.options.items() if k != "customTimeouts"}})
    hz = [h for h in found(rehearse(default), "await-timeout") if r.urn in h["resources"]]
    assert hz and "before the add-on API is ready" in hz[0]["message"] and "1200s" in hz[0]["message"]
    assert not [h for h in found(rehearse(dev_plan), "await-timeout") if r.urn in h["resources"]]


def test_an_addon_created_after_the_addon_api_is_ready_keeps_the_default_window(dev_plan):
    r = addon(dev_plan, "eks-node-monitoring-agent")   # after the node group: minutes after ACTIVE
    assert addon_timeout(r) == timeout_seconds("addonCreate")
    assert not [h for h in found(rehearse(dev_plan), "await-timeout") if r.urn in h["resources"]]
