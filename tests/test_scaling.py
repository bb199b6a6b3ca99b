"""Performance: the plan's size and time grow linearly with tenants and models.

Adds N tenants, each with its own small model, to the prod stack and plans it in-process. The
resource count must be exactly affine in N (a fixed cost per tenant+model), and the time per added
resource must not grow with N (no quadratic step anywhere in the program or the plan)."""

from __future__ import annotations

import copy
import time

import pytest

from plan.engine import read_stack, run_program
from tests.conftest import stack_doc, write_stack

pytestmark = pytest.mark.slow  # timing: a busy machine makes it slower, not wrong

SIZES = (1, 3, 6)


def with_tenants(n: int) -> dict:
    doc = stack_doc("prod")
    c = doc["config"]
    small = next(m for m in c["agentic-platform:models"] if m["gpus"] == 1)
    for i in range(n):
        name = f"scale-{i}"
        c["agentic-platform:tenants"].append({
            "name": name, "isolation": "namespace", "gpuPools": ["gpu-inference"],
            "quota": {"cpu": "16", "memory": "64Gi", "cpuLimit": "32", "memoryLimit": "128Gi", "gpu": 1,
                      "pods": 20, "services": 10, "persistentVolumeClaims": 5},
            "operatorGroups": [f"{name}-operators"], "viewerGroups": [f"{name}-viewers"]})
        model = copy.deepcopy(small)
        model.update(name=f"model-{i}", tenant=name, minReplicas=1, maxReplicas=1)
        c["agentic-platform:models"].append(model)
    return doc


def plan_size_and_time(tmp_path, n: int, runs: int = 2) -> tuple[int, float]:
    """Resources and the best of `runs` wall times (the best filters out a busy neighbour's noise)."""
    path = write_stack(tmp_path, with_tenants(n), f"scale{n}")
    best, count = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        count = len(run_program(read_stack(str(path))).resources)
        best = min(best, time.perf_counter() - start)
    return count, best


def test_plan_grows_linearly_with_tenants_and_models(tmp_path):
    results = {n: plan_size_and_time(tmp_path, n) for n in SIZES}
    counts = {n: c for n, (c, _) in results.items()}
    per_unit = (counts[SIZES[1]] - counts[SIZES[0]]) / (SIZES[1] - SIZES[0])
    assert per_unit > 0
    # exactly affine: every tenant with its model adds the same resources
    assert counts[SIZES[2]] - counts[SIZES[1]] == per_unit * (SIZES[2] - SIZES[1]), counts
    # time per resource stays flat: the biggest plan costs at most 1.6x per resource what the smallest does
    rate = {n: t / counts[n] for n, (_, t) in results.items()}
    assert rate[SIZES[2]] <= 1.6 * rate[SIZES[0]], {n: f"{t:.2f}s/{counts[n]}" for n, (_, t) in results.items()}
