"""Stack-level rules: they correlate several resources, so they read every resource's *outputs*.

S3 correlation (the S3 rules: policies/s3_rules.py; pulumi-aws v7 splits a bucket's settings into companion resources). A companion
(``BucketPublicAccessBlock``, ``BucketServerSideEncryptionConfiguration[V2]``,
``BucketVersioning[V2]``, ``BucketPolicy``) belongs to a bucket when either

1. its ``bucket`` property depends on the bucket resource (``property_dependencies["bucket"]``): this
   is how a real preview correlates new buckets, whose ids are still unknown; or
2. its ``bucket`` value equals the bucket's URN (a downgraded resource reference), its ``bucket`` or
   ``id`` output (the real bucket name), its resource name, or ``<resource name>-id`` (the id the
   test kit's and the offline plan's mocks give every resource).

Namespaces are keyed by ``metadata.name`` (falling back to the resource name); every NetworkPolicy,
ResourceQuota and workload by ``metadata.namespace`` (default ``default``).
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .common import (
    GPU_RESOURCE,
    WORKLOAD_TYPES,
    as_list,
    config_list,
    get,
    gpu_requested,
    is_map,
    namespace_of,
    object_name,
    peek,
    pod_spec,
    quantity_positive,
)
from .eks_rules import EKS_COMPONENT, EKS_LEAF
from .s3_rules import s3_access_logging, s3_public_access_blocked, s3_sse_kms, s3_tls_only, s3_versioning

NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
_EXEMPT_SCHEMA = PolicyConfigSchema(properties={
    "exemptNamespaces": {"type": "array", "items": {"type": "string"}, "default": []},
})

# ----------------------------------------------------------------------------- namespaces


def _namespaces(args: StackValidationArgs) -> list[tuple[str, object]]:
    exempt = set(config_list(args, "exemptNamespaces", []))
    out = []
    for r in args.resources:
        if r.resource_type == NAMESPACE:
            name = object_name(r.props, r.name)
            if name not in exempt:
                out.append((name, r))
    return out


def _is_default_deny(props) -> set[str]:
    """The directions ('Ingress', 'Egress') a NetworkPolicy denies for every pod of its namespace."""
    spec = get(props, "spec") or {}
    selector = get(spec, "podSelector")
    if selector is not None and (get(selector, "matchLabels") or get(selector, "matchExpressions")):
        return set()
    types = {str(t) for t in as_list(get(spec, "policyTypes"))}
    denied = set()
    if "Ingress" in types and not as_list(get(spec, "ingress")):
        denied.add("Ingress")
    if "Egress" in types and not as_list(get(spec, "egress")):
        denied.add("Egress")
    return denied


def _default_deny(args: StackValidationArgs, report) -> None:
    denied: dict[str, set[str]] = {}
    for r in args.resources:
        if r.resource_type == NETWORK_POLICY:
            denied.setdefault(namespace_of(r.props), set()).update(_is_default_deny(r.props))
    for ns, r in _namespaces(args):
        missing = {"Ingress", "Egress"} - denied.get(ns, set())
        if missing:
            report(f"Namespace '{ns}' has no default-deny NetworkPolicy for {', '.join(sorted(missing))} "
                   f"(empty podSelector, policyTypes [Ingress, Egress], no rules).", r.urn)


namespace_default_deny_network_policy = StackValidationPolicy(
    name="namespace-default-deny-network-policy",
    description="Every namespace has a default-deny NetworkPolicy (ingress and egress).",
    validate=_default_deny,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=_EXEMPT_SCHEMA,
    remediation_steps=(
        "Add a NetworkPolicy in the namespace with podSelector: {}, policyTypes: [Ingress, Egress] and no "
        "rules, then allow the flows it needs with further NetworkPolicies (Tenancy does this for its namespaces)."),
    tags=["kubernetes", "network", "tenancy"],
)


def _quota(args: StackValidationArgs, report) -> None:
    with_quota = {namespace_of(r.props) for r in args.resources if r.resource_type == RESOURCE_QUOTA}
    for ns, r in _namespaces(args):
        if ns not in with_quota:
            report(f"Namespace '{ns}' has no ResourceQuota.", r.urn)


namespace_resource_quota = StackValidationPolicy(
    name="namespace-resource-quota",
    description="Every namespace has a ResourceQuota.",
    validate=_quota,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=_EXEMPT_SCHEMA,
    remediation_steps="Add a ResourceQuota to the namespace (tenants[].quota in the stack file).",
    tags=["kubernetes", "tenancy", "cost"],
)

# ----------------------------------------------------------------------------- GPU quota


def _gpu_quota(args: StackValidationArgs, report) -> None:
    gpu_ns = set()
    for r in args.resources:
        if r.resource_type == RESOURCE_QUOTA:
            hard = get(r.props, "spec", "hard") or {}
            if quantity_positive(get(hard, f"requests.{GPU_RESOURCE}")):
                gpu_ns.add(namespace_of(r.props))
    for r in args.resources:
        if r.resource_type not in WORKLOAD_TYPES:
            continue
        spec = pod_spec(r.resource_type, r.props)
        if spec is None or not gpu_requested(spec):
            continue
        ns = namespace_of(r.props)
        if ns not in gpu_ns:
            report(f"{r.resource_type.split(':')[-1]} '{object_name(r.props, r.name)}' requests {GPU_RESOURCE} "
                   f"in namespace '{ns}', whose ResourceQuota does not grant requests.{GPU_RESOURCE}.", r.urn)


gpu_requests_need_gpu_quota = StackValidationPolicy(
    name="gpu-requests-need-gpu-quota",
    description="Workloads request nvidia.com/gpu only in namespaces whose ResourceQuota grants requests.nvidia.com/gpu.",
    validate=_gpu_quota,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Give the namespace a ResourceQuota with spec.hard['requests.nvidia.com/gpu'] > 0 "
        "(tenants[].quota.gpu), or move the workload to a namespace that has one."),
    tags=["kubernetes", "gpu", "cost", "tenancy"],
)


# ----------------------------------------------------------------------------- EKS: the creator's admin entry

ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
CREATOR_TAG = "agentic.platform/cluster-creator-admin"


def _cluster_creator(args: StackValidationArgs, report) -> None:
    entries: list[str] = []
    for r in args.resources:
        if r.resource_type == ACCESS_ENTRY:
            arn = peek(r.props, "principalArn")
            if isinstance(arn, str):
                entries.append(arn)
        elif r.resource_type == EKS_COMPONENT:
            access = peek(r.props, "accessEntries")
            if is_map(access):
                for key in access:
                    arn = peek(access, key, "principalArn")
                    if isinstance(arn, str):
                        entries.append(arn)
    for r in args.resources:
        if r.resource_type not in (EKS_COMPONENT, EKS_LEAF):
            continue
        tags = peek(r.props, "clusterTags" if r.resource_type == EKS_COMPONENT else "tags")
        creator = peek(tags, CREATOR_TAG) if is_map(tags) else None
        if creator is None:
            report(f"Cluster '{r.name}' does not name the principal EKS makes cluster admin as its creator "
                   f"(tag {CREATOR_TAG}): a standing admin nobody sees.", r.urn)
        elif isinstance(creator, str) and creator in entries:
            report(f"Cluster '{r.name}': its creator {creator} also has an explicit access entry; EKS already "
                   f"created one (bootstrapClusterCreatorAdminPermissions) and refuses the second with 409.", r.urn)


eks_cluster_creator_declared = StackValidationPolicy(
    name="eks-cluster-creator-declared",
    description="The principal EKS makes cluster admin at creation is declared (cluster tag) and has no second access entry.",
    validate=_cluster_creator,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Set agentic-platform:cluster.deployer.arn to the principal that runs pulumi up and keep it out of "
        "cluster.admins and tenants[].iamRoles."),
    tags=["aws", "eks", "iam"],
)

COST_WITHIN_BUDGET = "cost-within-budget"


def cost_within_budget(cost: dict) -> list[dict]:
    """The stack's `budget` against the plan's cost ceiling (plan/cost.py: every NodePool at its
    limits plus the fixed platform cost): over it is a mandatory finding, in the harness's finding
    shape. The ceiling is what the stack *can* cost; lower the pools' limits (or raise the budget)."""
    budget, total = cost.get("budget"), cost.get("total")
    if not budget or not total:
        return []
    out = []
    for period, limit in (("hourly", budget.get("hourly")), ("monthly", budget.get("monthly"))):
        ceiling = total[f"ceiling{period.capitalize()}"]
        if limit is not None and ceiling > limit:
            out.append({"policy": COST_WITHIN_BUDGET, "level": "mandatory", "urn": None, "object": None,
                        "message": f"the stack can cost up to ${ceiling:,.2f} {period} (every NodePool at its limits "
                                   f"plus the fixed platform cost) but agentic-platform:budget.{period} is "
                                   f"${limit:,.2f}; lower gpuPools[].gpuLimit / cpuLimit (or the budget)"})
    return out


POLICIES = [
    namespace_default_deny_network_policy,
    namespace_resource_quota,
    gpu_requests_need_gpu_quota,
    s3_public_access_blocked,
    s3_sse_kms,
    s3_versioning,
    s3_tls_only,
    s3_access_logging,
    eks_cluster_creator_declared,
]
