"""AWS rules (resource-level).

Every EKS rule looks at BOTH shapes a cluster takes:

* ``eks:index:Cluster`` -- the pulumi_eks component, whose inputs are all the offline plan sees
  (its children do not exist under mocks): ``endpointPublicAccess``, ``publicAccessCidrs``,
  ``encryptionConfigKeyArn``, ``enabledClusterLogTypes``, ``authenticationMode``.
* ``aws:eks/cluster:Cluster`` -- the leaf a real ``pulumi preview`` analyzes (``vpcConfig``,
  ``encryptionConfig``, ``enabledClusterLogTypes``, ``accessConfig``).

S3 bucket rules need the companion resources of pulumi-aws v7 and live in ``stack_rules``.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    Severity,
)

from .common import TypedResourcePolicy, as_list, config_list, get, parse_policy_document, statements, truthy

EKS_COMPONENT = "eks:index:Cluster"
EKS_LEAF = "aws:eks/cluster:Cluster"
EKS_TYPES = (EKS_COMPONENT, EKS_LEAF)
KMS_KEY = "aws:kms/key:Key"
SQS_QUEUE = "aws:sqs/queue:Queue"
IAM_ROLE = "aws:iam/role:Role"
OPEN_CIDRS = ("0.0.0.0/0", "::/0")

# ----------------------------------------------------------------------------- EKS endpoint


def _eks_endpoint(args: ResourceValidationArgs, report) -> None:
    props = args.props
    if args.resource_type == EKS_COMPONENT:
        public = get(props, "endpointPublicAccess")
        cidrs = get(props, "publicAccessCidrs")
        # pulumi_eks defaults endpointPublicAccess to true; EKS defaults the CIDRs to 0.0.0.0/0.
        public = True if public is None else truthy(public)
    elif args.resource_type == EKS_LEAF:
        public = get(props, "vpcConfig", "endpointPublicAccess")
        cidrs = get(props, "vpcConfig", "publicAccessCidrs")
        public = True if public is None else truthy(public)
    else:
        return
    if not public:
        return
    cidrs = [str(c) for c in as_list(cidrs)]
    if not cidrs:
        report("The EKS API endpoint is public to the whole internet (publicAccessCidrs unset, "
               "which EKS treats as 0.0.0.0/0).")
        return
    open_ = [c for c in cidrs if c in OPEN_CIDRS]
    if open_:
        report(f"The EKS API endpoint is public to {', '.join(open_)}.")


eks_endpoint_not_public = TypedResourcePolicy(
    resource_types=EKS_TYPES,
    name="eks-endpoint-not-public",
    description="The EKS API endpoint is private, or public only to listed CIDRs (never 0.0.0.0/0 or ::/0).",
    validate=_eks_endpoint,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    remediation_steps=(
        "Set the stack's cluster endpoint to 'private' (endpointPublicAccess=false, endpointPrivateAccess=true), "
        "or keep it public with publicAccessCidrs listing only your office/VPN ranges."),
    tags=["aws", "eks", "network"],
)

# ----------------------------------------------------------------------------- EKS secrets encryption


def _eks_encryption(args: ResourceValidationArgs, report) -> None:
    props = args.props
    if args.resource_type == EKS_COMPONENT:
        if not get(props, "encryptionConfigKeyArn"):
            report("encryptionConfigKeyArn is not set: Kubernetes Secrets are not envelope-encrypted with KMS.")
    elif args.resource_type == EKS_LEAF:
        cfg = get(props, "encryptionConfig")
        cfgs = as_list(cfg)
        ok = any("secrets" in [str(r) for r in as_list(get(c, "resources"))]
                 and get(c, "provider", "keyArn") for c in cfgs)
        if not ok:
            report("encryptionConfig does not encrypt 'secrets' with a KMS key.")


eks_secrets_encryption = TypedResourcePolicy(
    resource_types=EKS_TYPES,
    name="eks-secrets-encryption",
    description="EKS envelope-encrypts Kubernetes Secrets with a KMS key.",
    validate=_eks_encryption,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps=(
        "Create an aws.kms.Key (enable_key_rotation=True) and pass its ARN as encryption_config_key_arn "
        "to eks.Cluster (or encryption_config={resources: ['secrets'], provider: {key_arn}} on aws.eks.Cluster)."),
    tags=["aws", "eks", "encryption"],
)

# ----------------------------------------------------------------------------- EKS control-plane logs

DEFAULT_LOG_TYPES = ["api", "audit", "authenticator"]


def _eks_logging(args: ResourceValidationArgs, report) -> None:
    required = config_list(args, "requiredLogTypes", DEFAULT_LOG_TYPES)
    enabled = {str(t) for t in as_list(get(args.props, "enabledClusterLogTypes"))}
    missing = [t for t in required if t not in enabled]
    if missing:
        report(f"Control-plane log types not enabled: {', '.join(missing)}.")


eks_control_plane_logging = TypedResourcePolicy(
    resource_types=EKS_TYPES,
    name="eks-control-plane-logging",
    description="EKS control-plane logging is on for at least the api, audit and authenticator logs.",
    validate=_eks_logging,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(properties={
        "requiredLogTypes": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_LOG_TYPES},
    }),
    remediation_steps="Pass enabled_cluster_log_types=['api', 'audit', 'authenticator'] (or more) to the cluster.",
    tags=["aws", "eks", "logging"],
)

# ----------------------------------------------------------------------------- EKS authentication mode


def _eks_auth_mode(args: ResourceValidationArgs, report) -> None:
    if args.resource_type == EKS_COMPONENT:
        mode = get(args.props, "authenticationMode")
    elif args.resource_type == EKS_LEAF:
        mode = get(args.props, "accessConfig", "authenticationMode")
    else:
        return
    allowed = config_list(args, "allowedModes", ["API"])
    if mode is None:
        report(f"authenticationMode is unset (defaults to CONFIG_MAP, the aws-auth ConfigMap); "
               f"allowed: {', '.join(allowed)}.")
    elif str(mode) not in allowed:
        report(f"authenticationMode is {mode}; allowed: {', '.join(allowed)}.")


eks_authentication_mode_api = TypedResourcePolicy(
    resource_types=EKS_TYPES,
    name="eks-authentication-mode-api",
    description="EKS authenticates with access entries only (authentication mode API), not the aws-auth ConfigMap.",
    validate=_eks_auth_mode,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(properties={
        "allowedModes": {"type": "array", "items": {"type": "string"}, "default": ["API"]},
    }),
    remediation_steps=(
        "Pass authentication_mode=eks.AuthenticationMode.API and grant access with access_entries "
        "(aws.eks.Cluster: access_config={'authentication_mode': 'API'})."),
    tags=["aws", "eks", "iam"],
)

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
    eks_endpoint_not_public,
    eks_secrets_encryption,
    eks_control_plane_logging,
    eks_authentication_mode_api,
    kms_key_rotation,
    sqs_encryption,
    iam_no_admin_wildcard,
    nodes_require_imdsv2,
    stateful_resources_protected,
    s3_force_destroy_matches_protection,
    pod_identity_trust_scoped,
]
