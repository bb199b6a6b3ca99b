"""The mock engine's outputs (plan/engine.py echo_outputs): the state of a resource goes back to the
program as the stock MockMonitor sends it (pulumi runtime/mocks.py: serialize_properties of the
state), though the properties the mocks echo unchanged are copied from the request instead of
serialized again. Checked on every request of prod's plan: real specs, secrets (nested ones too) and
numbers as the monitor receives them (resource references are URNs by then: RecordingMonitor strips
them first; the plan has no assets or unknowns, as it runs with preview=False)."""

from __future__ import annotations

from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from plan.engine import echo_outputs


def as_program_sees(struct) -> dict:
    return rpc.deserialize_properties(struct)


def test_echoed_outputs_are_what_the_stock_monitor_sends(prod_plan):
    requests = prod_plan.monitor.requests
    assert len(requests) > 300
    secret_requests = 0
    for request, urn in requests:
        inputs = rpc.deserialize_properties(request.object)
        # what the mocks do: echo the inputs, change one, add one
        state = {**inputs, "mockAdded": {"arn": f"arn:{urn}", "n": 3}}
        changed = next(iter(inputs), None)
        if changed is not None:
            state[changed] = "changed by the mocks"
        stock = _sync_await(rpc.serialize_properties(state, {}))
        assert as_program_sees(echo_outputs(request.object, inputs, state)) == as_program_sees(stock), urn
        secret_requests += rpc._special_secret_sig in str(request.object)
    assert secret_requests > 0   # the secrets' shapes were compared too


def test_a_changed_value_is_not_copied_from_the_request(prod_plan):
    request, _urn = next((r, u) for r, u in prod_plan.monitor.requests if "metadata" in r.object.fields)
    inputs = rpc.deserialize_properties(request.object)
    state = {**inputs, "metadata": {**inputs["metadata"], "name": "renamed"}}
    assert as_program_sees(echo_outputs(request.object, inputs, state))["metadata"]["name"] == "renamed"
