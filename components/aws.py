"""AWS building blocks every layer shares: Pod Identity roles, secure S3 buckets, the access-log
bucket, policy JSON, PostgreSQL."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import names

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
# Days a non-current object version is kept before the bucket lifecycle expires it.
NONCURRENT_VERSION_DAYS = 30
# Days S3 server access logs are kept in the access-log bucket.
ACCESS_LOG_DAYS = 365
# The service principal that writes S3 server access logs.
S3_LOGGING_PRINCIPAL = "logging.s3.amazonaws.com"


def policy_json(statements: list[dict[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document from statements that may hold Outputs (ARNs)."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def pod_identity_trust(cluster_name: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
                       ) -> pulumi.Output[str]:
    """Trust policy of a role assumed through EKS Pod Identity, for ONE cluster of this account.

    The EKS principal `pods.eks.amazonaws.com` names no cluster: without conditions, any cluster
    in the account (dev and prod share one) could bind the role with a Pod Identity association.
    The conditions are the cross-service confused-deputy keys EKS documents for its service
    principals (docs.aws.amazon.com/eks/latest/userguide/cross-service-confused-deputy-prevention.html;
    the trust policy itself: docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html):
    `aws:SourceAccount` = this account and `aws:SourceArn` = this cluster. ArnLike takes the
    cluster's ARN and the ARNs of its Pod Identity associations
    (`arn:<p>:eks:<region>:<account>:podidentityassociation/<cluster>/<id>`, the form users report
    EKS Auth sends, e.g. awslabs/mountpoint-s3-csi-driver#781): both name this cluster only."""
    invoke = pulumi.InvokeOutputOptions(parent=opts.parent) if opts is not None and opts.parent else None
    partition = aws.get_partition_output(opts=invoke).partition
    region = aws.get_region_output(opts=invoke).region
    account = aws.get_caller_identity_output(opts=invoke).account_id

    def doc(p: str, r: str, a: str, cluster: str) -> dict[str, Any]:
        eks = f"arn:{p}:eks:{r}:{a}"
        return {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "AllowEksAuthToAssumeRoleForPodIdentity", "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_PRINCIPAL}, "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:SourceAccount": a},
                              "ArnLike": {"aws:SourceArn": [f"{eks}:cluster/{cluster}",
                                                            f"{eks}:podidentityassociation/{cluster}/*"]}}}],
        }

    return pulumi.Output.json_dumps(pulumi.Output.all(partition, region, account, cluster_name)
                                    .apply(lambda v: doc(*v)))


@dataclass
class PodIdentity:
    role: aws.iam.Role
    association: aws.eks.PodIdentityAssociation


def pod_identity_role(resource_name: str, *, cluster_name: pulumi.Input[str], namespace: str,
                      service_account: str, opts: pulumi.ResourceOptions,
                      policy: pulumi.Input[str] | None = None,
                      managed_policy_arns: tuple[str, ...] = (),
                      tags: dict[str, str] | None = None) -> PodIdentity:
    """A role for one Kubernetes service account, bound by an EKS Pod Identity association.
    `policy` is an inline least-privilege document; managed policies only where AWS maintains a
    scoped one (e.g. the EBS CSI driver's)."""
    role = aws.iam.Role(f"{resource_name}-role", assume_role_policy=pod_identity_trust(cluster_name, opts),
                        description=f"Pod Identity role of {namespace}/{service_account}",
                        tags=tags, opts=opts)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=role))
    if policy is not None:
        aws.iam.RolePolicy(f"{resource_name}-policy", role=role.id, policy=policy, opts=child)
    for arn in managed_policy_arns:
        aws.iam.RolePolicyAttachment(f"{resource_name}-{arn.rsplit('/', 1)[-1]}", role=role.name,
                                     policy_arn=arn, opts=child)
    assoc = aws.eks.PodIdentityAssociation(f"{resource_name}-pod-identity", cluster_name=cluster_name,
                                           namespace=namespace, service_account=service_account,
                                           role_arn=role.arn, tags=tags, opts=child)
    return PodIdentity(role, assoc)


@dataclass
class AccessLogBucket:
    """The stack's S3 server access-log destination."""

    bucket: aws.s3.Bucket
    policy: aws.s3.BucketPolicy


# The access-log bucket every secure_bucket logs into, set by AgenticPlatform around the layers it
# builds (`access_logs_into`). A bucket declared outside that scope (a component on its own, in a
# unit test) has no access logging, which the policy pack's s3-access-logging reports.
_ACCESS_LOGS: contextvars.ContextVar[AccessLogBucket | None] = contextvars.ContextVar("access_logs", default=None)


@contextlib.contextmanager
def access_logs_into(target: AccessLogBucket) -> Iterator[None]:
    token = _ACCESS_LOGS.set(target)
    try:
        yield
    finally:
        _ACCESS_LOGS.reset(token)


def _bucket_basics(resource_name: str, bucket: aws.s3.Bucket, child: pulumi.ResourceOptions,
                   rules: list[dict[str, Any]]) -> aws.s3.BucketPublicAccessBlock:
    """Versioning, the lifecycle `rules` (after versioning), all four public-access blocks."""
    versioning = aws.s3.BucketVersioning(f"{resource_name}-versioning", bucket=bucket.id,
                                         versioning_configuration={"status": "Enabled"}, opts=child)
    aws.s3.BucketLifecycleConfiguration(
        f"{resource_name}-lifecycle", bucket=bucket.id, rules=rules,
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[versioning])))
    return aws.s3.BucketPublicAccessBlock(f"{resource_name}-public-access", bucket=bucket.id,
                                          block_public_acls=True, block_public_policy=True,
                                          ignore_public_acls=True, restrict_public_buckets=True, opts=child)


def _deny_insecure_transport(bucket: aws.s3.Bucket) -> dict[str, Any]:
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket.arn, bucket.arn.apply(lambda a: f"{a}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def access_log_bucket(resource_name: str, *, protect: bool, opts: pulumi.ResourceOptions,
                      tags: dict[str, str] | None = None) -> AccessLogBucket:
    """The destination of every bucket's S3 server access logs. Like every platform bucket
    (versioning, public access blocked, TLS only, forceDestroy = not protect) but encrypted with
    SSE-S3: "default bucket encryption on the destination bucket [is supported] only if you use
    server-side encryption with Amazon S3 managed keys (SSE-S3) ... SSE-KMS is not supported"
    (docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html). Logs expire
    after ACCESS_LOG_DAYS. S3 delivers logs as the logging service principal, allowed by the bucket
    policy for this account's buckets only (the same page, "Grant permissions to the logging
    service principal by using a bucket policy"); ACLs stay disabled (BucketOwnerEnforced)."""
    keep = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
    bucket = aws.s3.Bucket(resource_name, force_destroy=not protect,
                           tags={**(tags or {}), "purpose": "access-logs"}, opts=keep)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=bucket))
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{resource_name}-sse", bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}], opts=child)
    aws.s3.BucketOwnershipControls(f"{resource_name}-ownership", bucket=bucket.id,
                                   rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
    block = _bucket_basics(resource_name, bucket, child, [
        {"id": "expire-logs", "status": "Enabled", "filter": {},
         "expiration": {"days": ACCESS_LOG_DAYS},
         "noncurrent_version_expiration": {"noncurrent_days": 1},
         "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}])
    invoke = pulumi.InvokeOutputOptions(parent=bucket)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    partition = aws.get_partition_output(opts=invoke).partition
    policy = aws.s3.BucketPolicy(
        f"{resource_name}-policy", bucket=bucket.id,
        policy=policy_json([
            _deny_insecure_transport(bucket),
            {"Sid": "S3ServerAccessLogsPolicy", "Effect": "Allow", "Principal": {"Service": S3_LOGGING_PRINCIPAL},
             "Action": "s3:PutObject", "Resource": bucket.arn.apply(lambda a: f"{a}/*"),
             "Condition": {"StringEquals": {"aws:SourceAccount": account},
                           "ArnLike": {"aws:SourceArn": partition.apply(lambda p: f"arn:{p}:s3:::*")}}},
        ]),
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[block])))
    return AccessLogBucket(bucket, policy)


@dataclass
class SecureBucket:
    bucket: aws.s3.Bucket
    key: aws.kms.Key

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.bucket.arn

    def read_write_statements(self, prefix: str = "*") -> list[dict[str, Any]]:
        """IAM statements for a workload that reads and writes objects (and uses the key)."""
        return [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": self.bucket.arn},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                           "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": self.bucket.arn.apply(lambda a: f"{a}/{prefix}")},
            {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
             "Resource": self.key.arn},
        ]

    def read_only_statements(self, prefix: str = "*") -> list[dict[str, Any]]:
        return [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": self.bucket.arn},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": self.bucket.arn.apply(lambda a: f"{a}/{prefix}")},
            {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": self.key.arn},
        ]


def secure_bucket(resource_name: str, *, purpose: str, protect: bool, opts: pulumi.ResourceOptions,
                  tags: dict[str, str] | None = None,
                  lifecycle_rules: list[dict[str, Any]] | None = None) -> SecureBucket:
    """An S3 bucket as every bucket of the platform must be: SSE-KMS with a bucket key and a key of
    its own (rotation on), versioning with expiry of non-current versions, all four public-access
    blocks, a policy that denies any request not over TLS, and server access logs into the stack's
    access-log bucket; `lifecycle_rules` are the bucket's own, beside those (a bucket has one
    lifecycle configuration). `protect` keeps bucket and key through `pulumi destroy`; without it the
    bucket is `forceDestroy` (objects and versions deleted with it: `pulumi destroy` would stop at
    BucketNotEmpty otherwise)."""
    keep = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
    key = aws.kms.Key(f"{resource_name}-key", description=f"SSE-KMS key of the {purpose} bucket",
                      enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=keep)
    bucket = aws.s3.Bucket(resource_name, force_destroy=not protect,
                           tags={**(tags or {}), "purpose": purpose}, opts=keep)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=bucket))
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{resource_name}-sse", bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                            "kms_master_key_id": key.arn},
                "bucket_key_enabled": True}],
        opts=child)
    block = _bucket_basics(resource_name, bucket, child, [
        {"id": "expire-noncurrent", "status": "Enabled", "filter": {},
         "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
         "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}, *(lifecycle_rules or [])])
    aws.s3.BucketPolicy(
        f"{resource_name}-tls-only", bucket=bucket.id, policy=policy_json([_deny_insecure_transport(bucket)]),
        # A bucket policy put before the public-access block can be refused as "public".
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[block])))
    logs = _ACCESS_LOGS.get()
    if logs is not None:
        # After the destination's policy: S3 checks it can deliver when logging is put.
        aws.s3.BucketLogging(f"{resource_name}-access-logs", bucket=bucket.id, target_bucket=logs.bucket.bucket,
                             target_prefix=f"{purpose}/",
                             opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[logs.policy])))
    return SecureBucket(bucket, key)


def snapshot_suffix(resource_name: str, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """8 random hex characters, created with the stack (state holds them), new when the stack is
    recreated: the part of a final snapshot name that differs between incarnations."""
    return random.RandomId(resource_name, byte_length=names.SNAPSHOT_SUFFIX_BYTES, opts=opts).hex


@dataclass
class PostgresSpec:
    """What differs between the platform's RDS PostgreSQL databases."""

    purpose: str                   # e.g. "langfuse", "kagent": database, user and name prefix
    engine_version: str
    instance_class: str
    storage_gib: int
    multi_az: bool
    backup_retention_days: int


def postgres(resource_name: str, spec: PostgresSpec, *, name_prefix: str,
             password: pulumi.Input[str], vpc_id: pulumi.Input[str], subnet_ids: list[pulumi.Input[str]],
             cluster_security_group_id: pulumi.Input[str], protect: bool, tags: dict[str, str],
             opts: pulumi.ResourceOptions) -> aws.rds.Instance:
    """An RDS PostgreSQL instance as every database of the platform must be: encrypted with a key of
    its own (rotation on), private subnets, reachable on 5432 from the cluster security group only,
    backed up, a final snapshot on delete, deletion protection and `protect` with protectData.
    Depends on the network only, so it builds while EKS does (~15 min beside EKS's ~10): the final
    snapshot name starts with `name_prefix`, the configured cluster name (a string known up front,
    not the cluster's output, which would hold the instance until the control plane is ACTIVE);
    the cluster security group id is read only by the ingress rule, not by the instance."""
    keep = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
    assert spec.purpose in names.RDS_SNAPSHOT_PURPOSES, "add the purpose to names.RDS_SNAPSHOT_PURPOSES (name limits)"
    suffix = snapshot_suffix(f"{resource_name}-final-snapshot", opts)
    key = aws.kms.Key(f"{resource_name}-key", description=f"Encryption of the {spec.purpose} RDS database",
                      enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=keep)
    subnets = aws.rds.SubnetGroup(f"{resource_name}", subnet_ids=subnet_ids,
                                  description=f"{spec.purpose} database: private subnets", tags=tags, opts=opts)
    sg = aws.ec2.SecurityGroup(f"{resource_name}", vpc_id=vpc_id,
                               description=f"{spec.purpose} database: PostgreSQL from the cluster only",
                               tags=tags, opts=opts)
    aws.vpc.SecurityGroupIngressRule(f"{resource_name}-from-cluster", security_group_id=sg.id,
                                     referenced_security_group_id=cluster_security_group_id,
                                     ip_protocol="tcp", from_port=5432, to_port=5432,
                                     description="PostgreSQL from EKS nodes and pods",
                                     opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=sg)))
    return aws.rds.Instance(
        resource_name,
        identifier_prefix=f"{spec.purpose}-",
        engine="postgres",
        engine_version=spec.engine_version,
        instance_class=spec.instance_class,
        allocated_storage=spec.storage_gib,
        max_allocated_storage=spec.storage_gib * 4,
        storage_type="gp3",
        storage_encrypted=True,
        kms_key_id=key.arn,
        db_name=spec.purpose,
        username=spec.purpose,
        password=pulumi.Output.secret(password),
        db_subnet_group_name=subnets.name,
        vpc_security_group_ids=[sg.id],
        multi_az=spec.multi_az,
        publicly_accessible=False,
        deletion_protection=protect,
        skip_final_snapshot=False,
        # Per cluster (two stacks in one account and region never collide) and per incarnation of
        # the stack: a fixed name would make the second destroy of a recreated stack fail with
        # DBSnapshotAlreadyExists.
        final_snapshot_identifier=suffix.apply(
            lambda s: names.final_snapshot_name(f"{name_prefix}-{spec.purpose}", s)),
        backup_retention_period=spec.backup_retention_days,
        copy_tags_to_snapshot=True,
        auto_minor_version_upgrade=True,
        tags=tags,
        opts=pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(additional_secret_outputs=["password"])),
    )
