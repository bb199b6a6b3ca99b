"""Helpers shared by the rule modules.

Property values reach rules through pulumi-policy's unknown-checking proxies, which are
``collections.abc.Mapping`` / ``Sequence`` but NOT ``dict`` / ``list``: always test with the
abstract types below. Reading a value that is unknown during ``pulumi preview`` raises
``UnknownValueError``; resource rules let it propagate (the SDK turns it into an advisory
"can't run policy during preview" diagnostic), stack rules that only correlate resources use
:func:`peek`, which returns ``UNKNOWN`` instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

UNKNOWN = object()

# ----------------------------------------------------------------------------- typed resource rules


class TypedResourcePolicy(ResourceValidationPolicy):
    """A resource rule that reads only resources of `resource_types` (type tokens; `*` globs, e.g.
    `kubernetes:karpenter.k8s.aws/*:EC2NodeClass`). For any other type its validate function is not
    called and reports nothing, under `pulumi preview` as in the offline plan, which therefore
    does not even build the rule's arguments for such a resource (plan.policy_harness)."""

    def __init__(self, *, resource_types: Iterable[str], validate: Callable[[ResourceValidationArgs, Any], None],
                 **kwargs: Any):
        self.resource_types = tuple(resource_types)

        def only_its_types(args: ResourceValidationArgs, report: Any) -> None:
            if self.reads(args.resource_type):
                validate(args, report)

        super().__init__(validate=only_its_types, **kwargs)

    def reads(self, resource_type: str) -> bool:
        return any(fnmatchcase(resource_type, t) if "*" in t else resource_type == t for t in self.resource_types)


def reads(policy: Any, resource_type: str) -> bool:
    """May `policy` (a resource rule) report on a resource of `resource_type`? Only a
    TypedResourcePolicy says it may not."""
    return not isinstance(policy, TypedResourcePolicy) or policy.reads(resource_type)


# ----------------------------------------------------------------------------- generic access


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_seq(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def get(obj: Any, *path: Any, default: Any = None) -> Any:
    """``obj[path[0]][path[1]]...`` or ``default`` when a step is missing (unknowns raise)."""
    cur = obj
    for key in path:
        if isinstance(key, int):
            if not is_seq(cur) or key >= len(cur):
                return default
        elif not is_map(cur) or key not in cur:
            return default
        cur = cur[key]
        if cur is None:
            return default
    return cur


def peek(obj: Any, *path: Any, default: Any = None) -> Any:
    """Like :func:`get`, but an unknown (preview-time) value yields ``UNKNOWN``."""
    try:
        return get(obj, *path, default=default)
    except UnknownValueError:
        return UNKNOWN


def as_list(value: Any) -> list:
    if value is None:
        return []
    if is_seq(value):
        return list(value)
    return [value]


def to_plain(value: Any) -> Any:
    """Copy a proxied value into plain dicts/lists (unknown entries raise)."""
    if is_map(value):
        return {k: to_plain(value[k]) for k in value}
    if is_seq(value):
        return [to_plain(v) for v in value]
    return value


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def config_list(args: Any, key: str, default: list[str]) -> list[str]:
    cfg = args.get_config() or {}
    value = cfg.get(key)
    return list(value) if value is not None else list(default)


def parse_policy_document(doc: Any) -> dict:
    """An IAM/S3 policy document given as JSON text or as an object."""
    if isinstance(doc, str):
        try:
            parsed = json.loads(doc)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    if is_map(doc):
        return to_plain(doc)
    return {}


def statements(doc: dict) -> list[dict]:
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


# ----------------------------------------------------------------------------- Kubernetes

WORKLOAD_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:PodTemplate": ("template", "spec"),
}
WORKLOAD_TYPES = tuple(WORKLOAD_POD_SPEC_PATHS)


def pod_spec(resource_type: str, props: Any) -> Any:
    path = WORKLOAD_POD_SPEC_PATHS.get(resource_type)
    return get(props, *path) if path else None


def namespace_of(props: Any) -> str:
    return get(props, "metadata", "namespace") or "default"


def object_name(props: Any, fallback: str = "") -> str:
    return get(props, "metadata", "name") or fallback


def containers(spec: Any) -> Iterator[tuple[str, Any]]:
    """(kind, container) for containers, initContainers and ephemeralContainers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in as_list(get(spec, key)):
            yield key, c


GPU_RESOURCE = "nvidia.com/gpu"


def quantity_positive(value: Any) -> bool:
    """True for a Kubernetes quantity > 0 ("1", 2, "500m")."""
    if value is None:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value > 0
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    return bool(m) and float(m.group(1)) > 0


def gpu_requested(spec: Any) -> bool:
    for _, c in containers(spec):
        for section in ("requests", "limits"):
            if quantity_positive(get(c, "resources", section, GPU_RESOURCE)):
                return True
    return False


_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned, or None when it is (explicit tag or digest)."""
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    if _DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image '{image}' has no tag (resolves to :latest)"
    tag = last.rsplit(":", 1)[1]
    if not tag:
        return f"image '{image}' has an empty tag"
    if tag.lower() == "latest":
        return f"image '{image}' uses the mutable tag ':latest'"
    return None


_RANGE = re.compile(r"[\^~*<>=|,\s]")


def version_problem(version: Any) -> str | None:
    """Why a Helm chart version is not an exact pin, or None when it is."""
    if version is None or (isinstance(version, str) and not version.strip()):
        return "no chart version (Helm installs the newest)"
    text = str(version).strip()
    if text.lower() in ("latest", "stable", "*"):
        return f"chart version '{text}' is not a pin"
    if _RANGE.search(text.lstrip("v")):
        return f"chart version '{text}' is a range, not an exact version"
    if not re.match(r"^v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.\-+]+)?$", text):
        return f"chart version '{text}' is not an exact version"
    return None
