"""EKS cluster rules (resource-level): endpoint access, secrets encryption, control-plane logs,
authentication mode.

Every rule looks at BOTH shapes a cluster takes:

* ``eks:index:Cluster`` -- the pulumi_eks component, whose inputs are all the offline plan sees
  (its children do not exist under mocks): ``endpointPublicAccess``, ``publicAccessCidrs``,
  ``encryptionConfigKeyArn``, ``enabledClusterLogTypes``, ``authenticationMode``.
* ``aws:eks/cluster:Cluster`` -- the leaf a real ``pulumi preview`` analyzes (``vpcConfig``,
  ``encryptionConfig``, ``enabledClusterLogTypes``, ``accessConfig``).

The other AWS resource rules are in ``aws_rules``.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    Severity,
)

from .common import TypedResourcePolicy, as_list, config_list, get, truthy

EKS_COMPONENT = "eks:index:Cluster"
EKS_LEAF = "aws:eks/cluster:Cluster"
EKS_TYPES = (EKS_COMPONENT, EKS_LEAF)
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


POLICIES = [
    eks_endpoint_not_public,
    eks_secrets_encryption,
    eks_control_plane_logging,
    eks_authentication_mode_api,
]
