"""Cluster layer: the properties that matter, per stack."""

from __future__ import annotations

import json

import pytest

from components import names


def eks_cluster(plan):
    (c,) = plan.by_type("eks:index:Cluster")
    return c.inputs


def test_authentication_mode_api_and_no_default_node_group(any_plan):
    c = eks_cluster(any_plan)
    assert c["authenticationMode"] == "API"
    assert c["skipDefaultNodeGroup"] is True
    assert c["bootstrapSelfManagedAddons"] is False
    assert c["createOidcProvider"] is False


def test_endpoint_mode_per_stack(dev_plan, prod_plan):
    prod, dev = eks_cluster(prod_plan), eks_cluster(dev_plan)
    assert prod["endpointPublicAccess"] is False and prod["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in prod
    assert dev["endpointPublicAccess"] is True
    assert dev["publicAccessCidrs"] and "0.0.0.0/0" not in dev["publicAccessCidrs"]


def test_secrets_encryption_and_logs(any_plan):
    c = eks_cluster(any_plan)
    keys = [k for k in any_plan.by_type("aws:kms/key:Key") if k.name == "cluster-secrets"]
    assert len(keys) == 1 and keys[0].inputs["enableKeyRotation"] is True
    assert c["encryptionConfigKeyArn"].endswith("mock-cluster-secrets")
    assert set(c["enabledClusterLogTypes"]) >= {"api", "audit", "authenticator"}
    (lg,) = [g for g in any_plan.by_type("aws:cloudwatch/logGroup:LogGroup") if g.name == "cluster-control-plane"]
    assert lg.inputs["name"] == f"/aws/eks/{any_plan.outputs['clusterName']}/cluster"


def test_admins_get_access_entries(prod_plan):
    entries = eks_cluster(prod_plan)["accessEntries"]
    assert set(entries) == {"platform-admins", "break-glass"}
    for e in entries.values():
        (assoc,) = e["accessPolicies"].values()
        assert assoc["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
        assert assoc["accessScope"] == {"type": "cluster"}


def test_system_node_group_imdsv2_taint_encryption(any_plan):
    (ng,) = any_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert ng.inputs["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]
    assert ng.inputs["amiType"].startswith("AL2023")
    (lt,) = [lt for lt in any_plan.by_type("aws:ec2/launchTemplate:LaunchTemplate") if lt.name == "cluster-system"]
    md = lt.inputs["metadataOptions"]
    assert md["httpTokens"] == "required" and md["httpPutResponseHopLimit"] == 1
    ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["volumeType"] == "gp3"
    assert ng.inputs["launchTemplate"]["id"] == "mock-cluster-system"


def test_system_node_sizes_from_config(prod_plan, dev_plan):
    sizes = {p.stack: p.by_type("aws:eks/nodeGroup:NodeGroup")[0].inputs["scalingConfig"] for p in (dev_plan, prod_plan)}
    assert sizes["prod"] == {"minSize": 3, "maxSize": 6, "desiredSize": 3}
    assert sizes["dev"] == {"minSize": 2, "maxSize": 3, "desiredSize": 2}


def test_addons_and_ebs_csi_pod_identity(any_plan):
    addons = {a.inputs["addonName"]: a for a in any_plan.by_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver",
                           "eks-node-monitoring-agent"}
    ebs = addons["aws-ebs-csi-driver"].inputs["podIdentityAssociations"][0]
    assert ebs["serviceAccount"] == "ebs-csi-controller-sa"
    by_urn = {r.urn: r for r in any_plan.resources}
    ng_urn = any_plan.by_type("aws:eks/nodeGroup:NodeGroup")[0].urn
    # coredns and the EBS CSI driver are created beside the nodes (their waiter polls DEGRADED until
    # ACTIVE: tests/test_rehearsal_timing.py), after the CNI their pods get addresses from
    vpc_cni = addons["vpc-cni"].urn
    assert vpc_cni in addons["coredns"].dependencies and vpc_cni in addons["aws-ebs-csi-driver"].dependencies
    assert ng_urn not in addons["coredns"].dependencies and ng_urn not in addons["aws-ebs-csi-driver"].dependencies
    assert addons["vpc-cni"].urn in by_urn[ng_urn].dependencies
    roles = [r for r in any_plan.by_type("aws:iam/role:Role") if r.name == "cluster-ebs-csi-role"]
    assert json.loads(roles[0].inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "pods.eks.amazonaws.com"}


@pytest.mark.parametrize("stack,reclaim", [("dev", "Delete"), ("prod", "Retain")])
def test_default_storage_class(request, stack, reclaim):
    plan = request.getfixturevalue(f"{stack}_plan")
    classes = {sc.inputs["metadata"]["name"]: sc.inputs for sc in plan.by_type("kubernetes:storage.k8s.io/v1:StorageClass")}
    assert set(classes) == {names.STORAGE_CLASS_DATA, names.STORAGE_CLASS_CACHE}
    data, cache = classes[names.STORAGE_CLASS_DATA], classes[names.STORAGE_CLASS_CACHE]
    assert data["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert "storageclass.kubernetes.io/is-default-class" not in (cache["metadata"].get("annotations") or {})
    for sc in (data, cache):
        assert sc["parameters"]["type"] == "gp3" and sc["parameters"]["encrypted"] == "true"
        assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    # Only data stores keep their volume under protectData; caches and metrics never leak one.
    assert data["reclaimPolicy"] == reclaim and cache["reclaimPolicy"] == "Delete"


def test_vpc_cni_enforces_network_policies(any_plan):
    """Without the add-on's enableNetworkPolicy no NetworkPolicy of the tenancy layer is enforced
    (EKS "Restrict Pod network traffic with Kubernetes network policies")."""
    (cni,) = [a for a in any_plan.by_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_no_storage_class_literals_outside_names():
    """One home for StorageClass names: components/names.py."""
    from plan.engine import ROOT

    offenders = [p.name for p in (ROOT / "components").glob("*.py")
                 if p.name != "names.py" and '"gp3-encrypted' in p.read_text()]
    assert offenders == []


def test_one_kubernetes_provider_used_by_every_kubernetes_object(any_plan):
    providers = any_plan.by_type("pulumi:providers:kubernetes")
    assert len(providers) == 1
    ref = f"{providers[0].urn}::"
    k8s = [r for r in any_plan.resources if r.custom and r.type.startswith("kubernetes:")]
    assert k8s
    for r in k8s:
        assert r.provider and r.provider.startswith(ref), f"{r.type} {r.name} uses {r.provider}"


def test_prod_protects_its_secrets_key(prod_plan, dev_plan):
    assert [k for k in prod_plan.by_type("aws:kms/key:Key") if k.name == "cluster-secrets"][0].protect is True
    assert [k for k in dev_plan.by_type("aws:kms/key:Key") if k.name == "cluster-secrets"][0].protect is False
