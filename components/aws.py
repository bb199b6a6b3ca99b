"""AWS building blocks every layer shares: Pod Identity roles, secure S3 buckets, policy JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
# Days a non-current object version is kept before the bucket lifecycle expires it.
NONCURRENT_VERSION_DAYS = 30


def policy_json(statements: list[dict[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document from statements that may hold Outputs (ARNs)."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def pod_identity_trust() -> str:
    """Trust policy of a role assumed through EKS Pod Identity (no OIDC edits needed)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": POD_IDENTITY_PRINCIPAL},
                       "Action": ["sts:AssumeRole", "sts:TagSession"]}],
    })


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
    role = aws.iam.Role(f"{resource_name}-role", assume_role_policy=pod_identity_trust(),
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
                  tags: dict[str, str] | None = None, force_destroy: bool = False) -> SecureBucket:
    """An S3 bucket as every bucket of the platform must be: SSE-KMS with a bucket key and a key of
    its own (rotation on), versioning with expiry of non-current versions, all four public-access
    blocks, and a policy that denies any request not over TLS. `protect` keeps bucket and key
    through `pulumi destroy`."""
    keep = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
    key = aws.kms.Key(f"{resource_name}-key", description=f"SSE-KMS key of the {purpose} bucket",
                      enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=keep)
    bucket = aws.s3.Bucket(resource_name, force_destroy=force_destroy and not protect,
                           tags={**(tags or {}), "purpose": purpose}, opts=keep)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=bucket))
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{resource_name}-sse", bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms",
                                                            "kms_master_key_id": key.arn},
                "bucket_key_enabled": True}],
        opts=child)
    versioning = aws.s3.BucketVersioning(f"{resource_name}-versioning", bucket=bucket.id,
                                         versioning_configuration={"status": "Enabled"}, opts=child)
    aws.s3.BucketLifecycleConfiguration(
        f"{resource_name}-lifecycle", bucket=bucket.id,
        rules=[{"id": "expire-noncurrent", "status": "Enabled", "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7}}],
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[versioning])))
    block = aws.s3.BucketPublicAccessBlock(f"{resource_name}-public-access", bucket=bucket.id,
                                           block_public_acls=True, block_public_policy=True,
                                           ignore_public_acls=True, restrict_public_buckets=True, opts=child)
    aws.s3.BucketPolicy(
        f"{resource_name}-tls-only", bucket=bucket.id,
        policy=policy_json([{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket.arn, bucket.arn.apply(lambda a: f"{a}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }]),
        # A bucket policy put before the public-access block can be refused as "public".
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[block])))
    return SecureBucket(bucket, key)


@dataclass
class PostgresSpec:
    """What differs between the platform's RDS PostgreSQL databases."""

    purpose: str                   # e.g. "langfuse", "kagent": database, user and name prefix
    engine_version: str
    instance_class: str
    storage_gib: int
    multi_az: bool
    backup_retention_days: int


def postgres(resource_name: str, spec: PostgresSpec, *, cluster_name: pulumi.Input[str],
             password: pulumi.Input[str], vpc_id: pulumi.Input[str], subnet_ids: list[pulumi.Input[str]],
             cluster_security_group_id: pulumi.Input[str], protect: bool, tags: dict[str, str],
             opts: pulumi.ResourceOptions) -> aws.rds.Instance:
    """An RDS PostgreSQL instance as every database of the platform must be: encrypted with a key of
    its own (rotation on), private subnets, reachable on 5432 from the cluster security group only,
    backed up, a final snapshot on delete, deletion protection and `protect` with protectData.
    Depends on the network (and the cluster SG id) only, so it builds while EKS does."""
    keep = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
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
        # Per cluster: two stacks in one account and region never collide.
        final_snapshot_identifier=pulumi.Output.concat(cluster_name, f"-{spec.purpose}-final"),
        backup_retention_period=spec.backup_retention_days,
        copy_tags_to_snapshot=True,
        auto_minor_version_upgrade=True,
        tags=tags,
        opts=pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(additional_secret_outputs=["password"])),
    )
