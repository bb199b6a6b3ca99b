"""The offline plan's stack files: by path and by name, secure values as secrets (the CLI itself:
tests/test_cli.py, the slow tier)."""

from __future__ import annotations

from plan import engine
from plan.engine import ROOT, read_stack
from tests.conftest import stack_doc


def test_stack_file_by_path_and_name(tmp_path):
    src = (ROOT / "Pulumi.dev.yaml").read_text()
    (tmp_path / "Pulumi.staging-eu.yaml").write_text(src)
    (tmp_path / "custom.yaml").write_text(src)
    assert read_stack(str(tmp_path / "Pulumi.staging-eu.yaml")).name == "staging-eu"
    assert read_stack(str(tmp_path / "custom.yaml")).name == "custom"
    assert read_stack("dev").name == "dev"


def test_the_mock_engine_records_no_stack_traces(dev_plan):
    """plan.engine.reset replaces the SDK's per-resource stack walk (pulumi.runtime.resource
    `_get_stack_trace`): the name it patches must still be the one register_resource calls, and the
    plan's requests carry no stack trace."""
    import inspect

    from pulumi.runtime import resource as sdk_resource

    assert sdk_resource._get_stack_trace is engine._no_stack_trace
    assert "_get_stack_trace()" in inspect.getsource(sdk_resource.register_resource)
    requests = [req for req, _urn in dev_plan.monitor.requests]
    assert requests and not any(req.stackTrace.frames or req.HasField("sourcePosition") for req in requests)


def test_secure_values_reach_the_program_as_secrets(tmp_path):
    sf = read_stack("dev")
    for key in sf.secret_keys:
        assert sf.config[key].startswith("mock-secret-")


MODEL_DEPLOYMENT = "agentic:models:ModelDeployment$kubernetes:apps/v1:Deployment::"


def test_a_route_waits_only_for_the_models_it_routes_to(kgw_plan):
    """A model's HTTPRoute depends on its model's serving resources (and its fallback's and
    canary's); a tenant's on none of them (a rule's missing backend answers 500 alone, Gateway API):
    the dependencies grow with the models, not with tenants x models (the SDK checks each
    dependency for cycles, which made the program quadratic). On prod's kgateway variant, where
    kgateway routes every model itself."""
    by_name = {r.inputs["metadata"]["name"]: r for r in kgw_plan.by_type("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute")}
    model_routes = {n.removeprefix("model-"): r for n, r in by_name.items() if n.startswith("model-")}
    assert len(model_routes) >= 3
    settings = {r["model"]: r for r in stack_doc("prod")["config"]["agentic-platform:gateway"].get("routes") or []}
    assert any(r.get("fallback") or r.get("canary") for r in settings.values())
    for model, route in model_routes.items():
        waits_for = {u.split(MODEL_DEPLOYMENT)[1].removesuffix("-deployment") for u in route.dependencies
                     if MODEL_DEPLOYMENT in u}
        cfg = settings.get(model, {})
        assert waits_for == {model, cfg.get("fallback"), (cfg.get("canary") or {}).get("model")} - {None}, model
    for name, route in by_name.items():
        if name.startswith("tenant-"):
            assert route.inputs["spec"]["rules"], name
            assert not [u for u in route.dependencies if "agentic:models:" in u], name
            assert not {r.urn for r in model_routes.values()} & set(route.dependencies), name
