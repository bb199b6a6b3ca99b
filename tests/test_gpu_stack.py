"""GPU stack: device plugin (or GPU operator) and DCGM exporter, only on GPU nodes."""

from __future__ import annotations

from components import names
from plan.engine import Plan, read_stack, run_program
from tests.conftest import stack_doc, write_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_AFFINITY = {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}


def _releases(plan: Plan) -> dict[str, dict]:
    return {r.inputs["chart"]: r for r in plan.by_type(RELEASE)}


def _node_exprs(values: dict) -> list[dict]:
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 1
    return terms[0]["matchExpressions"]


def _assert_gpu_only(values: dict) -> None:
    assert GPU_AFFINITY in _node_exprs(values)
    tolerations = values["tolerations"]
    assert names.GPU_TOLERATION in tolerations
    assert {"key": names.TENANT_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert not any(t.get("operator") == "Exists" and "key" not in t for t in tolerations)  # not "everywhere"


def test_device_plugin_runs_only_on_gpu_nodes(any_plan):
    rel = _releases(any_plan)
    plugin = rel["nvidia-device-plugin"]
    assert plugin.inputs["version"] == "0.20.0" and plugin.inputs["namespace"] == "kube-system"
    _assert_gpu_only(plugin.inputs["values"])
    assert plugin.inputs["values"]["resources"]["limits"]
    assert "gpu-operator" not in rel
    karpenter = next(r for c, r in rel.items() if c.endswith("/karpenter"))
    assert karpenter.urn in plugin.dependencies


def test_dcgm_exporter_with_service_monitor(any_plan):
    dcgm = _releases(any_plan)["dcgm-exporter"]
    assert dcgm.inputs["version"] == "4.8.2" and dcgm.inputs["namespace"] == "kube-system"
    v = dcgm.inputs["values"]
    _assert_gpu_only(v)
    assert v["serviceMonitor"]["enabled"] is True
    assert v["serviceMonitor"]["honorLabels"] is True  # keeps the GPU pod's namespace/pod labels
    assert v["resources"]["requests"] and v["resources"]["limits"]
    kps = _releases(any_plan)["oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack"]
    assert kps.urn in dcgm.dependencies  # the ServiceMonitor CRD exists first


def test_gpu_operator_mode(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:gpuStack"] = {"mode": "gpuOperator"}
    rel = _releases(run_program(read_stack(str(write_stack(tmp_path, doc, "op")))))
    assert "nvidia-device-plugin" not in rel
    op = rel["gpu-operator"]
    assert op.inputs["version"] == "v26.7.0"
    v = op.inputs["values"]
    assert v["driver"]["enabled"] is False and v["toolkit"]["enabled"] is False
    assert v["dcgmExporter"]["enabled"] is False and "dcgm-exporter" in rel  # one exporter per node
    assert names.GPU_TOLERATION in v["daemonsets"]["tolerations"]
