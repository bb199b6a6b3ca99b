"""S3 rules (stack-level): pulumi-aws v7 splits a bucket's settings into companion resources
(public access block, encryption, versioning, bucket policy, logging), so each rule correlates a
bucket with its own companions through their dependencies."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .common import (
    get,
    is_map,
    parse_policy_document,
    peek,
    statements,
    truthy,
)

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
