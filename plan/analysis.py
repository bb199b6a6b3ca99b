"""What the plan derives from the declared resources after the program ran: policy findings
(the CrossGuard pack, in-process) and reports other layers add (e.g. reachability)."""

from __future__ import annotations

from components.config import PlatformConfig
from plan.engine import Plan


def analyse(plan: Plan, config: PlatformConfig) -> None:
    """Fill `plan.policies` and `plan.extras`."""
    try:
        from policies.harness import evaluate
    except ImportError:  # the pack lands with its own issue
        evaluate = None
    if evaluate is not None:
        states = {urn: reg.state for urn, reg in plan.monitor.resources.items()}
        plan.policies = evaluate(plan.monitor.requests, states, config.environment)
    # Tenancy: which namespace may connect to which, from the declared NetworkPolicies.
    from plan.reachability import matrix_lines, of_plan
    plan.extras["reachability"] = of_plan(plan)
    plan.extras.setdefault("_summary", {})["Reachability"] = matrix_lines(plan.extras["reachability"])
