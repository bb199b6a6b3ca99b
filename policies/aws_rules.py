"""AWS rules (resource-level): KMS rotation, SQS encryption, IAM wildcards, IMDSv2 on nodes,
protected stateful resources, bucket forceDestroy, Pod Identity trust. The EKS cluster rules are in
``eks_rules``.

S3 bucket rules that need the companion resources of pulumi-aws v7 live in ``stack_rules``.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationArgs,
    Severity,
)

from .common import TypedResourcePolicy, as_list, get, parse_policy_document, statements, truthy

KMS_KEY = "aws:kms/key:Key"
SQS_QUEUE = "aws:sqs/queue:Queue"
IAM_ROLE = "aws:iam/role:Role"

# ----------------------------------------------------------------------------- KMS rotation


def _kms_rotation(args: ResourceValidationArgs, report) -> None:
    spec = get(args.props, "customerMasterKeySpec") or get(args.props, "keySpec") or "SYMMETRIC_DEFAULT"
    usage = get(args.props, "keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return  # AWS supports automatic rotation for symmetric encryption keys only
    if not truthy(get(args.props, "enableKeyRotation")):
        report("enableKeyRotation is not true.")


kms_key_rotation = TypedResourcePolicy(
    resource_types=(KMS_KEY,),
    name="kms-key-rotation",
    description="Symmetric KMS keys rotate their key material automatically.",
    validate=_kms_rotation,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps="Set enable_key_rotation=True on aws.kms.Key.",
    tags=["aws", "kms", "encryption"],
)

# ----------------------------------------------------------------------------- SQS encryption


def _sqs_encryption(args: ResourceValidationArgs, report) -> None:
    if truthy(get(args.props, "sqsManagedSseEnabled")) or get(args.props, "kmsMasterKeyId"):
        return
    report("Neither sqsManagedSseEnabled nor kmsMasterKeyId is set.")


sqs_encryption = TypedResourcePolicy(
    resource_types=(SQS_QUEUE,),
    name="sqs-encryption",
    description="SQS queues encrypt messages at rest (SSE-SQS or SSE-KMS), set explicitly.",
    validate=_sqs_encryption,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps="Set sqs_managed_sse_enabled=True (or kms_master_key_id) on aws.sqs.Queue.",
    tags=["aws", "sqs", "encryption"],
)

# ----------------------------------------------------------------------------- IAM wildcard

IAM_POLICY_TYPES = {
    "aws:iam/policy:Policy": "policy",
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}


def _admin_statements(doc: dict) -> list[str]:
    found = []
    for i, st in enumerate(statements(doc)):
        if st.get("Effect") != "Allow":
            continue
        actions = [str(a) for a in as_list(st.get("Action"))]
        resources = [str(r) for r in as_list(st.get("Resource"))]
        if any(a in ("*", "*:*") for a in actions) and "*" in resources:
            found.append(st.get("Sid") or f"Statement[{i}]")
    return found


def _iam_wildcard(args: ResourceValidationArgs, report) -> None:
    docs: list[tuple[str, object]] = []
    if args.resource_type in IAM_POLICY_TYPES:
        docs.append(("policy", get(args.props, IAM_POLICY_TYPES[args.resource_type])))
    else:   # IAM_ROLE
        for i, inline in enumerate(as_list(get(args.props, "inlinePolicies"))):
            docs.append((f"inlinePolicies[{i}]", get(inline, "policy")))
    for where, doc in docs:
        bad = _admin_statements(parse_policy_document(doc))
        if bad:
            report(f"{where} allows Action '*' on Resource '*' ({', '.join(bad)}).")


iam_no_admin_wildcard = TypedResourcePolicy(
    resource_types=(*IAM_POLICY_TYPES, IAM_ROLE),
    name="iam-no-admin-wildcard",
    description="No IAM policy allows Action '*' on Resource '*'.",
    validate=_iam_wildcard,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    remediation_steps=(
        "List the actions the principal needs (e.g. 's3:GetObject') and scope Resource to ARNs; "
        "for administrators use an EKS access policy or an AWS-managed job-function policy instead."),
    tags=["aws", "iam"],
)

# ----------------------------------------------------------------------------- IMDSv2 on every node

EC2NODECLASS_PREFIX = "kubernetes:karpenter.k8s.aws/"
NODE_TYPES = ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance", "eks:index:ManagedNodeGroup",
              "aws:eks/nodeGroup:NodeGroup", f"{EC2NODECLASS_PREFIX}*:EC2NodeClass")


def _imdsv2(args: ResourceValidationArgs, report) -> None:
    t, props = args.resource_type, args.props
    if t in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        tokens = get(props, "metadataOptions", "httpTokens")
        if tokens != "required":
            report(f"metadataOptions.httpTokens is {tokens!r}, not 'required'.")
    elif t == "eks:index:ManagedNodeGroup":
        if not truthy(get(props, "enableIMDSv2")) and not get(props, "launchTemplate"):
            report("Set enableIMDSv2=true, or pass a launchTemplate whose metadataOptions.httpTokens is 'required'.")
    elif t == "aws:eks/nodeGroup:NodeGroup":
        if not get(props, "launchTemplate"):
            report("The node group has no launchTemplate, so IMDSv2 is not enforced on its nodes.")
    elif t.startswith(EC2NODECLASS_PREFIX) and t.endswith(":EC2NodeClass"):
        tokens = get(props, "spec", "metadataOptions", "httpTokens")
        if tokens != "required":
            report(f"spec.metadataOptions.httpTokens is {tokens!r}, not 'required' (set it explicitly).")


nodes_require_imdsv2 = TypedResourcePolicy(
    resource_types=NODE_TYPES,
    name="nodes-require-imdsv2",
    description="Every node requires IMDSv2 (launch templates, managed node groups, Karpenter EC2NodeClasses).",
    validate=_imdsv2,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Launch templates: metadata_options={'http_tokens': 'required', 'http_put_response_hop_limit': 1}; "
        "eks.ManagedNodeGroup: enable_imd_sv2=True or such a launch template; Karpenter EC2NodeClass: "
        "spec.metadataOptions: {httpTokens: required, httpPutResponseHopLimit: 1}."),
    tags=["aws", "ec2", "eks", "karpenter"],
)

# ----------------------------------------------------------------------------- protect stateful

STATEFUL_TYPES = (
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketV2:BucketV2",
    "aws:kms/key:Key",
    "aws:rds/instance:Instance",
    "aws:rds/cluster:Cluster",
    "aws:elasticache/replicationGroup:ReplicationGroup",
)


def _protected(args: ResourceValidationArgs, report) -> None:
    if not (args.opts and args.opts.protect):
        report(f"{args.resource_type.split(':')[-1]} '{args.name}' holds data but is not protected "
               f"(opts.protect is false).")


stateful_resources_protected = TypedResourcePolicy(
    resource_types=STATEFUL_TYPES,
    name="stateful-resources-protected",
    description="Stateful resources (S3 buckets, KMS keys, RDS, ElastiCache) are protected from deletion.",
    validate=_protected,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Set agentic-platform:protectData: true in the stack file (components pass "
        "pulumi.ResourceOptions(protect=True) to stateful resources)."),
    tags=["aws", "data-protection"],
)

# ----------------------------------------------------------------------------- buckets and destroy

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")


def _force_destroy(args: ResourceValidationArgs, report) -> None:
    protected = bool(args.opts and args.opts.protect)
    force = truthy(get(args.props, "forceDestroy"))
    if protected and force:
        report(f"Bucket '{args.name}' is protected but forceDestroy: once unprotected, a destroy would delete "
               f"every object and version without a word.")
    elif not protected and not force:
        report(f"Bucket '{args.name}' is not protected and not forceDestroy: `pulumi destroy` stops at "
               f"BucketNotEmpty (S3 deletes only empty buckets).")


s3_force_destroy_matches_protection = TypedResourcePolicy(
    resource_types=BUCKET_TYPES,
    name="s3-force-destroy-matches-protection",
    description="A bucket is forceDestroy exactly when it is not protected (destroy succeeds, protected data stays).",
    validate=_force_destroy,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    remediation_steps="Create buckets with components.aws.secure_bucket, which sets force_destroy = not protectData.",
    tags=["aws", "s3", "lifecycle"],
)

# ----------------------------------------------------------------------------- Pod Identity trust

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
TRUST_CONDITION_KEYS = ("aws:SourceAccount", "aws:SourceArn")


def _condition_keys(statement: dict) -> set[str]:
    cond = statement.get("Condition") or {}
    if not isinstance(cond, dict):
        return set()
    return {k for block in cond.values() if isinstance(block, dict) for k in block}


def _pod_identity_trust(args: ResourceValidationArgs, report) -> None:
    doc = parse_policy_document(get(args.props, "assumeRolePolicy"))
    for i, st in enumerate(statements(doc)):
        principal = st.get("Principal") or {}
        services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if st.get("Effect") != "Allow" or POD_IDENTITY_PRINCIPAL not in services:
            continue
        missing = [k for k in TRUST_CONDITION_KEYS if k not in _condition_keys(st)]
        if missing:
            report(f"Role '{args.name}' trusts {POD_IDENTITY_PRINCIPAL} (Statement[{i}]) without "
                   f"{' and '.join(missing)}: any EKS cluster of the account could bind it.")


pod_identity_trust_scoped = TypedResourcePolicy(
    resource_types=(IAM_ROLE,),
    name="pod-identity-trust-scoped",
    description="Roles trusting pods.eks.amazonaws.com are limited to this account and cluster (aws:SourceAccount, aws:SourceArn).",
    validate=_pod_identity_trust,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Create Pod Identity roles with components.aws.pod_identity_role, whose trust policy has "
        "StringEquals aws:SourceAccount and ArnLike aws:SourceArn of the cluster."),
    tags=["aws", "iam", "eks"],
)

POLICIES = [
    kms_key_rotation,
    sqs_encryption,
    iam_no_admin_wildcard,
    nodes_require_imdsv2,
    stateful_resources_protected,
    s3_force_destroy_matches_protection,
    pod_identity_trust_scoped,
]
