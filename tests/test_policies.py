"""Every policy rule: a violating input it catches and a compliant input it passes.

Inputs are ``RegisterResourceRequest``s fed to ``plan.policy_harness.evaluate`` -- the same interface the
offline plan uses -- built directly (``Res``) or recorded from a small program under Pulumi mocks
(``plan.engine.execute``). Assertions are on the harness output: policy name and level.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import ResourceValidationPolicy

from plan.policy_harness import evaluate
from policies import ALL_POLICIES, ENVIRONMENTS, POLICY_NAMES, load_policy_config
from policies.common import TypedResourcePolicy

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


def _requests(resources):
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
    recorded = _requests(resources)
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


# ----------------------------------------------------------------------------- the rule matrix
# policy -> ([violating cases], [compliant cases]); each case is a list of resources.

CASES: dict[str, tuple[list, list]] = {
    "eks-endpoint-not-public": (
        [[eks_component(endpointPublicAccess=None)],
         [eks_component(endpointPublicAccess=True, publicAccessCidrs=["10.0.0.0/8", "0.0.0.0/0"])],
         [eks_component(endpointPublicAccess=True, publicAccessCidrs=["::/0"])],
         [eks_leaf(vpc={"endpointPublicAccess": True})],
         [eks_leaf(vpc={"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]})]],
        [[eks_component()],
         [eks_component(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"])],
         [eks_leaf()],
         [eks_leaf(vpc={"endpointPublicAccess": True, "publicAccessCidrs": ["198.51.100.7/32"]})]],
    ),
    "eks-secrets-encryption": (
        [[eks_component(encryptionConfigKeyArn=None)], [eks_leaf(encryptionConfig=None)],
         [eks_leaf(encryptionConfig={"resources": [], "provider": {"keyArn": "k"}})]],
        [[eks_component()], [eks_leaf()]],
    ),
    "eks-control-plane-logging": (
        [[eks_component(enabledClusterLogTypes=["api"])], [eks_component(enabledClusterLogTypes=None)],
         [eks_leaf(enabledClusterLogTypes=["audit", "authenticator"])]],
        [[eks_component()], [eks_leaf()]],
    ),
    "eks-authentication-mode-api": (
        [[eks_component(authenticationMode=None)], [eks_component(authenticationMode="API_AND_CONFIG_MAP")],
         [eks_leaf(accessConfig={"authenticationMode": "CONFIG_MAP"})]],
        [[eks_component()], [eks_leaf()]],
    ),
    "kms-key-rotation": (
        [[Res("aws:kms/key:Key", "k", {"description": "x"}, protect=True)],
         [Res("aws:kms/key:Key", "k", {"enableKeyRotation": False}, protect=True)]],
        [[Res("aws:kms/key:Key", "k", {"enableKeyRotation": True}, protect=True)],
         [Res("aws:kms/key:Key", "k", {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"},
              protect=True)]],
    ),
    "sqs-encryption": (
        [[Res("aws:sqs/queue:Queue", "q", {"messageRetentionSeconds": 300})],
         [Res("aws:sqs/queue:Queue", "q", {"sqsManagedSseEnabled": False})]],
        [[Res("aws:sqs/queue:Queue", "q", {"sqsManagedSseEnabled": True})],
         [Res("aws:sqs/queue:Queue", "q", {"kmsMasterKeyId": "alias/aws/sqs"})]],
    ),
    "iam-no-admin-wildcard": (
        [[Res("aws:iam/policy:Policy", "p", {"policy": iam_doc("*", "*")})],
         [Res("aws:iam/rolePolicy:RolePolicy", "rp", {"role": "r", "policy": iam_doc(["*"], ["*"])})],
         [Res("aws:iam/role:Role", "r", {"assumeRolePolicy": "{}",
                                          "inlinePolicies": [{"name": "x", "policy": iam_doc("*:*", "*")}]})],
         [Res("aws:iam/policy:Policy", "p", {"policy": json.loads(iam_doc("*", "*"))})]],
        [[Res("aws:iam/policy:Policy", "p", {"policy": iam_doc()})],
         [Res("aws:iam/policy:Policy", "p", {"policy": iam_doc("s3:*", "*")})],
         [Res("aws:iam/role:Role", "r", {"assumeRolePolicy": "{}",
                                          "inlinePolicies": [{"name": "x", "policy": iam_doc()}]})]],
    ),
    "nodes-require-imdsv2": (
        [[Res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"metadataOptions": {"httpTokens": "optional"}})],
         [Res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"imageId": "ami-1"})],
         [Res("eks:index:ManagedNodeGroup", "system", {"instanceTypes": ["m7i.large"]})],
         [Res("aws:eks/nodeGroup:NodeGroup", "ng", {"clusterName": "c"})],
         [Res("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "nc", {"spec": {"amiFamily": "AL2023"}})]],
        [[Res("aws:ec2/launchTemplate:LaunchTemplate", "lt", {"metadataOptions": {"httpTokens": "required"}})],
         [Res("eks:index:ManagedNodeGroup", "system", {"enableIMDSv2": True})],
         [Res("eks:index:ManagedNodeGroup", "system", {"launchTemplate": {"id": "lt-id", "version": "1"}})],
         [Res("aws:eks/nodeGroup:NodeGroup", "ng", {"launchTemplate": {"id": "lt-id", "version": "1"}})],
         [Res("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "nc",
              {"spec": {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}}})]],
    ),
    "stateful-resources-protected": (
        [[Res("aws:s3/bucket:Bucket", "b", {})], [Res("aws:kms/key:Key", "k", {"enableKeyRotation": True})],
         [Res("aws:rds/instance:Instance", "db", {})], [Res("aws:rds/cluster:Cluster", "dbc", {})],
         [Res("aws:elasticache/replicationGroup:ReplicationGroup", "redis", {})]],
        [[Res("aws:s3/bucket:Bucket", "b", {}, protect=True)],
         [Res("aws:elasticache/replicationGroup:ReplicationGroup", "redis", {}, protect=True)],
         [Res("aws:sqs/queue:Queue", "q", {"sqsManagedSseEnabled": True})]],
    ),
    "s3-public-access-blocked": (
        [bucket(pab=False), bucket(pab="partial"), bucket(pab="partial", link="name"),
         bucket(pab=False, v2=True)],
        [bucket(), bucket(link="id"), bucket(link="name"), bucket(v2=True)],
    ),
    "s3-sse-kms": (
        [bucket(sse=False), bucket(sse="AES256"), bucket(sse="AES256", link="id"), log_target(sse="aws:kms")],
        [bucket(), bucket(sse="aws:kms:dsse"), bucket(v2=True, link="name"), log_target(),
         log_target(link="name")],
    ),
    "s3-access-logging": (
        [bucket(logging=None), bucket(logging=None, link="name"),
         [*bucket(logging=None), *bucket("other")]],
        [bucket(), bucket(link="name"), log_target(), log_target(link="name")],
    ),
    "s3-force-destroy-matches-protection": (
        [bucket(protect=False, force_destroy=False), bucket(protect=True, force_destroy=True),
         [Res("aws:s3/bucket:Bucket", "b", {})]],
        [bucket(), bucket(protect=False), bucket(v2=True, protect=False)],
    ),
    "pod-identity-trust-scoped": (
        [[pod_role(None)], [pod_role({"StringEquals": {"aws:SourceAccount": "123456789012"}})],
         [pod_role({"ArnLike": {"aws:SourceArn": "arn:aws:eks:us-west-2:123456789012:cluster/c"}})]],
        [[pod_role(SCOPED)],
         [Res("aws:iam/role:Role", "node", {"assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [
             {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})})]],
    ),
    "eks-cluster-creator-declared": (
        [[eks_component(clusterTags=None)], [eks_leaf(tags={"Name": "eks"})],
         [eks_component(accessEntries={"deployer": {"principalArn": DEPLOYER, "type": "STANDARD"}})],
         [eks_leaf(), Res("aws:eks/accessEntry:AccessEntry", "entry",
                          {"clusterName": "eks", "principalArn": DEPLOYER})]],
        [[eks_component()], [eks_leaf()],
         [eks_component(accessEntries={"ops": {"principalArn": "arn:aws:iam::123456789012:role/Ops"}})]],
    ),
    "s3-versioning": (
        [bucket(versioning=False), bucket(versioning="Suspended")],
        [bucket(), bucket(link="id")],
    ),
    "s3-tls-only": (
        [bucket(tls=False),
         [*bucket(tls=False), Res("aws:s3/bucketPolicy:BucketPolicy", "other-pol",
                                  {"bucket": "other-bucket", "policy": TLS_POLICY})]],
        [bucket(), bucket(link="name")],
    ),
    "k8s-resources-requests-limits": (
        [[deployment(container={"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}})],
         [deployment(container={"resources": {}}, kind="StatefulSet")],
         [deployment(pod={"initContainers": [{"name": "init", "image": "busybox:1.36"}]}, kind="Job")]],
        [[deployment()], [deployment(kind="DaemonSet")], [deployment(kind="CronJob")]],
    ),
    "k8s-no-privileged": (
        [[deployment(container={"securityContext": {"privileged": True}})],
         [deployment(pod={"hostNetwork": True}, kind="DaemonSet")],
         [deployment(pod={"hostPID": True}, kind="Pod")],
         [deployment(pod={"hostIPC": True}, kind="Job")]],
        [[deployment()],
         [deployment(ns="kube-system", pod={"hostNetwork": True}, container={"securityContext": {"privileged": True}},
                     kind="DaemonSet")]],
    ),
    "k8s-images-pinned": (
        [[deployment(container={"image": "nginx"})], [deployment(container={"image": "nginx:latest"})],
         [deployment(container={"image": "registry.local:5000/team/app"})],
         [deployment(pod={"initContainers": [{**GOOD_CONTAINER, "name": "init", "image": "busybox"}]})]],
        [[deployment()], [deployment(container={"image": "registry.local:5000/team/app:1.2.3"})],
         [deployment(container={"image": "ghcr.io/x/y@sha256:" + "a" * 64})]],
    ),
    "k8s-run-as-non-root": (
        [[deployment(pod={"securityContext": {}})],
         [deployment(container={"securityContext": {"runAsNonRoot": False}})],
         [deployment(pod={"securityContext": {"runAsUser": 0}}, kind="StatefulSet")]],
        [[deployment()],
         [deployment(pod={"securityContext": {}}, container={"securityContext": {"runAsNonRoot": True}})],
         [deployment(ns="gpu-operator", pod={"securityContext": {}})]],
    ),
    "k8s-no-loadbalancer-services": (
        [[Res("kubernetes:core/v1:Service", "svc", {"metadata": meta("svc", "ai-agents"),
                                                     "spec": {"type": "LoadBalancer"}})]],
        [[Res("kubernetes:core/v1:Service", "svc", {"metadata": meta("gw", "ai-gateway"),
                                                     "spec": {"type": "LoadBalancer"}})],
         [Res("kubernetes:core/v1:Service", "svc", {"metadata": meta("svc", "ai-agents"),
                                                     "spec": {"type": "ClusterIP"}})]],
    ),
    "helm-release-version-pinned": (
        [[release(None)], [release("")], [release("latest")], [release("^1.14.0")], [release("~1.14")],
         [release(">=1.0.0")], [release("1.x")],
         [Res("kubernetes:helm.sh/v4:Chart", "c", {"chart": "oci://x/y"})]],
        [[release("1.14.1")], [release("v2.4.3")], [release("0.9.12")],
         [Res("kubernetes:helm.sh/v4:Chart", "c", {"chart": "oci://x/y", "version": "88.5.3"})]],
    ),
    "gpu-nodepool-limits-and-taint": (
        [[nodepool(limits=False)], [nodepool(taint=False)], [nodepool(limits=False, replicas=2)],
         [nodepool(limits=False, req=[{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt",
                                       "values": ["0"]}])],
         [nodepool(limits=False, req=[{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                       "values": ["p4d.24xlarge"]}])]],
        [[nodepool()], [nodepool(replicas=2)],
         [nodepool(limits=False, taint=False, req=[{"key": "karpenter.k8s.aws/instance-category",
                                                    "operator": "In", "values": ["m", "c"]}])]],
    ),
    "namespace-default-deny-network-policy": (
        [namespace("ai-agents", deny=False),
         [*namespace("ai-agents", deny=False),
          Res("kubernetes:networking.k8s.io/v1:NetworkPolicy", "allow",
              {"metadata": meta("allow-dns", "ai-agents"),
               "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 53}]}]}})],
         [*namespace("ai-agents", deny=False),
          Res("kubernetes:networking.k8s.io/v1:NetworkPolicy", "deny-other-ns",
              {"metadata": meta("default-deny", "other"),
               "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})]],
        [namespace("ai-agents"),
         [*namespace("ai-agents", deny=False),
          Res("kubernetes:networking.k8s.io/v1:NetworkPolicy", "in",
              {"metadata": meta("deny-in", "ai-agents"), "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
          Res("kubernetes:networking.k8s.io/v1:NetworkPolicy", "out",
              {"metadata": meta("deny-out", "ai-agents"), "spec": {"podSelector": {}, "policyTypes": ["Egress"]}})]],
    ),
    "namespace-resource-quota": (
        [namespace("tenant-a", quota=False)],
        [namespace("tenant-a")],
    ),
    "gpu-requests-need-gpu-quota": (
        [[*namespace("ai-inference"), gpu_workload("ai-inference")],
         [*namespace("ai-inference", quota=False), gpu_workload("ai-inference")]],
        [[*namespace("ai-inference", gpu=8), gpu_workload("ai-inference")],
         [*namespace("ai-agents"), deployment()]],
    ),
}


def test_every_rule_has_cases():
    assert sorted(CASES) == sorted(POLICY_NAMES)
    assert len(set(POLICY_NAMES)) == len(POLICY_NAMES)


def test_rules_are_documented():
    for p in ALL_POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", p.name), p.name
        assert p.description and p.severity is not None and p.remediation_steps, p.name


VIOLATIONS = [pytest.param(name, case, id=f"{name}-violating-{i}")
              for name, (bad, _) in CASES.items() for i, case in enumerate(bad)]
COMPLIANT = [pytest.param(name, case, id=f"{name}-compliant-{i}")
             for name, (_, good) in CASES.items() for i, case in enumerate(good)]


@pytest.mark.parametrize(("policy", "resources"), VIOLATIONS)
def test_rule_catches_violation(policy, resources):
    found = hits(run(resources, "prod"), policy)
    assert found, f"{policy} missed a violation"
    assert {f["level"] for f in found} == {"mandatory"}
    assert all(f["message"] and not f["message"].startswith("can't run") for f in found)
    assert all(f["urn"] in {r.urn for r in resources} for f in found)


@pytest.mark.parametrize(("policy", "resources"), COMPLIANT)
def test_rule_passes_compliant(policy, resources):
    assert hits(run(resources, "prod"), policy) == []


# ----------------------------------------------------------------------------- configs per environment


def test_config_files_cover_every_rule():
    for env in ENVIRONMENTS:
        cfg = load_policy_config(env)
        assert sorted(cfg) == sorted(POLICY_NAMES), env
        for name, entry in cfg.items():
            assert entry["enforcementLevel"] in {"advisory", "mandatory", "disabled"}, (env, name)


def test_prod_is_at_least_as_strict_as_staging_and_dev():
    rank = {"disabled": 0, "advisory": 1, "mandatory": 2}
    lvl = {env: {k: rank[v["enforcementLevel"]] for k, v in load_policy_config(env).items()} for env in ENVIRONMENTS}
    for name in POLICY_NAMES:
        assert lvl["dev"][name] <= lvl["staging"][name] <= lvl["prod"][name], name
    assert all(v == 2 for v in lvl["prod"].values())


def test_unknown_environment_is_an_error():
    with pytest.raises(ValueError, match="unknown environment"):
        load_policy_config("qa")


def test_levels_differ_between_dev_and_prod():
    unversioned = bucket(versioning=False)
    assert [f["level"] for f in hits(run(unversioned, "dev"), "s3-versioning")] == ["advisory"]
    assert [f["level"] for f in hits(run(unversioned, "prod"), "s3-versioning")] == ["mandatory"]
    unprotected = bucket(protect=False)
    assert hits(run(unprotected, "dev"), "stateful-resources-protected") == []  # disabled in dev
    assert [f["level"] for f in hits(run(unprotected, "staging"), "stateful-resources-protected")] == ["advisory"]
    assert [f["level"] for f in hits(run(unprotected, "prod"), "stateful-resources-protected")] == ["mandatory"]


def test_config_properties_reach_rules(monkeypatch):
    svc = Res("kubernetes:core/v1:Service", "svc", {"metadata": meta("svc", "edge"), "spec": {"type": "LoadBalancer"}})
    assert hits(run([svc]), "k8s-no-loadbalancer-services")
    cfg = load_policy_config("prod")
    cfg["k8s-no-loadbalancer-services"]["allowedNamespaces"] = ["edge"]
    monkeypatch.setattr("plan.policy_harness.load_policy_config", lambda env: cfg)
    assert hits(run([svc]), "k8s-no-loadbalancer-services") == []


def test_clean_platform_slice_has_no_findings():
    resources = [eks_component(), eks_leaf(), *bucket(), *namespace("ai-inference", gpu=4),
                 gpu_workload("ai-inference"), nodepool(), release("1.14.1"),
                 Res("aws:kms/key:Key", "k", {"enableKeyRotation": True}, protect=True)]
    for env in ENVIRONMENTS:
        assert run(resources, env) == [], env


def test_harness_returns_the_agreed_shape():
    findings = run([eks_component(authenticationMode=None), *namespace("x", quota=False)], "dev")
    assert findings
    for f in findings:
        assert set(f) == {"policy", "level", "urn", "object", "message"}
        assert f["level"] in {"mandatory", "advisory"}
    assert {f["policy"]: f["level"] for f in findings} == {
        "eks-authentication-mode-api": "mandatory", "namespace-resource-quota": "advisory"}


def test_subset_of_policies():
    from plan.policy_harness import evaluate as ev
    from policies import eks_rules

    r = eks_component(authenticationMode=None)
    obj = struct_pb2.Struct()
    obj.update(r.props)
    req = proto.RegisterResourceRequest(type=r.type, name=r.name, object=obj)
    out = ev([(req, r.urn)], {}, "prod", policies=[eks_rules.eks_secrets_encryption])
    assert out == []


def test_pack_requirements_match_root_pins():
    def pins(path):
        return {line.split("~=")[0].strip(): line.strip() for line in path.read_text().splitlines()
                if "~=" in line and not line.lstrip().startswith("#")}
    pack, root = pins(ROOT / "policies" / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert pack and all(root.get(k) == v for k, v in pack.items()), (pack, root)


def test_pack_entry_point_only_builds_the_pack():
    text = (ROOT / "policies" / "__main__.py").read_text()
    assert "PolicyPack(" in text and "ResourceValidationPolicy" not in text
    assert "runtime:\n  name: python" in (ROOT / "policies" / "PulumiPolicy.yaml").read_text()


# ----------------------------------------------------------------------------- through Pulumi mocks


@pytest.mark.layer
def test_recorded_program_under_mocks():
    """A real (tiny) Pulumi program under mocks -> SafeMonitor records -> harness."""
    import pulumi
    import pulumi_aws as aws
    import pulumi_eks as eks
    import pulumi_kubernetes as k8s

    from plan.engine import execute

    def build(secure):
        def program():
            key = aws.kms.Key("key", enable_key_rotation=secure, opts=pulumi.ResourceOptions(protect=secure))
            eks.Cluster("eks", skip_default_node_group=True, endpoint_public_access=not secure,
                        endpoint_private_access=True, authentication_mode="API" if secure else None,
                        encryption_config_key_arn=key.arn if secure else None,
                        enabled_cluster_log_types=["api", "audit", "authenticator"],
                        cluster_tags={CREATOR_TAG: DEPLOYER} if secure else None)
            b = aws.s3.Bucket("docs", opts=pulumi.ResourceOptions(protect=secure))
            if secure:
                aws.s3.BucketLogging("docs-logs", bucket=b.id, target_bucket="access-logs-bkt", target_prefix="docs/")
            aws.s3.BucketPublicAccessBlock("docs-pab", bucket=b.id, block_public_acls=True,
                                           block_public_policy=True, ignore_public_acls=True,
                                           restrict_public_buckets=secure)
            aws.s3.BucketServerSideEncryptionConfiguration(
                "docs-sse", bucket=b.id, rules=[{"apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms" if secure else "AES256", "kms_master_key_id": key.arn}}])
            aws.s3.BucketVersioning("docs-ver", bucket=b.id, versioning_configuration={"status": "Enabled"})
            aws.s3.BucketPolicy("docs-pol", bucket=b.id, policy=TLS_POLICY if secure else iam_doc())
            ns = k8s.core.v1.Namespace("ns", metadata={"name": "ai-agents"})
            k8s.networking.v1.NetworkPolicy("deny", metadata={"name": "default-deny", "namespace": ns.metadata.name},
                                            spec={"pod_selector": {}, "policy_types": ["Ingress", "Egress"]})
            k8s.core.v1.ResourceQuota("quota", metadata={"name": "quota", "namespace": "ai-agents"},
                                      spec={"hard": {"requests.cpu": "4"}})
            k8s.apps.v1.Deployment("app", metadata={"name": "app", "namespace": "ai-agents"}, spec={
                "selector": {"match_labels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}}, "spec": {
                    "security_context": {"run_as_non_root": True},
                    "containers": [{"name": "a", "image": "busybox:1.36" if secure else "busybox",
                                    "resources": GOOD_CONTAINER["resources"]}]}}})
        # the plan's own mock engine records the requests the harness analyses
        monitor = execute(program, stack="policy-test", config={}).monitor
        return evaluate(monitor.requests, {urn: r.state for urn, r in monitor.resources.items()}, "prod")

    assert build(True) == []
    names = {f["policy"] for f in build(False)}
    assert names == {"kms-key-rotation", "stateful-resources-protected", "eks-endpoint-not-public",
                     "eks-authentication-mode-api", "eks-secrets-encryption", "s3-public-access-blocked",
                     "s3-sse-kms", "s3-tls-only", "k8s-images-pinned", "s3-access-logging",
                     "eks-cluster-creator-declared", "s3-force-destroy-matches-protection"}


def test_every_resource_rule_names_the_types_it_reads():
    """The harness sends a resource only through the rules that read its type (TypedResourcePolicy);
    a rule's validate is never called for another type, under preview as in the plan."""
    resource_rules = [p for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)]
    assert resource_rules and all(isinstance(p, TypedResourcePolicy) and p.resource_types for p in resource_rules)
    imds = next(p for p in resource_rules if p.name == "nodes-require-imdsv2")
    assert imds.reads("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")   # a glob over API versions
    assert imds.reads("kubernetes:karpenter.k8s.aws/v1beta1:EC2NodeClass")
    assert not imds.reads("kubernetes:karpenter.sh/v1:NodePool")
    seen = []
    rule = TypedResourcePolicy(name="only-queues", description="d", resource_types=("aws:sqs/queue:Queue",),
                               validate=lambda args, report: (seen.append(args.resource_type), report("no")))
    findings = evaluate([(req, urn) for req, urn, _ in _requests([Res("aws:kms/key:Key", "k", {}),
                                                                  Res("aws:sqs/queue:Queue", "q", {})])],
                        {}, "prod", [rule])
    assert seen == ["aws:sqs/queue:Queue"] and [f["urn"] for f in findings] == [Res("aws:sqs/queue:Queue", "q", {}).urn]
