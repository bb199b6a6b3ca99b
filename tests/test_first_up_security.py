"""A first `pulumi up` and `pulumi destroy` that succeed (2): no secret is in plain text, the NLB
serves TLS only, Pod Identity roles bind to one cluster, buckets log their access, tenants cannot take
reserved namespaces, and unhealthy nodes are replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi_random
import pytest
import yaml
from pulumi.runtime import config as runtime_config

import components.config.rules as rules
from components import names
from components.config import ConfigError, secret_keys_from_pulumi, validate
from plan.engine import ROOT
from tests.conftest import stack_doc
from tests.first_up_cases import BUCKET, LOGGING, SERVICE, plan_doc, plan_exit, problems_of

# ----------------------------------------------------------------------- 13. LangFuse's encryption key

def test_langfuse_encryption_key_is_a_secret_output(any_plan):
    keys = [r for r in any_plan.resources if r.name.endswith("langfuse-encryption-key")]
    assert [r.type for r in keys] == ["random:index/randomBytes:RandomBytes"]
    assert keys[0].inputs["length"] == 32
    src = Path(pulumi_random.__file__).parent.joinpath("random_bytes.py").read_text()
    assert 'additional_secret_outputs=["base64", "hex"]' in src


# ----------------------------------------------------------------------- 14. the NLB serves TLS only

def test_nlb_listens_on_443_only_and_the_proxy_service_stays_in_cluster(any_plan):
    params = any_plan.by_type("kubernetes:gateway.kgateway.dev/v1alpha1:GatewayParameters")[0]
    assert params.inputs["spec"]["kube"]["service"] == {"type": "ClusterIP"}
    lbs = [r for r in any_plan.by_type(SERVICE) if r.inputs["spec"].get("type") == "LoadBalancer"]
    assert len(lbs) == 1
    spec, ann = lbs[0].inputs["spec"], lbs[0].inputs["metadata"]["annotations"]
    assert [p["port"] for p in spec["ports"]] == [443]
    lb = "service.beta.kubernetes.io/aws-load-balancer"
    assert ann[f"{lb}-ssl-ports"] == "443" and ann[f"{lb}-ssl-cert"].startswith("arn:aws:acm:")
    assert spec["selector"] == {"app.kubernetes.io/name": names.GATEWAY_NAME,
                                "app.kubernetes.io/instance": names.GATEWAY_NAME}
    # the proxy pods carry the selected labels (kgateway copies GatewayParameters' extraLabels)
    extra = params.inputs["spec"]["kube"]["podTemplate"]["extraLabels"]
    assert spec["selector"].items() <= extra.items()
    # agents still use the in-cluster plain-HTTP listener
    gateway = any_plan.by_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")[0]
    assert names.GATEWAY_PORT in [x["port"] for x in gateway.inputs["spec"]["listeners"]]


@pytest.mark.program
def test_without_a_certificate_there_is_no_load_balancer(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:gateway"]["loadBalancer"].pop("certificateArn")
    plan = plan_doc(doc, tmp_path)
    assert [r for r in plan.by_type(SERVICE) if r.inputs["spec"].get("type") == "LoadBalancer"] == []
    gateway = plan.by_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")[0]
    assert [x["port"] for x in gateway.inputs["spec"]["listeners"]] == [names.GATEWAY_PORT]


# ----------------------------------------------------------------------- 15. Pod Identity roles bind to one cluster

def test_every_pod_identity_trust_names_account_and_cluster(any_plan):
    cname = f"agentic-{any_plan.stack}"
    roles = [r for r in any_plan.by_type("aws:iam/role:Role") if "pods.eks.amazonaws.com" in r.inputs["assumeRolePolicy"]]
    assert len(roles) >= 6
    for r in roles:
        (st,) = json.loads(r.inputs["assumeRolePolicy"])["Statement"]
        assert st["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert st["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
        arns = st["Condition"]["ArnLike"]["aws:SourceArn"]
        assert f"arn:aws:eks:us-west-2:123456789012:cluster/{cname}" in arns, r.name
        assert all(f"/{cname}" in a for a in arns)


# ----------------------------------------------------------------------- 16. secrets in plain text

@pytest.mark.slow
def test_plain_text_secret_is_a_key_path_error(tmp_path):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:hfToken"] = "hf_plaintextvalue"
    proc = plan_exit(doc, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [x.strip() for x in proc.stderr.splitlines() if "agentic-platform:hfToken:" in x]
    assert "plain text" in line and "pulumi config set --secret hfToken" in line
    assert "hf_plaintextvalue" not in proc.stderr and "hf_plaintextvalue" not in proc.stdout


def test_the_program_sees_which_keys_are_secrets(monkeypatch):
    """`pulumi up` validates with the secret keys the language host passes (not only the plan)."""
    runtime_config.set_all_config({}, [])  # nothing left from a program an earlier test ran
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["agentic-platform:agentGatewayToken"]))
    assert secret_keys_from_pulumi() == {"agentGatewayToken"}
    runtime_config.set_all_config({"agentic-platform:hfToken": "x"}, ["agentic-platform:hfToken"])
    try:
        assert secret_keys_from_pulumi() == {"agentGatewayToken", "hfToken"}
    finally:
        runtime_config.set_all_config({}, [])
    raw = {"environment": "dev", "hfToken": "[secret]"}
    with pytest.raises(ConfigError) as err:
        validate(raw, "dev", secret_keys=set())
    assert any(x.startswith("agentic-platform:hfToken: is plain text") for x in err.value.lines())


# ----------------------------------------------------------------------- 17. S3 server access logs

def test_every_bucket_logs_into_the_access_log_bucket(any_plan):
    buckets = {r.name: r for r in any_plan.by_type(BUCKET)}
    target = buckets.pop("access-logs")
    logs = {r.name.removesuffix("-access-logs"): r for r in any_plan.by_type(LOGGING)}
    assert set(logs) == set(buckets)
    for r in logs.values():
        assert r.inputs["targetBucket"] == target.inputs.get("bucket", f"mock-{target.name}")
        assert r.inputs["targetPrefix"].endswith("/")
    assert any_plan.outputs["accessLogsBucket"] == "mock-access-logs"


def test_access_log_bucket_is_secure_and_sse_s3(any_plan):
    def child(typ: str, suffix: str) -> dict:
        (r,) = [r for r in any_plan.by_type(typ) if r.name == f"access-logs-{suffix}"]
        return r.inputs
    sse = child("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "sse")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    pab = child("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "public-access")
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                        "restrictPublicBuckets"))
    lifecycle = child("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lifecycle")
    assert lifecycle["rules"][0]["expiration"]["days"] == 365
    policy = json.loads(child("aws:s3/bucketPolicy:BucketPolicy", "policy")["policy"])
    sids = {s["Sid"]: s for s in policy["Statement"]}
    assert sids["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    logging = sids["S3ServerAccessLogsPolicy"]
    assert logging["Principal"] == {"Service": "logging.s3.amazonaws.com"} and logging["Action"] == "s3:PutObject"
    assert logging["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    owner = child("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "ownership")
    assert owner["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


# ----------------------------------------------------------------------- 18. reserved namespaces

@pytest.mark.parametrize("tenant", [*names.PLATFORM_NAMESPACES, "kube-public", "kube-node-lease", "default",
                                    "kube-anything"])
def test_tenants_cannot_take_a_reserved_namespace(tmp_path, tenant):
    doc = stack_doc("dev")
    doc["config"]["agentic-platform:tenants"][0]["name"] = tenant
    assert any(x.startswith(f"agentic-platform:tenants[0].name: '{tenant}' is reserved")
               for x in problems_of(doc, tmp_path)), tenant


def test_reserved_namespaces_have_one_home():
    src = Path(rules.__file__).read_text()
    for ns in names.PLATFORM_NAMESPACES:
        assert f'"{ns}"' not in src.split("def _unique_names")[1].split("@cross_check")[0], ns
    assert set(names.RESERVED_NAMESPACES) >= {*names.PLATFORM_NAMESPACES, "kube-system", "kube-public",
                                              "kube-node-lease", "default"}


# ----------------------------------------------------------------------- node health

def test_node_monitoring_agent_and_node_repair(any_plan):
    addons = {a.inputs["addonName"]: a for a in any_plan.by_type("aws:eks/addon:Addon")}
    agent = addons["eks-node-monitoring-agent"]
    assert agent.inputs["addonVersion"].startswith("mock-default-for-")  # getAddonVersion, default
    (ng,) = any_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert ng.urn in agent.dependencies
    assert ng.inputs["nodeRepairConfig"] == {"enabled": True}
    karpenter = next(r for r in any_plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "karpenter")
    assert karpenter.inputs["values"]["settings"]["featureGates"] == {"nodeRepair": True}


def test_node_repair_key_is_the_pinned_charts():
    values = yaml.safe_load((ROOT / "platform" / "chart-values" / "karpenter.values.yaml").read_text())
    assert values["settings"]["featureGates"]["nodeRepair"] is False  # the chart's default we turn on
