"""What the plan derives from the declared resources after the program ran: every Kubernetes
object (declared, and rendered from each Helm release by real Helm), their admission as the API
server would do it, policy findings (the CrossGuard pack, in-process, over declared resources and
rendered objects), then the sections (SECTIONS): reachability, the rehearsal of the first
`pulumi up`/`destroy`, ...

A section is one analysis of the planned objects: it puts its result under its key in `plan.extras`
(so into the plan JSON), its summary lines under its title, and the findings that fail the plan
(exit 1) into `plan.extras["admission"]`. Adding one is a `Section(...)` appended to SECTIONS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.config import PlatformConfig
from components.gateway_tenants import tenant_policies, tenant_policy_lines
from plan import coldstart, connections, cost, cost_allocation, rehearsal
from plan import objects as k8s_objects
from plan.admission.admit import admit, summary_lines
from plan.engine import Plan
from plan.operators import operator_objects
from plan.policy_harness import evaluate, evaluate_objects
from plan.render import render_all
from policies.stack_rules import cost_within_budget


@dataclass(frozen=True)
class Section:
    """One analysis of the plan, run after admission, in SECTIONS order."""
    key: str                                              # plan.extras[key], the plan JSON's key
    title: str                                            # its heading in the summary
    compute: Callable[[Plan, PlatformConfig], Any]        # the result (JSON-serialisable)
    summary: Callable[[Any], list[str]]                   # the result's summary lines
    rejections: Callable[[Any], list[dict[str, Any]]] = lambda _result: []   # findings that exit 1
    policies: Callable[[Any], list[dict[str, Any]]] = lambda _result: []     # policy findings it adds


SECTIONS: list[Section] = [
    # Tenancy: every connection the platform makes, judged pod by pod against every NetworkPolicy
    # (declared and rendered); a needed connection denied, or a monitor that scrapes nothing, rejects.
    Section("reachability", "Reachability", lambda plan, _config: connections.reachability(plan),
            connections.summary_lines, connections.rejections),
    # The first `pulumi up` and `pulumi destroy`, ordered and timed (docs/rehearsal.md); a mandatory hazard exits 1.
    Section("rehearsal", "Rehearsal", rehearsal.rehearse, rehearsal.summary_lines, rehearsal.rejections),
    # Models: each one's cold-start budget and GPU fit (docs/models.md).
    Section("coldStart", "Cold start", coldstart.cold_starts, coldstart.summary_lines),
    # What the fleet costs per hour, floor and ceiling (docs/compute.md); a ceiling over `budget` is mandatory.
    Section("cost", "Cost", cost.compute, cost.summary_lines, policies=cost_within_budget),
    # OpenCost and each tenant's daily cost alert threshold, as declared (docs/cost.md).
    Section("costAllocation", "Cost allocation", cost_allocation.compute, cost_allocation.summary_lines),
    # Each tenant's budgets at the gateway and the prompt-cache salt policy (docs/gateway.md).
    Section("tenants", "Tenants at the gateway",
            lambda _plan, config: tenant_policies(config.gateway, [t.name for t in config.tenants])
            if config.gateway is not None else {}, tenant_policy_lines),
]


def analyse(plan: Plan, config: PlatformConfig) -> None:
    """Fill `plan.objects`, `plan.policies` and `plan.extras`."""
    kube_version = f"{config.cluster.version}.0"
    declared = k8s_objects.declared(plan)
    plan.objects = declared + render_all(plan, declared, kube_version)
    plan.objects += operator_objects(plan.objects)   # what prometheus-operator, kagent, kgateway create

    states = {urn: reg.state for urn, reg in plan.monitor.resources.items()}
    plan.policies = evaluate(plan.monitor.requests, states, config.environment)
    # The chart objects CrossGuard cannot see under `pulumi preview` (docs/policies.md).
    plan.policies += evaluate_objects([(o.manifest, o.source, o.ref) for o in plan.objects if o.release or o.controller],
                                      config.environment)

    plan.extras["admission"] = admit(plan.objects, plan.resources, kube_version=kube_version)
    summary = plan.extras.setdefault("_summary", {})
    summary["Admission"] = summary_lines(plan.extras["admission"], plan.objects)
    for section in SECTIONS:
        result = section.compute(plan, config)
        plan.extras[section.key] = result
        summary[section.title] = section.summary(result)
        plan.extras["admission"] += section.rejections(result)
        plan.policies += section.policies(result)
