"""Cold-start budget of a model server: how long a replica takes from "pod created" to "serving",
phase by phase, from the sourced figures of platform/coldstart.yaml (docs/models.md).

- node: Karpenter launches a node of the pool (the slowest family of the replica's candidate types);
- pull: the engine image at the standard or the SOCI parallel-pull rate;
- load: the weights by cache kind: `s3` Run:ai streamer (concurrency, `distributed` across the
  tensor-parallel ranks), `pvc` at the cache volume's provisioned throughput (downloaded from Hugging
  Face on the first start only), `nodeLocal` Hugging Face onto the NVMe then read back (every pod:
  an emptyDir lives as long as its pod);
- warm-up: engine init plus torch.compile / CUDA graph capture, cached when the compile cache outlived
  the previous pod (the `pvc` volume holds it; an `s3` model with a known GPU model restores it from
  the models bucket, components/compile_cache.py; otherwise an emptyDir, only across container
  restarts); the model's very first start always compiles (`firstWarmup`).

`new node` = all four; `warm node` (the node holds the image, the weights source is primed) = load +
warm-up. What the platform allows (startup probe, progressDeadlineSeconds, await timeouts) is
`margin` x the budget, at least `floorSeconds`: one figure for the three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from domain.instances import InstanceFacts
from domain.pins import platform_data
from domain.sizing import candidate_types, weights_gb


def figures() -> dict[str, Any]:
    return platform_data("coldstart.yaml")


@dataclass(frozen=True)
class Phase:
    seconds: int
    assumption: str

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "assumption": self.assumption}


@dataclass(frozen=True)
class ColdStart:
    node: Phase
    pull: Phase
    load: Phase
    warmup: Phase
    first_load: Phase          # the model's very first start (the weights source is still empty)
    first_warmup: Phase        # ... and the compile cache too

    @property
    def warm_node_s(self) -> int:
        """A node that holds the image, the weights source primed: what a scale-out on a warm node takes."""
        return self.load.seconds + self.warmup.seconds

    @property
    def total_s(self) -> int:
        """A new node: launch, pull, load, warm-up."""
        return self.node.seconds + self.pull.seconds + self.warm_node_s

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node.to_json(), "pull": self.pull.to_json(), "load": self.load.to_json(),
                "warmup": self.warmup.to_json(), "firstLoad": self.first_load.to_json(),
                "firstWarmup": self.first_warmup.to_json(),
                "warmNodeSeconds": self.warm_node_s, "totalSeconds": self.total_s,
                "startupProbeSeconds": startup_allowance_s(self),
                "progressDeadlineSeconds": rollout_allowance_s(self)}


def _by_prefix(table: dict[str, Any], key: str) -> Any:
    best = max((k for k in table if k != "default" and key.startswith(k)), key=len, default=None)
    return table[best] if best else table["default"]


def image_repository(image: str) -> str:
    """`vllm/vllm-openai` of `docker.io/vllm/vllm-openai:v0.12.0` (registry and tag stripped)."""
    repo = image.split("@")[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts)


def node_phase(types: list[InstanceFacts]) -> Phase:
    table = figures()["node"]
    slowest = max(types, key=lambda f: _by_prefix(table, f.family)["seconds"], default=None)
    if slowest is None:
        return Phase(int(table["default"]["seconds"]), "no candidate instance type: " + table["default"]["source"])
    e = _by_prefix(table, slowest.family)
    return Phase(int(e["seconds"]), f"{slowest.instance_type} (slowest candidate): {e['source']}")


def pull_phase(image: str, soci: bool) -> Phase:
    f = figures()
    repo = image_repository(image)
    entry = next((v for k, v in f["images"].items() if repo == k or repo.endswith("/" + k)), None)
    if entry is None:
        return Phase(0, f"{repo}: no size in platform/coldstart.yaml `images` (add it)")
    rate = f["pull"]["sociGBps" if soci else "standardGBps"]
    mode = "SOCI parallel pull" if soci else "standard pull"
    return Phase(math.ceil(entry["sizeGB"] / rate), f"{entry['sizeGB']} GB at {rate} GB/s ({mode})")


def streamer_concurrency(m: Any) -> int:
    """Run:ai streamer S3 clients per process: `models[i].streamer.concurrency`, else from the weights
    each tensor-parallel rank reads (under 8 GB: 16, else 32, the benchmarked figure)."""
    explicit = getattr(getattr(m, "streamer", None), "concurrency", None)
    return int(explicit) if explicit else (16 if weights_gb(m) / m.gpus < 8 else 32)


def streamer_rate_gbps(concurrency: int) -> float:
    """Per-process rate: the figure of the largest benchmarked concurrency at most `concurrency`
    (below the smallest, proportionally less)."""
    rates = figures()["load"]["s3"]["streamerGBps"]
    lower = [k for k in rates if k <= concurrency]
    if not lower:
        k = min(rates)
        return rates[k] * concurrency / k
    return float(rates[max(lower)])


def soci_enabled(pool: Any) -> bool:
    """Whether the pool's nodes pull with SOCI parallel pull (the compute layer's pool setting
    `gpuPools[].fastImagePull`, components/node_pools.py; off when the pool config has none)."""
    return bool(getattr(pool, "fast_image_pull", False))


def load_phase(m: Any, first: bool) -> Phase:
    f = figures()["load"]
    gb = weights_gb(m)
    hf = f["huggingFace"]["GBps"]
    if m.cache == "s3":
        s3 = f["s3"]
        conc = streamer_concurrency(m)
        ranks = m.gpus
        rate = min(streamer_rate_gbps(conc) * ranks, s3["nodeNetworkGBps"])
        how = f"Run:ai streamer, concurrency {conc}" + (f", distributed over {ranks} ranks" if ranks > 1 else "")
        return Phase(math.ceil(gb / rate), f"{gb:.0f} GB from S3 at {rate:g} GB/s ({how})")
    if m.cache == "pvc":
        mibps = f["pvc"]["throughputMiBps"]
        rate = mibps * 2**20 / 1e9
        read = gb / rate
        if first:
            return Phase(math.ceil(gb / hf + read), f"{gb:.0f} GB from Hugging Face at {hf} GB/s onto the "
                                                    f"volume, then read at {mibps} MiB/s (gp3)")
        return Phase(math.ceil(read), f"{gb:.0f} GB from the cache volume at {mibps} MiB/s (gp3, provisioned)")
    nvme = f["nodeLocal"]["nvmeGBps"]
    return Phase(math.ceil(gb / hf + gb / nvme), f"{gb:.0f} GB from Hugging Face at {hf} GB/s onto the NVMe "
                                                 f"(every pod: the emptyDir starts empty), read at {nvme} GB/s")


def compile_cache_gpu(m: Any, pool: Any) -> str | None:
    """The GPU model (lower case, as Karpenter's instance-gpu-name label) every replica of `m` runs
    on, when deploy time knows it: `gpuModel`, else the one GPU model of the pool's candidate types."""
    if getattr(m, "gpu_model", None):
        return str(m.gpu_model).lower()
    found = {f.gpu_model for f in candidate_types(m, pool)} if pool is not None else set()
    return str(found.pop()).lower() if len(found) == 1 and None not in found else None


def compile_cache_persists(m: Any, pool: Any = None) -> bool:
    """Whether a new pod finds an earlier pod's compile cache: on the `pvc` volume, or restored from
    the models bucket for an `s3` model whose GPU model is known (components/compile_cache.py)."""
    if not (m.engine == "vllm" and getattr(m, "compile_cache", True)):
        return False
    return m.cache == "pvc" or (m.cache == "s3" and compile_cache_gpu(m, pool) is not None)


def warmup_phase(m: Any, pool: Any = None, first: bool = False) -> Phase:
    """Engine init plus compilation: cached when the cache persists, except on the model's very
    first start (`first`), which fills it."""
    w = figures()["warmup"][m.engine]
    persists = compile_cache_persists(m, pool)
    hit = persists and not first
    comp = w["compileCached" if hit else "compile"]
    where = "the pvc volume" if m.cache == "pvc" else "the models bucket"
    why = (f"compile cache from {where} (hit)" if hit else
           f"first start: fills the compile cache on {where}" if persists else "compile cache empty in a new pod")
    return Phase(int(w["init"]["seconds"]) + int(comp["seconds"]),
                 f"init {w['init']['seconds']} s + compile {comp['seconds']} s ({why}): {comp['source']}")


def cache_volume_parameters() -> dict[str, str]:
    """The model cache StorageClass's provisioned gp3 performance (aws-ebs-csi-driver StorageClass
    parameters `iops` and `throughput`, docs/parameters.md): the `pvc` load figure is read at it."""
    pvc = figures()["load"]["pvc"]
    return {"iops": str(pvc["iops"]), "throughput": str(pvc["throughputMiBps"])}


def cold_start(m: Any, pool: Any) -> ColdStart:
    return ColdStart(node=node_phase(candidate_types(m, pool)), pull=pull_phase(m.image, soci_enabled(pool)),
                     load=load_phase(m, first=False), warmup=warmup_phase(m, pool),
                     first_load=load_phase(m, first=True), first_warmup=warmup_phase(m, pool, first=True))


def _allow(seconds: float) -> int:
    f = figures()
    return max(int(f["floorSeconds"]), math.ceil(seconds * float(f["margin"])))


def startup_allowance_s(cs: ColdStart) -> int:
    """The startup probe's window: from container start (image pulled) to serving, the first start
    included (a `pvc` model downloads its weights then; a persistent compile cache is still empty)."""
    return _allow(max(cs.load.seconds + cs.warmup.seconds, cs.first_load.seconds + cs.first_warmup.seconds))


def rollout_allowance_s(cs: ColdStart) -> int:
    """progressDeadlineSeconds and the Pulumi await timeouts: `margin` x (node launch + image pull)
    plus the startup probe's window, so they never expire while the probe still allows the start."""
    return math.ceil((cs.node.seconds + cs.pull.seconds) * float(figures()["margin"])) + startup_allowance_s(cs)
