"""Cluster layer: the EKS control plane (pulumi_eks), the system node group, the EKS add-ons, the
default StorageClass and the one Kubernetes provider every Kubernetes object of the program uses."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components import names
from components.aws import pod_identity_role
from components.config import ClusterConfig
from components.k8s import labels, meta
from domain.coldstart import cache_volume_parameters
from domain.durations import timeout_window

CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator"]
SYSTEM_TAINT = {"key": names.SYSTEM_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}
SYSTEM_NODE_LABEL = names.SYSTEM_NODE_LABEL
# Worker node policies of the system node group; the CNI policy goes to the vpc-cni add-on's own
# Pod Identity role instead of every node.
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)
CNI_POLICY = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
STORAGE_CLASS = names.STORAGE_CLASS_DATA
STORAGE_CLASS_CACHE = names.STORAGE_CLASS_CACHE
# Amazon VPC CNI network policies: NetworkPolicies are enforced only with the add-on's
# `enableNetworkPolicy` ("Restrict Pod network traffic with Kubernetes network policies",
# docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html: "Enable the network
# policy parameter for the add-on", configuration values {"enableNetworkPolicy": "true"}). That
# turns on the policy engine, the add-on's node agent (`nodeAgent`: the aws-network-policy-agent
# container of the aws-node DaemonSet, present by default: amazon-vpc-cni-k8s charts/aws-vpc-cni
# values.yaml nodeAgent.enabled: true), and the network policy controller. Only the documented key:
# the add-on rejects configuration values outside its schema.
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
# The cluster's tag naming the principal pulumi-eks makes cluster admin (see ClusterConfig.deployer);
# policies/ reads it (eks-cluster-creator-declared).
CLUSTER_CREATOR_TAG = "agentic.platform/cluster-creator-admin"
API_PORT = 443


def node_waiting_addon_timeout() -> str:
    """An add-on created beside the node group waits for its nodes: the node group's whole create
    window plus the add-on's own, the AWS provider's defaults (platform/durations.yaml `timeouts`)."""
    return timeout_window("nodeGroupCreate", "addonCreate")


def early_addon_timeout() -> str:
    """An add-on created as the cluster turns ACTIVE may be retried until the add-on API is ready, up
    to 20 minutes (platform/durations.yaml `timeouts.addonApiRetries`): its own default window after that."""
    return timeout_window("addonCreate", "addonApiRetries")


@dataclass
class ClusterArgs:
    config: ClusterConfig
    cluster_name: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]    # the system node group's
    control_plane_subnet_ids: list[pulumi.Input[str]]  # the cluster's (its network interfaces)
    protect_data: bool
    tags: dict[str, str]


class Cluster(pulumi.ComponentResource):
    """EKS with access entries only (authentication mode API, no aws-auth ConfigMap), KMS envelope
    encryption of Secrets, control-plane logs, no default node group, a system managed node group
    tainted CriticalAddonsOnly, and the add-ons as explicit EKS add-ons."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:cluster:Cluster", name, None, opts)
        self._name, self._args = name, args
        self._control_plane()
        self._api_access()
        vpc_cni, kube_proxy = self._addons_before_nodes()
        self._system_node_group([vpc_cni, kube_proxy])
        self._addons_beside_nodes(vpc_cni)
        self._provider_and_storage()
        self.system_node_label = SYSTEM_NODE_LABEL
        self.register_outputs({"clusterName": self.cluster_name, "endpoint": self.endpoint,
                               "kubeconfig": self.kubeconfig})

    def _control_plane(self) -> None:
        """The KMS key of Secrets, the control-plane log group and the EKS cluster (pulumi-eks)."""
        cfg = self._args.config
        tags = self._args.tags
        name = self._name
        args = self._args
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect_data)

        # Secrets envelope encryption. Losing this key makes every Secret unreadable: protected.
        self.secrets_key = aws.kms.Key(f"{name}-secrets", description=f"EKS secrets encryption of {args.cluster_name}",
                                       enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=keep)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/{args.cluster_name}-eks-secrets",
                      target_key_id=self.secrets_key.key_id, opts=child)
        # EKS writes control-plane logs here; created first so it has a retention (EKS's own never expires).
        log_group = aws.cloudwatch.LogGroup(f"{name}-control-plane", name=f"/aws/eks/{args.cluster_name}/cluster",
                                            retention_in_days=cfg.log_retention_days, tags=tags, opts=child)

        public = cfg.endpoint == "publicAndPrivate"
        self.eks = eks.Cluster(
            name,
            name=args.cluster_name,
            version=cfg.version,
            vpc_id=args.vpc_id,
            # The cluster's subnets (vpcConfig.subnetIds: where EKS puts the control plane's network
            # interfaces) are the dedicated control-plane subnets, so NetworkPolicies name the API by
            # their CIDRs. pulumi-eks passes `subnet_ids` as they are to the aws.eks.Cluster
            # (nodejs/eks/cluster/cluster.ts clusterSubnetIds; `private_subnet_ids` would be the
            # same field, and the two are mutually exclusive); node groups below name their own.
            subnet_ids=args.control_plane_subnet_ids,
            endpoint_private_access=True,
            endpoint_public_access=public,
            public_access_cidrs=[str(c) for c in cfg.public_access_cidrs] if public else None,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                a.name: eks.AccessEntryArgs(
                    principal_arn=a.arn, type=eks.AccessEntryType.STANDARD,
                    access_policies={"cluster-admin": eks.AccessPolicyAssociationArgs(
                        policy_arn=CLUSTER_ADMIN_POLICY, access_scope={"type": "cluster"})})
                for a in cfg.admins
            },
            # pulumi-eks 4.4 always creates the cluster with
            # accessConfig.bootstrapClusterCreatorAdminPermissions: true (hard-coded in
            # nodejs/eks/cluster/cluster.ts; the Python SDK has neither that argument nor
            # access_config; pulumi/pulumi-eks#2373), so the deployer is cluster admin without an
            # entry here. The tag makes that admin visible on the cluster and to the policy pack.
            cluster_tags={CLUSTER_CREATOR_TAG: cfg.deployer.arn} if cfg.deployer else None,
            encryption_config_key_arn=self.secrets_key.arn,
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            skip_default_node_group=True,
            skip_default_security_groups=True,  # nodes use the EKS-managed cluster security group
            bootstrap_self_managed_addons=False,  # add-ons are the explicit EKS add-ons below
            use_default_vpc_cni=True,
            coredns_addon_options={"enabled": False},
            kube_proxy_addon_options={"enabled": False},
            create_oidc_provider=False,  # AWS access from pods is EKS Pod Identity
            deletion_protection=cfg.deletion_protection,
            tags=tags,
            # With EKS deletion protection, `pulumi destroy` would delete everything that depends on
            # the cluster and then fail on it; `protect` makes it refuse before deleting anything
            # (and --exclude-protected keeps it). Until now the protected databases held it through
            # their snapshot names; they no longer wait on the cluster.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group], protect=cfg.deletion_protection),
        )
        eks_cluster = self.eks.eks_cluster
        self.cluster_name = eks_cluster.name
        self.endpoint = eks_cluster.endpoint
        self.cluster_security_group_id = eks_cluster.vpc_config.cluster_security_group_id
        self.cluster_arn = eks_cluster.arn
        self.cluster_creator = cfg.deployer.arn if cfg.deployer else None

        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        # Karpenter finds the security group of its nodes by this tag.
        aws.ec2.Tag(f"{name}-sg-discovery", resource_id=self.cluster_security_group_id,
                    key="karpenter.sh/discovery", value=args.cluster_name, opts=child)


    def _api_access(self) -> None:
        cfg = self._args.config
        tags = self._args.tags
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        # --- how the deployer reaches the API server (cluster.apiAccess): 443 on the cluster SG.
        # EKS: from a connected network (VPN, peering, transit gateway) the private endpoint is
        # reachable once "your Amazon EKS control plane security group contains rules to allow
        # ingress traffic on port 443 from your connected network"
        # (docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html, "Accessing a private
        # only API server"). The Kubernetes provider waits for these rules.
        self.api_access_rules: list[aws.vpc.SecurityGroupIngressRule] = []
        for i, cidr in enumerate(cfg.api_access.cidrs):
            self.api_access_rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-cidr-{i}", security_group_id=self.cluster_security_group_id,
                cidr_ipv4=str(cidr), ip_protocol="tcp", from_port=API_PORT, to_port=API_PORT,
                description=f"Kubernetes API from {cidr} (cluster.apiAccess.cidrs[{i}])", tags=tags, opts=child))
        for i, sg in enumerate(cfg.api_access.security_group_ids):
            self.api_access_rules.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-sg-{i}", security_group_id=self.cluster_security_group_id,
                referenced_security_group_id=sg, ip_protocol="tcp", from_port=API_PORT, to_port=API_PORT,
                description=f"Kubernetes API from {sg} (cluster.apiAccess.securityGroupIds[{i}])", tags=tags,
                opts=child))

    def _addon(self, addon_name: str, depends: list[pulumi.Resource], create_timeout: str | None = None,
               **kw) -> aws.eks.Addon:
        """An EKS add-on at the default version for the cluster's Kubernetes version."""
        cfg, tags, name = self._args.config, self._args.tags, self._name
        version = aws.eks.get_addon_version_output(addon_name=addon_name, kubernetes_version=cfg.version,
                                                   most_recent=False,  # the default for this version
                                                   opts=pulumi.InvokeOutputOptions(parent=self))
        return aws.eks.Addon(f"{name}-{addon_name}", cluster_name=self.cluster_name, addon_name=addon_name,
                             addon_version=version.version, resolve_conflicts_on_create="OVERWRITE",
                             resolve_conflicts_on_update="PRESERVE", tags=tags,
                             opts=pulumi.ResourceOptions(
                                 parent=self, depends_on=depends,
                                 custom_timeouts=pulumi.CustomTimeouts(create=create_timeout) if create_timeout else None),
                             **kw)

    def _addons_before_nodes(self) -> tuple[aws.eks.Addon, aws.eks.Addon]:
        """Add-ons that nodes need before they become Ready (and the Pod Identity agent)."""
        tags = self._args.tags
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        # A DaemonSet: ACTIVE with no nodes yet, so it is created beside the node group. Pods that
        # get AWS credentials through Pod Identity (Karpenter, the EBS CSI controller) wait for it.
        # All three are created as the cluster turns ACTIVE, before the add-on API is ready.
        early = early_addon_timeout()
        self.pod_identity_agent = self._addon("eks-pod-identity-agent", [], create_timeout=early)
        cni = pod_identity_role(f"{name}-vpc-cni", cluster_name=self.cluster_name, namespace="kube-system",
                                service_account="aws-node", managed_policy_arns=(CNI_POLICY,), tags=tags, opts=child)
        vpc_cni = self._addon("vpc-cni", [], create_timeout=early,
                              pod_identity_associations=[{"role_arn": cni.role.arn, "service_account": "aws-node"}],
                              configuration_values=json.dumps(VPC_CNI_CONFIGURATION))
        kube_proxy = self._addon("kube-proxy", [], create_timeout=early)

        return vpc_cni, kube_proxy

    def _system_node_group(self, addons: list[aws.eks.Addon]) -> None:
        cfg = self._args.config
        tags = self._args.tags
        name = self._name
        args = self._args
        child = pulumi.ResourceOptions(parent=self)
        # --- system node group
        node_role = aws.iam.Role(f"{name}-system-node", assume_role_policy=pulumi.Output.json_dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}), tags=tags, opts=child)
        attachments = [aws.iam.RolePolicyAttachment(f"{name}-system-node-{arn.rsplit('/', 1)[-1]}", role=node_role.name,
                                                    policy_arn=arn, opts=pulumi.ResourceOptions(parent=node_role))
                       for arn in NODE_POLICIES]
        sn = cfg.system_nodes
        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-system",
            description="System nodes: IMDSv2 only, hop limit 1 (pods cannot reach the node's role), encrypted gp3",
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                              "http_put_response_hop_limit": 1, "instance_metadata_tags": "disabled"},
            block_device_mappings=[{"device_name": "/dev/xvda",
                                    "ebs": {"volume_size": sn.disk_size_gib, "volume_type": "gp3",
                                            "encrypted": "true", "delete_on_termination": "true"}}],
            tag_specifications=[{"resource_type": "instance", "tags": {**tags, "Name": f"{args.cluster_name}-system"}}],
            tags=tags, opts=child)
        self.system_nodes = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=self.cluster_name,
            node_group_name_prefix=names.system_node_group_prefix(args.cluster_name),
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type=sn.capacity_type,
            instance_types=sn.instance_types,
            scaling_config={"min_size": sn.min_size, "max_size": sn.max_size, "desired_size": sn.desired_size},
            update_config={"max_unavailable": 1},
            # EKS node auto repair: replaces nodes the node monitoring agent (below) or the kubelet
            # reports unhealthy (docs.aws.amazon.com/eks/latest/userguide/node-health.html).
            node_repair_config={"enabled": True},
            launch_template={"id": launch_template.id, "version": launch_template.latest_version.apply(str)},
            taints=[SYSTEM_TAINT],
            labels=SYSTEM_NODE_LABEL,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*addons, *attachments],
                                        ignore_changes=["scalingConfig.desiredSize"]),
        )


    def _addons_beside_nodes(self, vpc_cni: aws.eks.Addon) -> None:
        tags = self._args.tags
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        # --- add-ons whose Deployments run on the system nodes, created beside the node group, not
        # after it: the AWS provider waits through CREATING and DEGRADED (pods Pending) until ACTIVE
        # (terraform-provider-aws internal/service/eks/addon.go waitAddonCreated: Pending CREATING,
        # DEGRADED; pulumi/pulumi-eks#1819 shows it polling DEGRADED on a cluster without nodes), so
        # they go ACTIVE once the nodes joined and their pods ran (both tolerate CriticalAddonsOnly).
        # They need the CNI their pods get addresses from, and (EBS CSI) the Pod Identity agent.
        # The create timeout covers the node group's whole create window (the provider's node group
        # default, 60 min, node_group.go) plus the add-on's own default 20 min (addon.go).
        node_waiting = node_waiting_addon_timeout()
        self.coredns = self._addon("coredns", [vpc_cni], create_timeout=node_waiting)
        ebs = pod_identity_role(f"{name}-ebs-csi", cluster_name=self.cluster_name, namespace="kube-system",
                                service_account="ebs-csi-controller-sa", managed_policy_arns=(EBS_CSI_POLICY,),
                                tags=tags, opts=child)
        self.ebs_csi = self._addon("aws-ebs-csi-driver", [vpc_cni, self.pod_identity_agent],
                                   create_timeout=node_waiting,
                                   pod_identity_associations=[{"role_arn": ebs.role.arn,
                                                               "service_account": "ebs-csi-controller-sa"}])
        # Node health: a DaemonSet on every node (GPU nodes included) that reports GPU (NVIDIA
        # XID/DCGM), kernel, container-runtime, storage and networking failures as node conditions;
        # EKS node auto repair (system nodes) and Karpenter's node repair (its pools) replace the
        # node (docs.aws.amazon.com/eks/latest/userguide/node-health.html). Needs no AWS permissions.
        self.node_monitoring = self._addon("eks-node-monitoring-agent", [self.system_nodes])


    def _provider_and_storage(self) -> None:
        name = self._name
        args = self._args
        # --- the Kubernetes provider every Kubernetes object of the program uses
        # It waits for the apiAccess rules: without them a private endpoint is unreachable from the
        # deployer, and every Kubernetes object would time out.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=self.api_access_rules))
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)
        # Default StorageClass, for data stores: encrypted gp3. With protectData, a deleted PVC keeps
        # its volume. The cache class (model caches, metrics) always deletes it: nothing there is
        # worth a leaked, billed volume.
        def storage_class(sc_name: str, reclaim: str, annotations: dict[str, str] | None = None,
                          performance: dict[str, str] | None = None):
            return k8s.storage.v1.StorageClass(
                f"{name}-{sc_name}",
                metadata=meta(sc_name, labels=labels("storage", "storage-class", instance=sc_name),
                              annotations=annotations),
                provisioner="ebs.csi.aws.com",
                parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4", **(performance or {})},
                reclaim_policy=reclaim,
                volume_binding_mode="WaitForFirstConsumer",
                allow_volume_expansion=True,
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[self.ebs_csi])),
            )

        self.storage_class = storage_class(STORAGE_CLASS, "Retain" if args.protect_data else "Delete",
                                           {"storageclass.kubernetes.io/is-default-class": "true"})
        # Model weights are read whole at every start: provisioned throughput (the models' cold-start figure).
        self.cache_storage_class = storage_class(STORAGE_CLASS_CACHE, "Delete", performance=cache_volume_parameters())
        self.storage_class_name = STORAGE_CLASS
        self.cache_storage_class_name = STORAGE_CLASS_CACHE
        self.node_security_group_id = self.cluster_security_group_id
