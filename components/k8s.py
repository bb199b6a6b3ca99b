"""Helpers every layer uses for Kubernetes objects: labels, metadata, security contexts, Helm
releases and custom resources. One place, so a convention changes once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from domain.pins import PLATFORM_DIR, ROOT, chart_archive, chart_pin, platform_data  # noqa: F401  (re-exported)

PART_OF = "agentic-platform"
MANAGED_BY = "pulumi"

# Seconds Helm waits for a release before failing (and, with atomic, rolling back).
HELM_TIMEOUT_S = 900


@dataclass(frozen=True)
class NodeSource:
    """Where a layer's pods run, as what must exist before they can: the system node group, or
    Karpenter's controller release and the NodePool whose nodes the pods land on. A release or
    workload whose pods run there depends on it (an atomic release waits for Ready pods, so it must
    not start its clock before nodes can exist), and on destroy it goes first, while the nodes
    (and Karpenter, to remove them) still exist."""

    name: str
    resources: tuple[pulumi.Resource, ...]

    def __iter__(self):
        return iter(self.resources)


def labels(name: str, component: str, *, instance: str | None = None, version: str | None = None,
           extra: dict[str, str] | None = None) -> dict[str, str]:
    """The recommended `app.kubernetes.io/*` labels."""
    out = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance or name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if version:
        out["app.kubernetes.io/version"] = version[:63]
    out.update(extra or {})
    return out


def selector(name: str, instance: str | None = None) -> dict[str, str]:
    """The immutable subset of `labels` a workload selects its pods by."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance or name}


def meta(name: str, namespace: str | None = None, *, labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """ObjectMeta with an explicit name: Pulumi's auto-naming would append a random suffix, which
    other objects (Services, routes, policies) could not refer to."""
    out: dict[str, Any] = {"name": name}
    if namespace:
        out["namespace"] = namespace
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    return out


def container_security_context(*, read_only_root: bool = True) -> dict[str, Any]:
    """Pod Security `restricted`: no escalation, every capability dropped, RuntimeDefault seccomp."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int | None = 1000, *, fs_group: int | None = None) -> dict[str, Any]:
    """Pod-level half of Pod Security `restricted`. `uid=None` keeps the image's own numeric USER."""
    out: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if uid is not None:
        out.update(runAsUser=uid, runAsGroup=uid)
    if fs_group is not None:
        out["fsGroup"] = fs_group
    return out


def resources(cpu: str, memory: str, *, cpu_limit: str | None = None, memory_limit: str | None = None,
              extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Requests and limits; memory limit equals the request unless told (no OOM surprises)."""
    req = {"cpu": cpu, "memory": memory, **(extra or {})}
    lim = {"cpu": cpu_limit or cpu, "memory": memory_limit or memory, **(extra or {})}
    return {"requests": req, "limits": lim}


def secret(resource_name: str, name: str, namespace: str, data: dict[str, pulumi.Input[str]], *,
           component: str, opts: pulumi.ResourceOptions, app: str | None = None) -> k8s.core.v1.Secret:
    """An Opaque Secret whose values are Pulumi secrets: they stay encrypted in state and show as
    "[secret]" in the plan; charts and pods refer to it by name, never to the values."""
    return k8s.core.v1.Secret(
        resource_name, metadata=meta(name, namespace, labels=labels(app or name, component)), type="Opaque",
        string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["stringData", "data"])))


def chart_image(key: str) -> dict[str, str]:
    """A chart's `image` values (repository, tag) from its pin in platform/images.yaml."""
    pin = platform_data("images.yaml")[key]
    return {"repository": pin["repository"], "tag": str(pin["tag"])}


def helm_release(resource_name: str, chart: str, *, namespace: str, values: pulumi.Input[dict[str, Any]],
                 opts: pulumi.ResourceOptions, release_name: str | None = None, skip_crds: bool = False,
                 timeout_s: int = HELM_TIMEOUT_S, create_namespace: bool = False,
                 await_ready: bool = True) -> k8s.helm.v3.Release:
    """A pinned chart installed from its vendored archive as a real Helm release: hooks and `lookup`
    work, `atomic` rolls a failed install back. `skip_crds` when a separate CRD release owns them
    (CRDs owned once). `await_ready=False` for a release nothing needs Ready: Helm installs without
    --wait (pulumi-kubernetes skipAwait) and so without --atomic, which would force the wait (Helm
    pkg/action/install.go); hooks still run and crds/ are still awaited until established."""
    pin = chart_pin(chart)
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name or chart,
        chart=chart_archive(chart),
        version=pin["version"],
        namespace=namespace,
        create_namespace=create_namespace,
        values=values,
        atomic=await_ready,
        cleanup_on_fail=True,
        timeout=timeout_s,
        skip_crds=skip_crds,
        skip_await=not await_ready,
        opts=opts,
    )


def custom_object(resource_name: str, api_version: str, kind: str, name: str, *, spec: Any,
                  opts: pulumi.ResourceOptions, namespace: str | None = None,
                  labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                  **fields: Any) -> k8s.apiextensions.CustomResource:
    """A CustomResource with an explicit name (see `meta`). Extra top-level fields (e.g. `data`)
    go in `fields`."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=api_version,
        kind=kind,
        metadata=meta(name, namespace, labels=labels, annotations=annotations),
        spec=spec,
        opts=opts,
        **fields,
    )
