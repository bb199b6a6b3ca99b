"""Kubernetes rules (resource-level) on typed workloads, Services, Helm releases and NodePools.

Workloads: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, PodTemplate
(``common.WORKLOAD_POD_SPEC_PATHS``). Charts installed with ``helm.v3.Release`` are rendered by
Helm inside the provider, so their pods are invisible to these rules (in both the offline plan and a
real preview): they are governed by their pinned chart version and reviewed values instead.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    Severity,
)

from .common import (
    GPU_RESOURCE,
    WORKLOAD_TYPES,
    TypedResourcePolicy,
    as_list,
    config_list,
    containers,
    get,
    image_problem,
    namespace_of,
    pod_spec,
    truthy,
    version_problem,
)

# Namespaces whose workloads may need host access or root: node agents (CNI, CSI, kube-proxy in
# kube-system; NVIDIA driver/toolkit/device plugin in gpu-operator; a node-level telemetry namespace).
# Platform namespaces (ai-*, observability) are deliberately NOT on the list.
DEFAULT_PRIVILEGED_NAMESPACES = ["kube-system", "gpu-operator", "observability-node"]
DEFAULT_LOADBALANCER_NAMESPACES = ["ai-gateway"]
SERVICE = "kubernetes:core/v1:Service"

_ALLOWED_NS_SCHEMA = PolicyConfigSchema(properties={
    "allowedNamespaces": {"type": "array", "items": {"type": "string"},
                          "default": DEFAULT_PRIVILEGED_NAMESPACES},
})


def _workload(args: ResourceValidationArgs):
    """The pod spec of a workload resource, or None for any other type."""
    return pod_spec(args.resource_type, args.props)


def _restricted_workload(args: ResourceValidationArgs):
    """(pod spec, namespace) of a workload outside the allow-listed namespaces, else None."""
    spec = _workload(args)
    if spec is None:
        return None
    ns = namespace_of(args.props)
    if ns in config_list(args, "allowedNamespaces", DEFAULT_PRIVILEGED_NAMESPACES):
        return None
    return spec, ns


# ----------------------------------------------------------------------------- requests + limits


def _requests_limits(args: ResourceValidationArgs, report) -> None:
    spec = _workload(args)
    if spec is None:
        return
    for kind, c in containers(spec):
        if kind == "ephemeralContainers":
            continue  # ephemeral containers may not set resources
        missing = [f"{section}.{res}" for section in ("requests", "limits") for res in ("cpu", "memory")
                   if get(c, "resources", section, res) in (None, "")]
        if missing:
            report(f"container '{get(c, 'name')}' has no {', '.join(missing)}.")


k8s_resources_requests_limits = TypedResourcePolicy(
    resource_types=WORKLOAD_TYPES,
    name="k8s-resources-requests-limits",
    description="Every container sets CPU and memory requests and limits.",
    validate=_requests_limits,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps="Set resources.requests and resources.limits for cpu and memory on every (init) container.",
    tags=["kubernetes", "cost", "reliability"],
)

# ----------------------------------------------------------------------------- privileged / host*


def _privileged(args: ResourceValidationArgs, report) -> None:
    if (found := _restricted_workload(args)) is None:
        return
    spec, ns = found
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if truthy(get(spec, flag)):
            report(f"pod uses {flag} in namespace '{ns}'.")
    for _, c in containers(spec):
        if truthy(get(c, "securityContext", "privileged")):
            report(f"container '{get(c, 'name')}' is privileged in namespace '{ns}'.")


k8s_no_privileged = TypedResourcePolicy(
    resource_types=WORKLOAD_TYPES,
    name="k8s-no-privileged",
    description="No privileged containers, hostNetwork, hostPID or hostIPC outside the allow-listed namespaces.",
    validate=_privileged,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    config_schema=_ALLOWED_NS_SCHEMA,
    remediation_steps=(
        "Drop privileged/host* from the pod; node agents that truly need them belong in an allow-listed "
        "namespace (policy config 'allowedNamespaces')."),
    tags=["kubernetes", "security"],
)

# ----------------------------------------------------------------------------- images pinned


def _images(args: ResourceValidationArgs, report) -> None:
    spec = _workload(args)
    if spec is None:
        return
    for _, c in containers(spec):
        problem = image_problem(get(c, "image"))
        if problem:
            report(f"container '{get(c, 'name')}' {problem}.")


k8s_images_pinned = TypedResourcePolicy(
    resource_types=WORKLOAD_TYPES,
    name="k8s-images-pinned",
    description="Container images are pinned to an explicit tag or a digest (no ':latest', no untagged).",
    validate=_images,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Take image tags from platform/ pins (e.g. vllm/vllm-openai:v0.x.y or repo@sha256:...).",
    tags=["kubernetes", "supply-chain"],
)

# ----------------------------------------------------------------------------- non-root


def _non_root(args: ResourceValidationArgs, report) -> None:
    if (found := _restricted_workload(args)) is None:
        return
    spec, _ = found
    pod_level = get(spec, "securityContext", "runAsNonRoot")
    for kind, c in containers(spec):
        if kind == "ephemeralContainers":
            continue
        own = get(c, "securityContext", "runAsNonRoot")
        effective = own if own is not None else pod_level
        if not truthy(effective):
            report(f"container '{get(c, 'name')}' may run as root (runAsNonRoot is not true).")


k8s_run_as_non_root = TypedResourcePolicy(
    resource_types=WORKLOAD_TYPES,
    name="k8s-run-as-non-root",
    description="Containers run as non-root (runAsNonRoot true at pod or container level) outside allow-listed namespaces.",
    validate=_non_root,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=_ALLOWED_NS_SCHEMA,
    remediation_steps=(
        "Set spec.securityContext: {runAsNonRoot: true, runAsUser: <uid>} on the pod (or on each container) "
        "and use an image that runs as a non-root user."),
    tags=["kubernetes", "security"],
)

# ----------------------------------------------------------------------------- LoadBalancer Services


def _no_lb(args: ResourceValidationArgs, report) -> None:
    if get(args.props, "spec", "type") != "LoadBalancer":
        return
    ns = namespace_of(args.props)
    allowed = config_list(args, "allowedNamespaces", DEFAULT_LOADBALANCER_NAMESPACES)
    if ns not in allowed:
        report(f"Service of type LoadBalancer in namespace '{ns}' (allowed only in: {', '.join(allowed)}).")


k8s_no_loadbalancer_services = TypedResourcePolicy(
    resource_types=(SERVICE,),
    name="k8s-no-loadbalancer-services",
    description="Only the inference gateway exposes a Service of type LoadBalancer.",
    validate=_no_lb,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(properties={
        "allowedNamespaces": {"type": "array", "items": {"type": "string"},
                              "default": DEFAULT_LOADBALANCER_NAMESPACES},
    }),
    remediation_steps="Use type ClusterIP and route through the gateway (an HTTPRoute on the kgateway Gateway).",
    tags=["kubernetes", "network"],
)

# ----------------------------------------------------------------------------- Helm versions

HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")


def _helm_version(args: ResourceValidationArgs, report) -> None:
    version = get(args.props, "version")
    if version is None:
        version = get(args.props, "fetchOpts", "version")  # v3 Chart
    problem = version_problem(version)
    if problem:
        chart = get(args.props, "chart") or args.name
        report(f"Helm chart '{chart}': {problem}.")


helm_release_version_pinned = TypedResourcePolicy(
    resource_types=HELM_TYPES,
    name="helm-release-version-pinned",
    description="Every Helm release pins an exact chart version (no empty version, range or 'latest').",
    validate=_helm_version,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Set version= to the exact chart version pinned in platform/ (e.g. '1.14.1').",
    tags=["kubernetes", "helm", "supply-chain"],
)

# ----------------------------------------------------------------------------- GPU NodePools

NODEPOOL_TYPE = "kubernetes:karpenter.sh/v1:NodePool"
GPU_INSTANCE_PREFIXES = ("p2", "p3", "p4", "p5", "p6", "g3", "g4", "g5", "g6", "g7", "gr6")
GPU_CATEGORIES = ("p", "g")


def _is_gpu_instance_type(name: str) -> bool:
    family = name.split(".", 1)[0]
    return family.startswith(GPU_INSTANCE_PREFIXES)


def _nodepool_is_gpu(spec) -> bool:
    tmpl = get(spec, "template", "spec")
    for t in as_list(get(tmpl, "taints")):
        if get(t, "key") == GPU_RESOURCE:
            return True
    for req in as_list(get(tmpl, "requirements")):
        key = get(req, "key")
        op = get(req, "operator")
        values = [str(v) for v in as_list(get(req, "values"))]
        if key == "karpenter.k8s.aws/instance-gpu-count" and (
                op == "Exists" or (op == "Gt" and values and values[0].isdigit() and int(values[0]) >= 0)
                or (op == "In" and any(v.isdigit() and int(v) > 0 for v in values))):
            return True
        if op != "In":
            continue
        if key in ("karpenter.k8s.aws/instance-gpu-manufacturer", "karpenter.k8s.aws/instance-gpu-name"):
            return True
        if key == "karpenter.k8s.aws/instance-category" and any(v in GPU_CATEGORIES for v in values):
            return True
        if key == "karpenter.k8s.aws/instance-family" and any(_is_gpu_instance_type(v) for v in values):
            return True
        if key in ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type") and any(
                _is_gpu_instance_type(v) for v in values):
            return True
    return False


def _gpu_nodepool(args: ResourceValidationArgs, report) -> None:
    spec = get(args.props, "spec")
    if not _nodepool_is_gpu(spec):
        return
    if get(spec, "replicas") is not None:
        # A static NodePool (warm nodes) holds `replicas` nodes; its CRD allows only limits.nodes
        # (karpenter-crd 1.14.1, karpenter.sh_nodepools.yaml), which caps it during drift.
        if get(spec, "limits", "nodes") in (None, ""):
            report("static GPU NodePool has no spec.limits['nodes'] (unbounded during drift replacement).")
    elif get(spec, "limits", GPU_RESOURCE) in (None, ""):
        report(f"GPU NodePool has no spec.limits['{GPU_RESOURCE}'] (unbounded GPU spend).")
    taints = as_list(get(spec, "template", "spec", "taints"))
    if not any(get(t, "key") == GPU_RESOURCE and get(t, "effect") == "NoSchedule" for t in taints):
        report(f"GPU NodePool does not taint its nodes '{GPU_RESOURCE}:NoSchedule'.")


gpu_nodepool_limits_and_taint = TypedResourcePolicy(
    resource_types=(NODEPOOL_TYPE,),
    name="gpu-nodepool-limits-and-taint",
    description="Every GPU NodePool caps nvidia.com/gpu in spec.limits (a static one: limits.nodes) and taints its "
                "nodes nvidia.com/gpu:NoSchedule.",
    validate=_gpu_nodepool,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Set spec.limits: {'nvidia.com/gpu': <gpuLimit>} and spec.template.spec.taints: "
        "[{key: nvidia.com/gpu, effect: NoSchedule}] on the NodePool (gpuPools[].gpuLimit in the stack file)."),
    tags=["kubernetes", "karpenter", "gpu", "cost"],
)

POLICIES = [
    k8s_resources_requests_limits,
    k8s_no_privileged,
    k8s_images_pinned,
    k8s_run_as_non_root,
    k8s_no_loadbalancer_services,
    helm_release_version_pinned,
    gpu_nodepool_limits_and_taint,
]

