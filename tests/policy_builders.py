"""Hand-built inputs for the policy rules (tests/test_policies.py, tests/policy_cases.py): a resource
(`Res`) as the ``RegisterResourceRequest`` and mocked state the harness reads, the harness run over a
list of them, and builders of compliant resources (one argument away from a violation)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import struct_pb2
from pulumi.runtime import proto

from plan.policy_harness import evaluate

ROOT = Path(__file__).resolve().parent.parent
STACK_URN = "urn:pulumi:prod::agentic-platform::pulumi:pulumi:Stack::agentic-platform-prod"


@dataclass
class Res:
    type: str
    name: str
    props: dict
    protect: bool = False
    deps: dict = field(default_factory=dict)  # property -> [urn]
    outputs: dict | None = None

    @property
    def urn(self) -> str:
        return f"urn:pulumi:prod::agentic-platform::{self.type}::{self.name}"

    @property
    def id(self) -> str:
        return f"{self.name}-id"


def recorded_requests(resources):
    """(RegisterResourceRequest, urn, mocked state) per resource."""
    out = []
    for r in resources:
        obj = struct_pb2.Struct()
        obj.update(json.loads(json.dumps(r.props)))
        req = proto.RegisterResourceRequest(
            type=r.type, name=r.name, object=obj, protect=r.protect, parent=STACK_URN, custom=True,
            dependencies=sorted({u for us in r.deps.values() for u in us}),
            propertyDependencies={k: proto.RegisterResourceRequest.PropertyDependencies(urns=v)
                                  for k, v in r.deps.items()})
        out.append((req, r.urn, r.outputs if r.outputs is not None else r.props))
    return out


def run(resources, env="prod"):
    recorded = recorded_requests(resources)
    return evaluate([(req, urn) for req, urn, _ in recorded], {urn: state for _, urn, state in recorded}, env)


def hits(findings, policy):
    return [f for f in findings if f["policy"] == policy]


# ----------------------------------------------------------------------------- builders


def meta(name, ns=None):
    m = {"name": name}
    if ns:
        m["namespace"] = ns
    return m


GOOD_CONTAINER = {
    "name": "app", "image": "vllm/vllm-openai:v0.11.0",
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "securityContext": {"allowPrivilegeEscalation": False},
}


def deployment(name="app", ns="ai-agents", container=None, pod=None, kind="Deployment"):
    c = {**GOOD_CONTAINER, **(container or {})}
    pod_spec = {"securityContext": {"runAsNonRoot": True}, "containers": [c], **(pod or {})}
    group = {"Job": "batch/v1", "CronJob": "batch/v1", "Pod": "core/v1"}.get(kind, "apps/v1")
    if kind == "Pod":
        spec = pod_spec
    elif kind == "CronJob":
        spec = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}
    else:
        spec = {"template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}
    return Res(f"kubernetes:{group}:{kind}", name, {"metadata": meta(name, ns), "spec": spec})


def namespace(name, deny=True, quota=True, gpu=0):
    out = [Res("kubernetes:core/v1:Namespace", f"ns-{name}", {"metadata": meta(name)})]
    if deny:
        out.append(Res("kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{name}-deny",
                       {"metadata": meta("default-deny", name),
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}))
    if quota:
        hard = {"requests.cpu": "10", "requests.memory": "20Gi"}
        if gpu:
            hard["requests.nvidia.com/gpu"] = str(gpu)
        out.append(Res("kubernetes:core/v1:ResourceQuota", f"{name}-quota",
                       {"metadata": meta("quota", name), "spec": {"hard": hard}}))
    return out


DEPLOYER = "arn:aws:iam::123456789012:role/PulumiDeployer"
CREATOR_TAG = "agentic.platform/cluster-creator-admin"


def eks_component(**over):
    props = {"endpointPublicAccess": False, "endpointPrivateAccess": True,
             "encryptionConfigKeyArn": "arn:aws:kms:us-west-2:123456789012:key/k",
             "enabledClusterLogTypes": ["api", "audit", "authenticator"], "authenticationMode": "API",
             "clusterTags": {CREATOR_TAG: DEPLOYER}}
    props.update(over)
    return Res("eks:index:Cluster", "eks", {k: v for k, v in props.items() if v is not None})


def eks_leaf(vpc=None, **over):
    props = {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True, "subnetIds": ["s"],
                           **(vpc or {})},
             "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:k"}},
             "enabledClusterLogTypes": ["api", "audit", "authenticator", "scheduler"],
             "accessConfig": {"authenticationMode": "API"}, "tags": {"Name": "eks", CREATOR_TAG: DEPLOYER}}
    props.update(over)
    return Res("aws:eks/cluster:Cluster", "eks-leaf", {k: v for k, v in props.items() if v is not None})


TLS_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
    "Resource": ["arn:aws:s3:::docs", "arn:aws:s3:::docs/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def bucket(name="docs", *, pab=True, sse="aws:kms", versioning="Enabled", tls=True, link="deps",
           protect=True, v2=False, logging="access-logs-bkt", force_destroy=None):
    """A bucket and its pulumi-aws v7 companions; ``link`` = how companions point at it:
    'deps' (property dependency + mocked id), 'id' (mocked id only), 'name' (real bucket name only).
    ``logging``: the bucket its server access logs go to (None: no BucketLogging)."""
    props = {"bucket": f"{name}-bkt", "forceDestroy": not protect if force_destroy is None else force_destroy}
    b = Res("aws:s3/bucketV2:BucketV2" if v2 else "aws:s3/bucket:Bucket", name, props, protect=protect)
    ref = {"id": b.id, "deps": b.id, "name": f"{name}-bkt"}[link]
    deps = {"bucket": [b.urn]} if link == "deps" else {}
    out = [b]
    if pab:
        flags = {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
                 "restrictPublicBuckets": True}
        if pab == "partial":
            flags["restrictPublicBuckets"] = False
        out.append(Res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-pab",
                       {"bucket": ref, **flags}, deps=deps))
    if sse:
        sfx = "V2" if v2 else ""
        out.append(Res(f"aws:s3/bucketServerSideEncryptionConfiguration{sfx}:"
                       f"BucketServerSideEncryptionConfiguration{sfx}", f"{name}-sse",
                       {"bucket": ref, "rules": [{"applyServerSideEncryptionByDefault": {
                           "sseAlgorithm": sse, "kmsMasterKeyId": "arn:aws:kms:k"}, "bucketKeyEnabled": True}]},
                       deps=deps))
    if versioning:
        out.append(Res("aws:s3/bucketVersioning:BucketVersioning", f"{name}-ver",
                       {"bucket": ref, "versioningConfiguration": {"status": versioning}}, deps=deps))
    if tls:
        out.append(Res("aws:s3/bucketPolicy:BucketPolicy", f"{name}-pol", {"bucket": ref, "policy": TLS_POLICY},
                       deps=deps))
    if logging:
        out.append(Res("aws:s3/bucketLogging:BucketLogging", f"{name}-logs",
                       {"bucket": ref, "targetBucket": logging, "targetPrefix": f"{name}/"}, deps=deps))
    return out


def log_target(sse="AES256", link="deps"):
    """An access-log destination bucket and a bucket logging into it."""
    target = bucket("logs", sse=sse, logging=None)
    ref = {"deps": target[0].id, "name": "logs-bkt"}[link]
    source = bucket("src", logging=ref)
    if link == "deps":
        source[-1].deps["targetBucket"] = [target[0].urn]
    return [*target, *source]


def pod_role(condition):
    statement = {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                 "Action": ["sts:AssumeRole", "sts:TagSession"]}
    if condition is not None:
        statement["Condition"] = condition
    return Res("aws:iam/role:Role", "pod-role",
               {"assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})})


SCOPED = {"StringEquals": {"aws:SourceAccount": "123456789012"},
          "ArnLike": {"aws:SourceArn": ["arn:aws:eks:us-west-2:123456789012:cluster/c"]}}


def iam_doc(action="s3:GetObject", resource="arn:aws:s3:::docs/*"):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]})


def nodepool(limits=True, taint=True, req=None, replicas=None):
    tmpl = {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
            "requirements": req or [{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                     "values": ["p5", "g6e"]}]}
    if taint:
        tmpl["taints"] = [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    spec = {"template": {"spec": tmpl}}
    if limits:
        spec["limits"] = {"nvidia.com/gpu": 64} if replicas is None else {"nodes": str(replicas)}
    if replicas is not None:   # a static NodePool (warm nodes): only limits.nodes is allowed
        spec["replicas"] = replicas
    return Res("kubernetes:karpenter.sh/v1:NodePool", "gpu-pool",
               {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": meta("gpu"), "spec": spec})


def release(version):
    props = {"chart": "karpenter", "repositoryOpts": {"repo": "oci://public.ecr.aws/karpenter"},
             "namespace": "kube-system"}
    if version is not None:
        props["version"] = version
    return Res("kubernetes:helm.sh/v3:Release", "karpenter", props)


def gpu_workload(ns):
    return deployment("llm", ns, container={"resources": {
        "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"}}})


