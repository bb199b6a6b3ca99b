"""Facts about EC2 instance types, read from ``platform/instances.yaml``.

The YAML file is the single source of truth (its header says where the numbers
come from). It is loaded once per process and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from domain.yamlfile import read_yaml

INSTANCES_FILE = Path(__file__).resolve().parent.parent / "platform" / "instances.yaml"
"""Path of the instance facts file (repo root / platform / instances.yaml)."""

# YAML key -> dataclass field.
_FIELDS = {
    "family": "family",
    "gpus": "gpus",
    "gpuModel": "gpu_model",
    "gpuMemoryGiB": "gpu_memory_gib",
    "vcpu": "vcpu",
    "memoryGiB": "memory_gib",
    "instanceStoreGiB": "instance_store_gib",
    "efa": "efa",
}


@dataclass(frozen=True)
class InstanceFacts:
    """Published facts for one EC2 instance type."""

    instance_type: str
    """The EC2 name, e.g. ``"g5.xlarge"``."""
    family: str
    """The part before the dot, e.g. ``"g5"``."""
    gpus: int
    """NVIDIA GPUs per instance; 0 for CPU types."""
    gpu_model: str | None
    """``"A10G"``, ``"L4"``, ``"L40S"``, ``"A100"``, ``"H100"``, ``"H200"``; None for CPU types."""
    gpu_memory_gib: int
    """Nominal memory per GPU (see the YAML header for usable figures); 0 for CPU types."""
    vcpu: int
    """vCPUs per instance (what EC2 vCPU quotas count)."""
    memory_gib: int
    """Instance RAM."""
    instance_store_gib: int
    """Total local NVMe (AWS's GB figure); 0 if none."""
    efa: bool
    """Whether the type supports an Elastic Fabric Adapter."""

    @property
    def total_gpu_memory_gib(self) -> int:
        """GPU memory summed over all GPUs of the instance."""
        return self.gpus * self.gpu_memory_gib


def _parse(instance_type: str, raw: object) -> InstanceFacts:
    if not isinstance(raw, dict):
        raise TypeError(f"{INSTANCES_FILE}: entry {instance_type!r} must be a mapping")
    missing = sorted(set(_FIELDS) - set(raw))
    unknown = sorted(set(raw) - set(_FIELDS))
    if missing or unknown:
        raise ValueError(
            f"{INSTANCES_FILE}: entry {instance_type!r}: missing fields {missing}, unknown fields {unknown}"
        )
    return InstanceFacts(instance_type=instance_type, **{_FIELDS[k]: v for k, v in raw.items()})


@lru_cache(maxsize=1)
def _load() -> dict[str, InstanceFacts]:
    data = read_yaml(INSTANCES_FILE)
    entries = (data or {}).get("instanceTypes")
    if not isinstance(entries, dict):
        raise TypeError(f"{INSTANCES_FILE}: top-level key 'instanceTypes' must be a mapping")
    return {name: _parse(name, raw) for name, raw in entries.items()}


def instance_facts(instance_type: str) -> InstanceFacts | None:
    """Facts for ``instance_type``, or None if the file does not list it."""
    return _load().get(instance_type)


def known_instance_types() -> list[str]:
    """Every instance type the file lists, sorted by name."""
    return sorted(_load())


def is_gpu(instance_type: str) -> bool:
    """True if the type is listed and has at least one GPU (unknown types: False)."""
    facts = instance_facts(instance_type)
    return facts is not None and facts.gpus > 0
