"""GPU stack: device plugin (or GPU operator) and DCGM exporter, only on GPU nodes."""

from __future__ import annotations

import pytest

from components import names
from components.config import GpuStackConfig
from components.gpu_stack import dcgm_values
from components.k8s import chart_archive, platform_data
from plan.engine import Plan, read_stack, run_program
from tests.conftest import stack_doc, write_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_AFFINITY = {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}


def _releases(plan: Plan) -> dict[str, dict]:
    """chart key (platform/charts.yaml) -> the release installing it"""

    keys = {chart_archive(k): k for k in platform_data("charts.yaml")}
    return {keys[r.inputs["chart"]]: r for r in plan.by_type(RELEASE)}


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
    karpenter = rel["karpenter"]
    assert karpenter.urn in plugin.dependencies


def test_dcgm_exporter_with_service_monitor(any_plan):
    dcgm = _releases(any_plan)["dcgm-exporter"]
    assert dcgm.inputs["version"] == "4.8.2" and dcgm.inputs["namespace"] == "kube-system"
    v = dcgm.inputs["values"]
    _assert_gpu_only(v)
    assert v["serviceMonitor"]["enabled"] is True
    assert v["serviceMonitor"]["honorLabels"] is True  # keeps the GPU pod's namespace/pod labels
    assert v["resources"]["requests"] and v["resources"]["limits"]
    crds = _releases(any_plan)["prometheus-operator-crds"]
    assert crds.urn in dcgm.dependencies  # the ServiceMonitor CRD exists first


@pytest.mark.program
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


def test_dcgm_scrape_timeout_never_exceeds_the_interval(any_plan, tmp_path):
    sm = _releases(any_plan)["dcgm-exporter"].inputs["values"]["serviceMonitor"]
    assert (sm["interval"], sm["scrapeTimeout"]) == ("15s", "10s")

    fast = dcgm_values(GpuStackConfig.model_validate({"dcgmScrapeInterval": "5s"}))["serviceMonitor"]
    assert (fast["interval"], fast["scrapeTimeout"]) == ("5s", "5s")
    slow = dcgm_values(GpuStackConfig.model_validate({"dcgmScrapeInterval": "1m30s"}))["serviceMonitor"]
    assert slow["scrapeTimeout"] == "10s"


def test_never_is_not_a_scrape_interval():

    problems = list(GpuStackConfig.model_validate({"dcgmScrapeInterval": "Never"}).problems())
    assert [p for p, _ in problems] == ["dcgmScrapeInterval"]
    assert not list(GpuStackConfig.model_validate({"dcgmScrapeInterval": "30s"}).problems())


def test_karpenter_is_scraped(any_plan):
    """Karpenter's metrics (nodes launched, by instance and capacity type) price the GPU nodes. The
    ServiceMonitor matches the chart's Service (tag v1.14.1: selector labels name/instance, port
    http-metrics) and exists only after the CRDs (prometheus-operator-crds) and the Karpenter release."""
    (sm,) = [r for r in any_plan.by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
             if r.inputs["metadata"]["name"] == "karpenter"]
    karpenter = _releases(any_plan)["karpenter"]
    assert sm.inputs["metadata"]["namespace"] == karpenter.inputs["namespace"] == "kube-system"
    spec = sm.inputs["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["kube-system"]}
    # the chart names its objects after the release: release "karpenter" of chart "karpenter"
    assert karpenter.inputs["name"] == "karpenter"
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "karpenter",
                                               "app.kubernetes.io/instance": karpenter.inputs["name"]}
    (ep,) = spec["endpoints"]
    assert ep["port"] == "http-metrics" and ep["path"] == "/metrics"
    crds = _releases(any_plan)["prometheus-operator-crds"]
    assert crds.urn in sm.dependencies and karpenter.urn in sm.dependencies
    assert karpenter.inputs["values"]["serviceMonitor"]["enabled"] is False  # never two of them
