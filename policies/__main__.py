"""Entry point the Pulumi CLI runs (`pulumi preview --policy-pack policies`): builds the PolicyPack only.

The CLI executes this file with policies/ itself on sys.path, so the repository root is added to
import the rules as the `policies` package (the same modules the offline plan and the tests use).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policies import ALL_POLICIES, PACK_ENFORCEMENT_LEVEL, PACK_NAME

PolicyPack(
    name=PACK_NAME,
    enforcement_level=PACK_ENFORCEMENT_LEVEL,
    policies=ALL_POLICIES,
    description="agentic-platform guardrails: EKS, S3, KMS, SQS, IAM, IMDSv2, Kubernetes workloads, tenancy, GPUs.",
)
