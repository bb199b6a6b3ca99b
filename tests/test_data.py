"""Data layer: document store, Milvus on S3 through Pod Identity, Redis (Valkey or ElastiCache),
connection Secrets, protectData, no secret in plain text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.config import ConfigError, validate
from plan.engine import ROOT, Plan, Resource, read_stack, run_program
from plan.report import to_json, write_manifests
from tests.conftest import rendered, stack_doc, write_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "aws:kms/key:Key"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
SECRET = "kubernetes:core/v1:Secret"
MOCK_SECRET_PREFIXES = ("mock-generated-", "mock-secret-")


def data_resources(plan: Plan) -> list[Resource]:
    """Resources below the DataServices component."""
    comp = next(r for r in plan.resources if r.type == "agentic:data:DataServices")
    by_urn = {r.urn: r for r in plan.resources}
    out = []
    for r in plan.resources:
        node = r
        while node.parent and node.parent in by_urn:
            if node.parent == comp.urn:
                out.append(r)
                break
            node = by_urn[node.parent]
    return out


def one(plan: Plan, typ: str, name: str) -> Resource:
    found = [r for r in data_resources(plan) if r.type == typ and r.name == name]
    assert len(found) == 1, f"{typ} {name}: {len(found)} found"
    return found[0]


def release(plan: Plan, release_name: str) -> Resource:
    found = [r for r in data_resources(plan) if r.type == RELEASE and r.inputs.get("name") == release_name]
    assert len(found) == 1, release_name
    return found[0]


# ------------------------------------------------------------------------------ document store

@pytest.mark.parametrize("bucket", ["data-documents", "data-milvus"])
def test_prod_bucket_has_all_companions(prod_plan, bucket):
    b = one(prod_plan, BUCKET, bucket)
    bucket_id = f"mock-{bucket}"
    sse = one(prod_plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              f"{bucket}-sse").inputs
    assert sse["bucket"] == bucket_id
    rule = sse["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].endswith(f"key/mock-{bucket}-key")
    assert rule["bucketKeyEnabled"] is True
    versioning = one(prod_plan, "aws:s3/bucketVersioning:BucketVersioning", f"{bucket}-versioning").inputs
    assert versioning["bucket"] == bucket_id and versioning["versioningConfiguration"]["status"] == "Enabled"
    block = one(prod_plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{bucket}-public-access").inputs
    assert block["bucket"] == bucket_id
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    policy = json.loads(one(prod_plan, "aws:s3/bucketPolicy:BucketPolicy", f"{bucket}-tls-only").inputs["policy"])
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert f"arn:aws:s3:::{bucket_id}/*" in deny[0]["Resource"]
    lifecycle = one(prod_plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                    f"{bucket}-lifecycle").inputs
    assert lifecycle["rules"][0]["noncurrentVersionExpiration"]["noncurrentDays"] > 0
    assert b.inputs["forceDestroy"] is False


# ------------------------------------------------------------------------------ Milvus

def test_prod_milvus_cluster_on_s3_through_pod_identity(prod_plan):
    rel = release(prod_plan, "milvus")
    assert rel.inputs["chart"] == "platform/charts/milvus-5.0.19.tgz" and rel.inputs["version"] == "5.0.19"
    assert rel.inputs["namespace"] == "ai-data"
    v = rel.inputs["values"]
    assert v["cluster"]["enabled"] is True
    assert v["minio"]["enabled"] is False
    s3 = v["externalS3"]
    assert s3["enabled"] is True and s3["useIAM"] is True and s3["cloudProvider"] == "aws"
    assert s3["bucketName"] == "mock-data-milvus" and s3["useSSL"] is True
    assert s3["host"] == "s3.us-west-2.amazonaws.com"
    # Woodpecker (embedded in the streaming node) is the message queue; Pulsar and Kafka are off.
    assert v["woodpecker"]["enabled"] is True and v["streaming"]["woodpecker"]["embedded"] is True
    assert v["pulsarv3"]["enabled"] is False and v["pulsar"]["enabled"] is False and v["kafka"]["enabled"] is False
    # The seed's replicas (2.6: index node folded into the data node).
    assert v["proxy"]["replicas"] == 2 and v["queryNode"]["replicas"] == 3 and v["dataNode"]["replicas"] == 2
    assert v["queryNode"]["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"},
                                           "limits": {"cpu": "4", "memory": "16Gi"}}
    for comp in ("proxy", "queryNode", "dataNode", "mixCoordinator", "streamingNode"):
        assert v[comp]["resources"]["requests"] and v[comp]["resources"]["limits"], comp
    etcd = v["etcd"]
    assert etcd["replicaCount"] == 3 and etcd["persistence"]["storageClass"] == "gp3-encrypted"
    assert etcd["resources"]["limits"]
    assert v["metrics"]["serviceMonitor"]["enabled"] is True
    assert v["containerSecurityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert v["securityContext"]["runAsNonRoot"] is True
    # The chart's ServiceAccount is the one the Pod Identity association binds.
    assert v["serviceAccount"] == {"create": True, "name": "milvus"}
    assoc = one(prod_plan, "aws:eks/podIdentityAssociation:PodIdentityAssociation", "data-milvus-pod-identity")
    assert assoc.inputs["namespace"] == "ai-data" and assoc.inputs["serviceAccount"] == "milvus"
    assert assoc.urn in rel.dependencies, "Milvus pods must not start before their role is bound"
    policy = json.loads(one(prod_plan, "aws:iam/rolePolicy:RolePolicy", "data-milvus-policy").inputs["policy"])
    resources = {json.dumps(s["Resource"]) for s in policy["Statement"]}
    assert all("mock-data-milvus" in r or "mock-data-milvus-key" in r for r in resources), resources
    assert not any("*" == r.strip('"') for r in resources), "the role is scoped to its bucket"


def test_dev_milvus_standalone_on_gp3(dev_plan):
    v = release(dev_plan, "milvus").inputs["values"]
    assert v["cluster"]["enabled"] is False
    assert v["standalone"]["messageQueue"] == "woodpecker"
    assert v["standalone"]["persistence"]["persistentVolumeClaim"]["storageClass"] == "gp3-encrypted"
    assert v["standalone"]["resources"]["limits"]["memory"] == "8Gi"
    assert v["minio"]["enabled"] is False and v["externalS3"]["useIAM"] is True


# ------------------------------------------------------------------------------ Redis

def test_prod_elasticache(prod_plan):
    rg = one(prod_plan, REPLICATION_GROUP, "data-redis")
    i = rg.inputs
    assert i["atRestEncryptionEnabled"] is True and i["transitEncryptionEnabled"] is True
    assert i["kmsKeyId"].endswith("key/mock-data-redis")
    assert i["multiAzEnabled"] is True and i["automaticFailoverEnabled"] is True
    assert i["numCacheClusters"] >= 2
    assert i["authToken"] == "[secret]"
    assert i["finalSnapshotIdentifier"] and i["snapshotRetentionLimit"] >= 1
    assert i["engine"] == "valkey" and i["engineVersion"] == "8.0"
    assert i["replicationGroupId"] == "agentic-prod-redis"
    assert i["finalSnapshotIdentifier"] == "agentic-prod-redis-final-01234567"  # + the stack's random suffix
    assert i["securityGroupIds"] == ["mock-data-redis"]
    # Built beside EKS: nothing of the cluster layer among its dependencies.
    assert not [d for d in rg.dependencies if "agentic:cluster:" in d or "eks:" in d], rg.dependencies
    subnets = one(prod_plan, "aws:elasticache/subnetGroup:SubnetGroup", "data-redis")
    assert len(subnets.inputs["subnetIds"]) == 3 and subnets.urn in rg.dependencies
    assert all(s.startswith("mock-network-private-") for s in subnets.inputs["subnetIds"])
    rule = one(prod_plan, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "data-redis-from-cluster")
    assert rule.inputs["referencedSecurityGroupId"] == "sg-mock-agentic-prod"
    assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 6379
    assert "cidrIpv4" not in rule.inputs
    assert not [r for r in data_resources(prod_plan) if r.type == RELEASE and r.inputs.get("name") == "valkey"]
    token = one(prod_plan, "random:index/randomPassword:RandomPassword", "data-redis-auth").inputs
    assert token["length"] >= 16 and not set(token["overrideSpecial"]) & set('@"/ ')


def test_dev_valkey_with_auth(dev_plan):
    rel = release(dev_plan, "valkey")
    assert rel.inputs["chart"] == "platform/charts/valkey-0.11.0.tgz" and rel.inputs["version"] == "0.11.0"
    v = rel.inputs["values"]
    assert v["auth"]["enabled"] is True and v["auth"]["usersExistingSecret"] == "valkey-users"
    assert "password" not in json.dumps(v["auth"])
    assert v["image"]["tag"] and v["image"]["tag"] != "latest"
    assert v["dataStorage"]["enabled"] is True and v["dataStorage"]["className"] == "gp3-encrypted"
    assert v["resources"]["limits"] and v["metrics"]["enabled"] is True
    users = one(dev_plan, SECRET, "data-valkey-users")
    assert users.inputs["metadata"] == {**users.inputs["metadata"], "name": "valkey-users", "namespace": "ai-data"}
    assert users.inputs["stringData"] == {"default": "[secret]"}   # the ACL user's password, never plain
    assert users.urn in rel.dependencies
    assert not [r for r in data_resources(dev_plan) if r.type == REPLICATION_GROUP]


@pytest.mark.program
def test_valkey_replica_when_configured(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:data"]["redis"]["replicas"] = 1

    plan = run_program(read_stack(str(write_stack(tmp_path, doc))))
    v = release(plan, "valkey").inputs["values"]
    assert v["replica"]["enabled"] is True and v["replica"]["replicas"] == 1
    assert v["replica"]["persistence"]["storageClass"] == "gp3-encrypted"
    assert "dataStorage" not in v


# ------------------------------------------------------------------------------ consumers

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_connection_secrets(request, stack):
    plan: Plan = request.getfixturevalue(f"{stack}_plan")
    secrets = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r
               for r in data_resources(plan) if r.type == SECRET}
    assert {("ai-agents", "redis-connection"), ("observability", "redis-connection"),
            ("ai-agents", "milvus-connection")} <= set(secrets)
    redis = secrets[("ai-agents", "redis-connection")].inputs["stringData"]
    assert set(redis) == {"host", "port", "username", "password", "tls", "url"}
    milvus = secrets[("ai-agents", "milvus-connection")].inputs["stringData"]
    assert set(milvus) == {"host", "port", "address", "uri"}
    for s in secrets.values():
        assert set(s.inputs["stringData"].values()) == {"[secret]"}   # the whole map is a Pulumi secret


def test_outputs(prod_plan, dev_plan):
    assert prod_plan.outputs["documentsBucket"] == "mock-data-documents"
    assert dev_plan.outputs["redisEndpoint"] == "valkey.ai-data.svc.cluster.local:6379"
    assert "redisEndpoint" in prod_plan.outputs


# ------------------------------------------------------------------------------ nothing lost

def stateful(plan: Plan) -> list[Resource]:
    return [r for r in data_resources(plan) if r.type in (BUCKET, KMS_KEY, REPLICATION_GROUP)]


def test_prod_stateful_resources_protected(prod_plan):
    res = stateful(prod_plan)
    assert {r.type for r in res} == {BUCKET, KMS_KEY, REPLICATION_GROUP}
    assert len([r for r in res if r.type == KMS_KEY]) == 3   # two buckets and ElastiCache
    assert all(r.protect for r in res), [r.name for r in res if not r.protect]
    doc = to_json(prod_plan)
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["data-redis"]["protect"] is True


def test_dev_stateful_resources_not_protected(dev_plan):
    res = stateful(dev_plan)
    assert res and not any(r.protect for r in res)


def test_storage_class_retains_with_protect_data(prod_plan, dev_plan):
    def reclaim(plan):
        sc = [r for r in plan.resources if r.type == "kubernetes:storage.k8s.io/v1:StorageClass"
              and r.inputs["metadata"]["name"] == "gp3-encrypted"]
        return sc[0].inputs["reclaimPolicy"]
    assert reclaim(prod_plan) == "Retain" and reclaim(dev_plan) == "Delete"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_in_plain_text(request, stack, tmp_path):
    plan: Plan = request.getfixturevalue(stack + "_plan")
    text = json.dumps(to_json(plan))
    files = write_manifests(plan, tmp_path)
    text += "".join(f.read_text() for f in files)
    for prefix in MOCK_SECRET_PREFIXES:
        assert prefix not in text, f"a generated secret is in plain text ({prefix}...)"


# ------------------------------------------------------------------------------ bad config

def test_bad_config_names_the_key():
    data = {"milvus": {"mode": "cluster", "messageQueue": "rocksmq", "etcd": {"replicas": 2}},
            "redis": {"mode": "elasticache", "numCacheClusters": 1, "snapshotRetentionDays": 0}}
    with pytest.raises(ConfigError) as err:
        validate({"environment": "prod", "data": json.dumps(data)}, "prod")
    lines = err.value.lines()
    assert "agentic-platform:data.milvus.messageQueue: rocksmq is local to one pod and works in standalone " \
           "mode only; use woodpecker" in lines
    assert any(x.startswith("agentic-platform:data.milvus.etcd.replicas: 2 etcd members") for x in lines)
    assert any(x.startswith("agentic-platform:data.redis.numCacheClusters: Multi-AZ") for x in lines)
    assert any(x.startswith("agentic-platform:data.redis.snapshotRetentionDays:") for x in lines)


@pytest.mark.slow
def test_bad_stack_file_exits_2_with_key_path(tmp_path):
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:data"]["redis"]["mode"] = "memcached"
    path = write_stack(tmp_path, doc)
    proc = subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "agentic-platform:data.redis.mode:" in out


def test_kubernetes_objects_wait_for_their_namespace(prod_plan, dev_plan):
    for plan in (prod_plan, dev_plan):
        ns = {r.inputs["metadata"]["name"]: r.urn for r in plan.resources
              if r.type == "kubernetes:core/v1:Namespace"}
        for r in data_resources(plan):
            if r.type == SECRET:
                assert ns[r.inputs["metadata"]["namespace"]] in r.dependencies, r.name
            elif r.type == RELEASE:
                assert ns["ai-data"] in r.dependencies, r.name
                # Nodes (Karpenter) and the StorageClass first; on destroy the PVCs go before them.
                assert any("StorageClass" in d for d in r.dependencies), r.name


def test_elasticache_never_evicts(prod_plan):
    """LangFuse's queues share the platform Redis: eviction would silently drop their jobs."""
    (params,) = prod_plan.by_type("aws:elasticache/parameterGroup:ParameterGroup")
    assert {"name": "maxmemory-policy", "value": "noeviction"} in params.inputs["parameters"]
    (rg,) = prod_plan.by_type("aws:elasticache/replicationGroup:ReplicationGroup")
    assert rg.inputs["parameterGroupName"] == params.inputs["name"]
    assert params.inputs["family"] == f"{rg.inputs['engine']}{rg.inputs['engineVersion'].split('.')[0]}"


def test_statefulset_volumes_go_with_the_release_unless_data_is_protected(dev_plan, prod_plan):
    """bitnami etcd 8.12.0 (Milvus) keeps its StatefulSet PVCs after `helm uninstall` unless
    persistentVolumeClaimRetentionPolicy is enabled: on (Delete) without protectData, off with it."""
    def etcd(plan):
        (m,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "milvus"]
        return m.inputs["values"]["etcd"]["persistentVolumeClaimRetentionPolicy"]

    assert etcd(dev_plan) == {"enabled": True, "whenDeleted": "Delete", "whenScaled": "Retain"}
    assert etcd(prod_plan)["enabled"] is False

    (sts,) = [o for o in rendered(dev_plan, "milvus") if o["kind"] == "StatefulSet" and "etcd" in o["metadata"]["name"]]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
