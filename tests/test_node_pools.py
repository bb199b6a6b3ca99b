"""The node side of a fast, predictable start: SOCI parallel pull in the node user data, GPU pools
that never consolidate a node a model runs on, capacity reservations in the EC2NodeClass."""

from __future__ import annotations

import ast
import email
import tomllib
from typing import Any

import pytest
import yaml

from components.config import GpuPoolConfig
from components.node_pools import SOCI_ROOT, gpu_user_data, node_class_spec
from plan.engine import ROOT
from tests.conftest import dev_pool_problems

NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"


def _mime_parts(user_data: str) -> dict[str, str]:
    msg = email.message_from_string(user_data)
    assert msg.is_multipart() and msg.get_content_type() == "multipart/mixed"
    return {p.get_content_type(): p.get_payload() for p in msg.get_payload()}


def _pool(**over: Any) -> GpuPoolConfig:
    return GpuPoolConfig.model_validate({"name": "gpu", "instanceTypes": ["g5.xlarge"], "gpuLimit": 4, **over})


def _problems(**pool: Any) -> list[tuple[str, str]]:
    return dev_pool_problems("gpuPools[0]", **pool)


# ------------------------------------------------------------------------------ SOCI parallel pull

def test_gpu_al2023_nodes_get_persistence_mode_and_fast_image_pull(any_plan):
    classes = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in any_plan.by_type(NODECLASS)}
    assert "userData" not in classes["platform"]  # CPU nodes: nothing to add
    gpu = [n for n, s in classes.items() if n != "platform" and s["amiSelectorTerms"][0]["alias"].startswith("al2023@")]
    assert gpu
    for name in gpu:
        parts = _mime_parts(classes[name]["userData"])
        script = parts["text/x-shellscript"]
        assert script.startswith("#!/bin/bash\n") and "nvidia-smi -pm 1 || true" in script and "modprobe" not in script
        node_config = yaml.safe_load(parts["application/node.eks.aws"])
        assert node_config["kind"] == "NodeConfig" and node_config["spec"]["featureGates"] == {"FastImagePull": True}
        # Every GPU type here has NVMe (RAID0): SOCI's root moves onto the array, in unit and containerd alike.
        assert classes[name]["instanceStorePolicy"] == "RAID0"
        assert f"--root {SOCI_ROOT}" in script
        exports = tomllib.loads(node_config["spec"]["containerd"]["config"])
        assert exports["proxy_plugins"]["soci"]["exports"]["root"] == SOCI_ROOT


def test_fast_image_pull_off_leaves_only_the_persistence_script():
    parts = _mime_parts(gpu_user_data(_pool(fastImagePull=False)))
    assert list(parts) == ["text/x-shellscript"] and "soci" not in parts["text/x-shellscript"]


def test_bottlerocket_gets_soci_toml_settings_not_a_script():
    spec = node_class_spec(_pool(amiFamily="bottlerocket", rootVolumeThroughput=600), "c", "role", {})
    settings = tomllib.loads(spec["userData"])
    assert settings["settings"]["container-runtime"] == {"snapshotter": "soci"}
    assert settings["settings"]["container-runtime-plugins"]["soci-snapshotter"]["pull-mode"] == "parallel-pull-unpack"
    os_vol, data_vol = spec["blockDeviceMappings"]
    assert "throughput" not in os_vol["ebs"] and data_vol["ebs"]["throughput"] == 600
    assert "userData" not in node_class_spec(_pool(amiFamily="bottlerocket", fastImagePull=False), "c", "role", {})


@pytest.mark.parametrize(("pool", "path"), [
    # Bottlerocket keeps images on the EBS data volume: parallel pull needs >= 600 MiB/s there.
    ({"amiFamily": "bottlerocket"}, "gpuPools[0].rootVolumeThroughput"),
    ({"amiFamily": "bottlerocket", "rootVolumeThroughput": 500}, "gpuPools[0].rootVolumeThroughput"),
])
def test_fast_image_pull_on_a_slow_volume_is_refused(pool, path):
    problems = _problems(**pool)
    assert [p for p, _ in problems] == [path], problems
    assert "600" in problems[0][1]


@pytest.mark.parametrize("pool", [
    {"amiFamily": "bottlerocket", "rootVolumeThroughput": 600},
    {"amiFamily": "bottlerocket", "fastImagePull": False},
    {},  # AL2023 on g5 (NVMe): images on the instance store, the gp3 baseline does not matter
])
def test_fast_image_pull_accepts_a_fast_enough_disk(pool):
    assert _problems(**pool) == []


# ------------------------------------------------------------------------------ consolidation

def test_gpu_pools_only_consolidate_empty_nodes(any_plan):
    for r in any_plan.by_type(NODEPOOL):
        spec = r.inputs["spec"]
        if spec["template"]["metadata"]["labels"].get("agentic.platform/node-role") != "gpu":
            continue
        assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty", r.name
        assert spec["disruption"]["consolidateAfter"] != "30s", r.name


def test_defaults_never_consolidate_an_underutilized_gpu_node():
    pool = _pool()
    assert (pool.consolidation_policy, pool.consolidate_after, pool.fast_image_pull) == ("WhenEmpty", "10m", True)


def test_underutilized_consolidation_of_gpu_nodes_is_refused_unless_budgeted_to_zero():
    problems = _problems(consolidationPolicy="WhenEmptyOrUnderutilized", budgets=[{"nodes": "20%"}])
    assert [p for p, _ in problems] == ["gpuPools[0].consolidationPolicy"], problems
    # A scheduled zero budget is not enough: outside its window Karpenter would consolidate.
    problems = _problems(consolidationPolicy="WhenEmptyOrUnderutilized",
                         budgets=[{"nodes": "0", "reasons": ["Underutilized"], "schedule": "0 9 * * *", "duration": "8h"}])
    assert [p for p, _ in problems] == ["gpuPools[0].consolidationPolicy"], problems
    assert _problems(consolidationPolicy="WhenEmptyOrUnderutilized",
                     budgets=[{"nodes": "20%"}, {"nodes": "0", "reasons": ["Underutilized"]}]) == []


# ------------------------------------------------------------------------------ capacity reservations

def test_capacity_reservations_become_selector_terms():
    pool = _pool(capacityTypes=["reserved", "on-demand"],
                 capacityReservations=[{"id": "cr-0123456789abcdef0"},
                                       {"tags": {"team": "ml"}, "ownerID": "111122223333"},
                                       {"instanceMatchCriteria": "targeted"}])
    spec = node_class_spec(pool, "c", "role", {})
    assert spec["capacityReservationSelectorTerms"] == [
        {"id": "cr-0123456789abcdef0"}, {"tags": {"team": "ml"}, "ownerID": "111122223333"},
        {"instanceMatchCriteria": "targeted"}]
    assert "capacityReservationSelectorTerms" not in node_class_spec(_pool(), "c", "role", {})


@pytest.mark.parametrize(("pool", "path"), [
    ({"capacityTypes": ["reserved"]}, "gpuPools[0].capacityReservations"),
    ({"capacityReservations": [{"id": "cr-0abc"}]}, "gpuPools[0].capacityTypes"),
    ({"capacityTypes": ["reserved"], "capacityReservations": [{"id": "cr-0abc", "tags": {"a": "b"}}]},
     "gpuPools[0].capacityReservations[0].id"),
    ({"capacityTypes": ["reserved"], "capacityReservations": [{"ownerID": "111122223333"}]},
     "gpuPools[0].capacityReservations[0]"),
])
def test_bad_capacity_reservations_are_key_path_errors(pool, path):
    problems = _problems(**pool)
    assert [p for p, _ in problems] == [path], problems


# ------------------------------------------------------------------------------ no side effects

def _calls_and_imports(path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return imports, calls


def test_no_component_reaches_aws_or_reads_pulumi_config():
    """Issue 15 item 4: the pre-flight runs before the program builds anything (plan/preflight/,
    from __main__.py); below the config loader nothing calls boto3 or reads Pulumi config."""
    for path in sorted((ROOT / "components").rglob("*.py")):
        imports, calls = _calls_and_imports(path)
        assert not imports & {"boto3", "botocore"}, path
        if path.name != "loader.py":
            assert not {c for c in calls if c.endswith("pulumi.Config") or c == "Config"}, path
    imports, calls = _calls_and_imports(ROOT / "__main__.py")
    assert "stop_unless_capacity" in calls and "AgenticPlatform" in calls
    source = (ROOT / "__main__.py").read_text(encoding="utf-8")
    assert source.index("stop_unless_capacity(") < source.index("AgenticPlatform(")
