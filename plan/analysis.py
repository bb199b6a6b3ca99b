"""What the plan derives from the declared resources after the program ran: every Kubernetes
object (declared, and rendered from each Helm release by real Helm), their admission as the API
server would do it, policy findings (the CrossGuard pack, in-process, over declared resources and
rendered objects) and reachability."""

from __future__ import annotations

from components.config import PlatformConfig
from plan import objects as k8s_objects
from plan.admission.admit import admit, summary_lines
from plan.engine import Plan
from plan.operators import operator_objects
from plan.render import render_all
from policies.harness import evaluate, evaluate_objects


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
    plan.extras.setdefault("_summary", {})["Admission"] = summary_lines(plan.extras["admission"], plan.objects)
    # Tenancy: every connection the platform makes, judged pod by pod against every NetworkPolicy
    # (declared and rendered); a needed connection denied, or a monitor that scrapes nothing, rejects.
    from plan import connections
    plan.extras["reachability"] = connections.reachability(plan)
    plan.extras["admission"] += connections.rejections(plan.extras["reachability"])
    plan.extras["_summary"]["Reachability"] = connections.summary_lines(plan.extras["reachability"])
    # The first `pulumi up` and `pulumi destroy`, ordered and timed (docs/rehearsal.md); a mandatory hazard exits 1.
    from plan import rehearsal
    plan.extras["rehearsal"] = rehearsal.rehearse(plan, config)
    plan.extras["_summary"]["Rehearsal"] = rehearsal.summary_lines(plan.extras["rehearsal"])
    plan.extras["admission"] += rehearsal.rejections(plan.extras["rehearsal"])
