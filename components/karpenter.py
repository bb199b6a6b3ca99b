"""Compute layer: Karpenter (controller IAM, node IAM, interruption queue and rules, the chart) and
one EC2NodeClass + NodePool per configured pool (GPU pools, the CPU pool, node-isolated tenants).

Every AWS name is prefixed by the cluster name, so two stacks in one account and region never
collide (the anchors' fixed rule names do). The controller policy is modelled on the upstream
Karpenter v1 CloudFormation policy: launch and delete only what carries this cluster's tags."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components import names
from components.aws import pod_identity_role, policy_json
from components.config import CpuPoolConfig, GpuPoolConfig
from components.gpu_pool import GpuPool, gpu_pool
from components.k8s import NodeSource, custom_object, helm_release, labels
from components.node_pools import (
    AMI_FAMILY_LABEL,
    TenantPlacement,
    node_class_spec,
    node_pool_spec,
    pool_definitions,
    pool_tags,
    tenant_of,
    warm_pool_spec,
)
from domain.durations import timeout_seconds
from domain.units import duration_seconds

NAMESPACE = names.NS_SYSTEM
SERVICE_ACCOUNT = "karpenter"
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)
# Interruption events Karpenter handles (detail-types as EventBridge spells them). The capacity
# reservation rule is the one the anchors miss.
INTERRUPTION_RULES: dict[str, tuple[str, str]] = {
    "health": ("aws.health", "AWS Health Event"),
    "spot": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "cr-interrupt": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}
QUEUE_RETENTION_S = 300  # interruption messages older than the 2-minute spot warning are useless
CONTROLLER_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


# The rule names (and their length limit, checked by the config) are built in components/names.py.
assert tuple(INTERRUPTION_RULES) == names.KARPENTER_RULE_KEYS, "names.KARPENTER_RULE_KEYS drifted"
queue_name = names.karpenter_queue_name
rule_name = names.karpenter_rule_name


@dataclass
class KarpenterArgs:
    """The compute layer's own config (its GPU pools and CPU pool) plus what it uses of others:
    the cluster's outputs and the tenancy layer's placement of node-isolated tenants."""

    cluster_name: str                       # the config name: AWS names derive from it
    cluster: pulumi.Input[str]              # the EKS cluster's name Output (orders after the cluster)
    endpoint: pulumi.Input[str]
    system_nodes: pulumi.Resource           # the controller runs there
    gpu_pools: list[GpuPoolConfig]
    cpu_pool: CpuPoolConfig
    tags: dict[str, str]
    tenant_pools: list[TenantPlacement] = field(default_factory=list)   # a dedicated NodePool each
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # e.g. the Pod Identity agent


class Karpenter(pulumi.ComponentResource):
    """Karpenter and its node pools. Readiness, by where pods run: `platform_nodes` (the controller
    and the CPU NodePool) and `gpu_nodes` (the controller and every GPU NodePool, tenants' included).
    `node_pools` maps pool name -> NodePool; `release` is the controller's Helm release; `gpu_pools`
    maps each configured GPU pool's name -> its typed output (what the pods placed on it need)."""

    node_pools: dict[str, pulumi.Resource]
    gpu_pools: dict[str, GpuPool]
    node_classes: dict[str, pulumi.Resource]
    release: pulumi.Resource
    platform_nodes: NodeSource
    gpu_nodes: NodeSource

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:compute:Karpenter", name, None, opts)
        cluster, tags = args.cluster_name, args.tags
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        account = aws.get_caller_identity_output(opts=invoke).account_id
        queue_policy = self._interruption(name, cluster, tags, child)
        access_entry = self._node_role(name, args, queue_policy, child)
        # --- controller role (Pod Identity, kube-system/karpenter)
        self.controller = pod_identity_role(
            f"{name}-controller", cluster_name=args.cluster, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
            policy=controller_policy(cluster, partition, region, account, self.queue.arn, self.node_role.arn),
            tags=tags, opts=child)
        self._chart(name, args, [access_entry, queue_policy])
        self._pools(name, args)
        self.gpu_pools = {p.name: gpu_pool(p) for p in args.gpu_pools}
        self.platform_nodes = NodeSource("platform", (self.release, self.node_pools[args.cpu_pool.name]))
        self.gpu_nodes = NodeSource("gpu", (self.release, *(p for n, p in self.node_pools.items()
                                                             if n != args.cpu_pool.name)))
        self.queue_name = self.queue.name
        self.node_role_name = self.node_role.name
        self.register_outputs({"interruptionQueue": self.queue.name, "nodeRole": self.node_role.name,
                               "nodePools": list(self.node_pools)})

    def _interruption(self, name: str, cluster: str, tags: dict[str, str],
                      child: pulumi.ResourceOptions) -> pulumi.Resource:
        """The interruption queue (one per cluster: Karpenter maintainers, never share one), its
        policy and the EventBridge rules feeding it."""
        self.queue = aws.sqs.Queue(f"{name}-interruption", name=queue_name(cluster),
                                   message_retention_seconds=QUEUE_RETENTION_S, sqs_managed_sse_enabled=True,
                                   tags=tags, opts=child)
        queue_policy = aws.sqs.QueuePolicy(f"{name}-interruption", queue_url=self.queue.url, policy=policy_json([
            {"Sid": "EventBridgeWrite", "Effect": "Allow",
             "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
             "Action": "sqs:SendMessage", "Resource": self.queue.arn},
            {"Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": self.queue.arn,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ]), opts=pulumi.ResourceOptions(parent=self.queue))
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        for key, (source, detail_type) in INTERRUPTION_RULES.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}", name=rule_name(cluster, key),
                description=f"Karpenter interruption handling of {cluster}: {detail_type}",
                event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}), tags=tags, opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{key}", rule=rule.name, target_id="KarpenterInterruptionQueue",
                                       arn=self.queue.arn, opts=pulumi.ResourceOptions(parent=rule))
            self.rules[key] = rule
        return queue_policy

    def _node_role(self, name: str, args: KarpenterArgs, queue_policy: pulumi.Resource,
                   child: pulumi.ResourceOptions) -> pulumi.Resource:
        """The node role (what Karpenter's nodes run as) and its access entry."""
        cluster, tags = args.cluster_name, args.tags
        self.node_role = aws.iam.Role(f"{name}-node", name=names.karpenter_node_role_name(cluster),
                                      description=f"Nodes Karpenter launches for {cluster}",
                                      assume_role_policy=json.dumps({
                                          "Version": "2012-10-17",
                                          "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                         "Action": "sts:AssumeRole"}]}),
                                      tags=tags, opts=child)
        node_attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{arn.rsplit('/', 1)[-1]}", role=self.node_role.name,
                                         policy_arn=arn, opts=pulumi.ResourceOptions(parent=self.node_role))
            for arn in NODE_POLICIES]
        # After the queue policy: an access entry created right after its role can fail (anchors, section 2).
        access_entry = aws.eks.AccessEntry(f"{name}-node", cluster_name=args.cluster, principal_arn=self.node_role.arn,
                                           type="EC2_LINUX", tags=tags,
                                           opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy,
                                                                                                 *node_attachments]))
        return access_entry

    def _chart(self, name: str, args: KarpenterArgs, ordering: list[pulumi.Resource]) -> None:
        """The chart: CRDs in their own release (owned once), the controller with skip_crds."""
        # CRDs only (karpenter-crd 1.14.1 renders no workload): Helm waits for them to be Established,
        # which needs the API server, not nodes or the Pod Identity agent.
        self.crd_release = helm_release(f"{name}-crd", "karpenter-crd", namespace=NAMESPACE, values={},
                                        opts=pulumi.ResourceOptions(parent=self))
        self.release = helm_release(
            name, "karpenter", namespace=NAMESPACE, skip_crds=True,
            values={
                "replicas": 2,
                "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
                "settings": {"clusterName": args.cluster, "clusterEndpoint": args.endpoint,
                             "interruptionQueue": self.queue.name,
                             # Node repair (alpha in 1.14, chart key settings.featureGates.nodeRepair,
                             # platform/chart-values/karpenter.values.yaml): Karpenter replaces nodes
                             # whose conditions stay unhealthy, Ready=False/Unknown and the EKS node
                             # monitoring agent's AcceleratedHardwareReady (GPU), KernelReady,
                             # ContainerRuntimeReady, StorageReady, NetworkingReady, after 10 min
                             # (GPU) or 30 min (docs.aws.amazon.com/eks/latest/userguide/node-repair.html,
                             # self-managed Karpenter included); it stops when more than 20% of a
                             # NodePool's nodes are unhealthy. The conditions come from
                             # the eks-node-monitoring-agent add-on (components/cluster.py).
                             # Static NodePools (alpha, off in the chart) hold the warm nodes
                             # (gpuPools[].warmNodes, components/node_pools.py warm_pool_spec).
                             "featureGates": {"nodeRepair": True,
                                              **({"staticCapacity": True} if self._any_warm(args) else {})}},
                # On the system node group, never on nodes it manages itself.
                **names.system_placement(),
                # The node's resolver (the VPC's Route 53 Resolver), not CoreDNS: Karpenter resolves
                # only AWS endpoints (STS, EC2, SQS, SSM, pricing, EKS) and reaches the API server by
                # the kubernetes Service's IP, so it needs no cluster DNS and need not wait for the
                # coredns add-on. Karpenter's docs for when DNS is not up yet ("set the pod DNS policy
                # to `Default` with `--set dnsPolicy=Default`", v1.14 getting-started, and
                # troubleshooting.md "STS ... failed DNS resolution"); Kubernetes "DNS for Services
                # and Pods": Default inherits the node's name resolution. The IPv4 cluster has no
                # dual-stack caveat (v1.14 upgrade-guide). Chart 1.14.1 values.yaml `dnsPolicy`.
                "dnsPolicy": "Default",
                "podDisruptionBudget": {"name": "karpenter", "maxUnavailable": 1},
                "controller": {"resources": CONTROLLER_RESOURCES},
                # The chart renders its ServiceMonitor only if monitoring.coreos.com/v1 is served at
                # install time, and this release does not wait for the monitoring CRDs' release: it
                # could silently never exist. The GPU stack (after the CRDs) declares it.
                "serviceMonitor": {"enabled": False},
                "additionalLabels": {"app.kubernetes.io/part-of": "agentic-platform"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                self.crd_release, self.controller.association, *ordering, args.system_nodes, *args.depends_on]))

    def _pools(self, name: str, args: KarpenterArgs) -> None:
        """Node classes and pools. They depend on the release: on destroy they go first, while the
        controller still runs and can terminate the instances it launched."""
        self.node_classes, self.node_pools = {}, {}
        for pool, gpu_limit, extra_labels, taints in pool_definitions(args.gpu_pools, args.cpu_pool, args.tenant_pools):
            dep = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
            # A node-isolated tenant's class, pool and instances carry its tenant label / cost tag.
            tenant = tenant_of(extra_labels)
            owner = {names.TENANT_LABEL: tenant} if tenant else None
            node_class = custom_object(
                f"{name}-nodeclass-{pool.name}", "karpenter.k8s.aws/v1", "EC2NodeClass", pool.name,
                labels=labels("karpenter", "node-class", instance=pool.name, extra=owner),
                spec=node_class_spec(pool, args.cluster_name, self.node_role.name, pool_tags(args.tags, extra_labels)),
                opts=dep)
            spec = node_pool_spec(pool, gpu_limit, {**pool.labels, **extra_labels, AMI_FAMILY_LABEL: pool.ami_family},
                                  taints + [t.model_dump(exclude_none=True) for t in pool.taints])
            after_class = pulumi.ResourceOptions(parent=self, depends_on=[self.release, node_class],
                                                 custom_timeouts=node_pool_delete_timeout(pool))
            node_pool = custom_object(
                f"{name}-nodepool-{pool.name}", "karpenter.sh/v1", "NodePool", pool.name,
                labels=labels("karpenter", "node-pool", instance=pool.name, extra=owner), spec=spec, opts=after_class)
            self.node_classes[pool.name] = node_class
            self.node_pools[pool.name] = node_pool
            if isinstance(pool, GpuPoolConfig) and pool.warm_nodes:
                warm = names.warm_pool_name(pool.name)
                self.node_pools[warm] = custom_object(
                    f"{name}-nodepool-{warm}", "karpenter.sh/v1", "NodePool", warm,
                    labels=labels("karpenter", "node-pool", instance=warm), spec=warm_pool_spec(pool, spec),
                    opts=after_class)

    @staticmethod
    def _any_warm(args: KarpenterArgs) -> bool:
        # gpuPools[].warmNodes N -> 0 removes `<pool>-warm` from the program: Pulumi deletes it (no
        # static pool is left at replicas 0), and the last one turns the gate off.
        return any(p.warm_nodes for p in args.gpu_pools)


def controller_policy(cluster: str, partition: pulumi.Input[str], region: pulumi.Input[str],
                      account: pulumi.Input[str], queue_arn: pulumi.Input[str],
                      node_role_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """The controller's least-privilege policy, statement by statement the upstream v1.14 policy
    (aws/karpenter-provider-aws, tag v1.14.1,
    website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml),
    merged into one document. Left out on purpose: the ZonalShiftPolicy's
    `arc-zonal-shift:GetManagedResource` (only called with `settings.enableZonalShift`, which stays
    off) and our former `ec2:DescribeAvailabilityZones` (v1.14 no longer calls it)."""

    def build(part: str, reg: str, acct: str, queue: str, node_role: str) -> str:
        ec2 = f"arn:{part}:ec2:{reg}"
        owned = {f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned"}
        res_owned = {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}
        launched = [f"{ec2}:*:{r}/*" for r in ("fleet", "instance", "volume", "network-interface", "launch-template",
                                               "spot-instances-request")]
        statements = [
            {"Sid": "AllowScopedEC2InstanceAccessActions", "Effect": "Allow",
             "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
             "Resource": [f"{ec2}::image/*", f"{ec2}::snapshot/*", f"{ec2}:*:security-group/*",
                          f"{ec2}:*:subnet/*", f"{ec2}:*:capacity-reservation/*", f"{ec2}:*:placement-group/*"]},
            {"Sid": "AllowScopedEC2LaunchTemplateAccessActions", "Effect": "Allow",
             "Action": ["ec2:RunInstances", "ec2:CreateFleet"], "Resource": f"{ec2}:*:launch-template/*",
             "Condition": {"StringEquals": res_owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}},
            {"Sid": "AllowScopedEC2InstanceActionsWithTags", "Effect": "Allow",
             "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"], "Resource": launched,
             "Condition": {"StringEquals": {**owned, "aws:RequestTag/eks:eks-cluster-name": cluster},
                           "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}},
            {"Sid": "AllowScopedResourceCreationTagging", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": launched,
             "Condition": {"StringEquals": {**owned, "aws:RequestTag/eks:eks-cluster-name": cluster,
                                            "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]},
                           "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"}}},
            {"Sid": "AllowScopedResourceTagging", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": f"{ec2}:*:instance/*",
             "Condition": {"StringEquals": res_owned,
                           "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                           "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster},
                           "ForAllValues:StringEquals": {"aws:TagKeys": ["eks:eks-cluster-name",
                                                                         "karpenter.sh/nodeclaim", "Name"]}}},
            {"Sid": "AllowScopedDeletion", "Effect": "Allow",
             "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
             "Resource": [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
             "Condition": {"StringEquals": res_owned, "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}},
            {"Sid": "AllowRegionalReadActions", "Effect": "Allow", "Resource": "*",
             "Action": ["ec2:DescribeCapacityReservations", "ec2:DescribeImages", "ec2:DescribeInstances",
                        # the instance-status health checks (interruption controller) poll this
                        "ec2:DescribeInstanceStatus",
                        "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplates", "ec2:DescribePlacementGroups", "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets"],
             "Condition": {"StringEquals": {"aws:RequestedRegion": reg}}},
            # Only the public AMI parameters the amiSelectorTerms aliases resolve through.
            {"Sid": "AllowSSMReadActions", "Effect": "Allow", "Action": "ssm:GetParameter",
             "Resource": f"arn:{part}:ssm:{reg}::parameter/aws/service/*"},
            {"Sid": "AllowPricingReadActions", "Effect": "Allow", "Action": "pricing:GetProducts", "Resource": "*"},
            {"Sid": "AllowInterruptionQueueActions", "Effect": "Allow", "Resource": queue,
             "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]},
            {"Sid": "AllowPassingInstanceRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": node_role,
             "Condition": {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}}},
            {"Sid": "AllowScopedInstanceProfileCreationActions", "Effect": "Allow",
             "Action": "iam:CreateInstanceProfile", "Resource": f"arn:{part}:iam::{acct}:instance-profile/*",
             "Condition": {"StringEquals": {**owned, "aws:RequestTag/topology.kubernetes.io/region": reg,
                                            "aws:RequestTag/eks:eks-cluster-name": cluster},
                           "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}},
            {"Sid": "AllowScopedInstanceProfileTagActions", "Effect": "Allow",
             "Action": "iam:TagInstanceProfile", "Resource": f"arn:{part}:iam::{acct}:instance-profile/*",
             "Condition": {"StringEquals": {**res_owned, "aws:ResourceTag/topology.kubernetes.io/region": reg,
                                            **owned, "aws:RequestTag/topology.kubernetes.io/region": reg,
                                            "aws:RequestTag/eks:eks-cluster-name": cluster},
                           "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                                          "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}}},
            {"Sid": "AllowScopedInstanceProfileActions", "Effect": "Allow",
             "Action": ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                        "iam:DeleteInstanceProfile"],
             "Resource": f"arn:{part}:iam::{acct}:instance-profile/*",
             "Condition": {"StringEquals": {**res_owned, "aws:ResourceTag/topology.kubernetes.io/region": reg},
                           "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}}},
            # Instance-profile garbage collection lists them; List* cannot be resource-scoped.
            {"Sid": "AllowUnscopedInstanceProfileListAction", "Effect": "Allow", "Action": "iam:ListInstanceProfiles",
             "Resource": "*"},
            {"Sid": "AllowInstanceProfileReadActions", "Effect": "Allow", "Action": "iam:GetInstanceProfile",
             "Resource": f"arn:{part}:iam::{acct}:instance-profile/*"},
            {"Sid": "AllowAPIServerEndpointDiscovery", "Effect": "Allow", "Action": "eks:DescribeCluster",
             "Resource": f"arn:{part}:eks:{reg}:{acct}:cluster/{cluster}"},
        ]
        return json.dumps({"Version": "2012-10-17", "Statement": statements})

    return pulumi.Output.all(partition, region, account, queue_arn, node_role_arn).apply(lambda a: build(*a))


def node_pool_delete_timeout(pool: CpuPoolConfig | GpuPoolConfig) -> pulumi.CustomTimeouts:
    """How long Pulumi awaits a NodePool's deletion: its terminationGracePeriod plus the margin.
    pulumi-kubernetes deletes in the foreground (provider/pkg/await/await.go; metadata
    DeletionPropagation: Foreground unless pulumi.com/deletionPropagationPolicy says otherwise), and
    Karpenter's NodeClaims are owned by their NodePool with blockOwnerDeletion (kubernetes-sigs/
    karpenter v1.14.1 pkg/controllers/provisioning/scheduling/nodeclaimtemplate.go): the NodePool
    goes once every node of it is drained and terminated. The drain leaves do-not-disrupt pods (the
    model servers) until the NodeClaim's terminationGracePeriod (pkg/utils/pod/scheduling.go
    IsEvictable; terminator.go deletes them then). The default 10 min would fail the `pulumi up`
    that takes warmNodes to 0 under a model, or a destroy, while the cluster carries on. Foreground
    stays: on destroy the controller must outlive its nodes (docs/rehearsal.md controller-outlives)."""
    margin = timeout_seconds("nodeTerminationMargin")   # volume detachment, instance termination
    return pulumi.CustomTimeouts(delete=f"{duration_seconds(pool.termination_grace_period) + margin}s")
