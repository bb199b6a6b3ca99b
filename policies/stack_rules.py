"""Stack-level rules: they correlate several resources, so they read every resource's *outputs*.

S3 correlation (pulumi-aws v7 splits a bucket's settings into companion resources). A companion
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
    parse_policy_document,
    peek,
    pod_spec,
    quantity_positive,
    statements,
    truthy,
)

NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PAB_TYPES = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
SSE_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
VERSIONING_TYPES = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
BUCKET_POLICY_TYPES = ("aws:s3/bucketPolicy:BucketPolicy",)
LOGGING_TYPES = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
# S3 server access logs can only be delivered to a bucket encrypted with SSE-S3
# (docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html).
LOG_TARGET_ALGORITHMS = ("AES256",)
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")

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

# ----------------------------------------------------------------------------- S3


def _bucket_keys(b) -> set[str]:
    keys = {b.urn, b.name, f"{b.name}-id"}
    for prop in ("bucket", "id"):
        v = peek(b.props, prop)
        if isinstance(v, str) and v:
            keys.add(v)
    return keys


def _companions(args: StackValidationArgs, types: tuple[str, ...]) -> dict[str, list]:
    """bucket URN -> companion resources of the given types."""
    buckets = [r for r in args.resources if r.resource_type in BUCKET_TYPES]
    by_key: dict[str, str] = {}
    for b in buckets:
        for k in _bucket_keys(b):
            by_key.setdefault(k, b.urn)
    out: dict[str, list] = {b.urn: [] for b in buckets}
    for c in args.resources:
        if c.resource_type not in types:
            continue
        targets = {d.urn for d in (c.property_dependencies or {}).get("bucket", [])
                   if d.resource_type in BUCKET_TYPES}
        value = peek(c.props, "bucket")
        if isinstance(value, str) and value in by_key:
            targets.add(by_key[value])
        for t in targets:
            out.setdefault(t, []).append(c)
    return out


def _buckets(args: StackValidationArgs):
    return [r for r in args.resources if r.resource_type in BUCKET_TYPES]


def _public_access(args: StackValidationArgs, report) -> None:
    comps = _companions(args, PAB_TYPES)
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for b in _buckets(args):
        pabs = comps.get(b.urn, [])
        if not pabs:
            report(f"Bucket '{b.name}' has no BucketPublicAccessBlock.", b.urn)
            continue
        if not any(all(truthy(get(p.props, f)) for f in flags) for p in pabs):
            off = [f for f in flags if not truthy(get(pabs[0].props, f))]
            report(f"Bucket '{b.name}': public access block leaves {', '.join(off)} off.", b.urn)


s3_public_access_blocked = StackValidationPolicy(
    name="s3-public-access-blocked",
    description="Every S3 bucket blocks public access (all four BucketPublicAccessBlock settings true).",
    validate=_public_access,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    remediation_steps=(
        "Add aws.s3.BucketPublicAccessBlock(bucket=bucket.id, block_public_acls=True, block_public_policy=True, "
        "ignore_public_acls=True, restrict_public_buckets=True)."),
    tags=["aws", "s3", "security"],
)


def _sse_algorithms(value) -> list[str]:
    """Every sseAlgorithm found under a (companion or inline) encryption configuration."""
    found: list[str] = []
    if is_map(value):
        for k in value:
            v = value[k]
            if k == "sseAlgorithm" and isinstance(v, str):
                found.append(v)
            else:
                found.extend(_sse_algorithms(v))
    elif value is not None and not isinstance(value, str):
        try:
            for v in value:
                found.extend(_sse_algorithms(v))
        except TypeError:
            pass
    return found


def _log_targets(args: StackValidationArgs) -> set[str]:
    """URNs of the buckets some BucketLogging delivers S3 server access logs to."""
    by_key: dict[str, str] = {}
    for b in _buckets(args):
        for k in _bucket_keys(b):
            by_key.setdefault(k, b.urn)
    out: set[str] = set()
    for c in args.resources:
        if c.resource_type not in LOGGING_TYPES:
            continue
        out |= {d.urn for d in (c.property_dependencies or {}).get("targetBucket", [])
                if d.resource_type in BUCKET_TYPES}
        value = peek(c.props, "targetBucket")
        if isinstance(value, str) and value in by_key:
            out.add(by_key[value])
    return out


def _sse_kms(args: StackValidationArgs, report) -> None:
    comps = _companions(args, SSE_TYPES)
    targets = _log_targets(args)
    for b in _buckets(args):
        algorithms = []
        for c in comps.get(b.urn, []):
            algorithms += _sse_algorithms(get(c.props, "rules"))
        algorithms += _sse_algorithms(get(b.props, "serverSideEncryptionConfiguration"))
        if not algorithms:
            report(f"Bucket '{b.name}' has no server-side encryption configuration.", b.urn)
        elif b.urn in targets:
            if not all(a in LOG_TARGET_ALGORITHMS for a in algorithms):
                report(f"Bucket '{b.name}' receives S3 server access logs but encrypts with "
                       f"{', '.join(sorted(set(algorithms)))}: S3 delivers access logs only to SSE-S3 (AES256) buckets.",
                       b.urn)
        elif not all(a in KMS_ALGORITHMS for a in algorithms):
            report(f"Bucket '{b.name}' encrypts with {', '.join(sorted(set(algorithms)))}, not SSE-KMS.", b.urn)


s3_sse_kms = StackValidationPolicy(
    name="s3-sse-kms",
    description="Every S3 bucket encrypts by default with SSE-KMS (an access-log destination: SSE-S3, all S3 logging supports).",
    validate=_sse_kms,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Add aws.s3.BucketServerSideEncryptionConfiguration(bucket=bucket.id, rules=[{"
        "'apply_server_side_encryption_by_default': {'sse_algorithm': 'aws:kms', 'kms_master_key_id': key.arn}, "
        "'bucket_key_enabled': True}])."),
    tags=["aws", "s3", "encryption"],
)


def _versioning(args: StackValidationArgs, report) -> None:
    comps = _companions(args, VERSIONING_TYPES)
    for b in _buckets(args):
        enabled = any(get(c.props, "versioningConfiguration", "status") == "Enabled" for c in comps.get(b.urn, []))
        enabled = enabled or truthy(get(b.props, "versioning", "enabled"))
        if not enabled:
            report(f"Bucket '{b.name}' does not have versioning enabled.", b.urn)


s3_versioning = StackValidationPolicy(
    name="s3-versioning",
    description="Every S3 bucket has versioning enabled.",
    validate=_versioning,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps=(
        "Add aws.s3.BucketVersioning(bucket=bucket.id, versioning_configuration={'status': 'Enabled'}) and a "
        "lifecycle rule expiring non-current versions."),
    tags=["aws", "s3", "data-protection"],
)


def _denies_insecure_transport(doc: dict) -> bool:
    for st in statements(doc):
        if st.get("Effect") != "Deny":
            continue
        cond = st.get("Condition") or {}
        value = (cond.get("Bool") or {}).get("aws:SecureTransport") if isinstance(cond, dict) else None
        if str(value).lower() == "false":
            return True
    return False


def _tls_only(args: StackValidationArgs, report) -> None:
    comps = _companions(args, BUCKET_POLICY_TYPES)
    for b in _buckets(args):
        docs = [parse_policy_document(get(c.props, "policy")) for c in comps.get(b.urn, [])]
        docs.append(parse_policy_document(get(b.props, "policy")))
        if not any(_denies_insecure_transport(d) for d in docs):
            report(f"Bucket '{b.name}' has no bucket policy denying requests with aws:SecureTransport=false.",
                   b.urn)


s3_tls_only = StackValidationPolicy(
    name="s3-tls-only",
    description="Every S3 bucket's policy denies requests that do not use TLS.",
    validate=_tls_only,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Add aws.s3.BucketPolicy(bucket=bucket.id, policy=...) with a statement {Effect: Deny, Principal: '*', "
        "Action: 's3:*', Resource: [arn, arn/*], Condition: {Bool: {'aws:SecureTransport': 'false'}}}."),
    tags=["aws", "s3", "network"],
)

def _access_logging(args: StackValidationArgs, report) -> None:
    comps = _companions(args, LOGGING_TYPES)
    targets = _log_targets(args)
    for b in _buckets(args):
        if b.urn in targets:
            continue  # the destination does not log into itself
        if not comps.get(b.urn):
            report(f"Bucket '{b.name}' has no server access logging (BucketLogging).", b.urn)


s3_access_logging = StackValidationPolicy(
    name="s3-access-logging",
    description="Every S3 bucket but the access-log destination writes S3 server access logs.",
    validate=_access_logging,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps=(
        "Add aws.s3.BucketLogging(bucket=bucket.id, target_bucket=<access-log bucket>, target_prefix='<purpose>/') "
        "(components.aws.secure_bucket does inside AgenticPlatform)."),
    tags=["aws", "s3", "logging"],
)

# ----------------------------------------------------------------------------- EKS: the creator's admin entry

EKS_COMPONENT = "eks:index:Cluster"
EKS_LEAF = "aws:eks/cluster:Cluster"
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
