"""Compute layer: Karpenter (controller IAM, node IAM, interruption queue and rules, the chart) and
one EC2NodeClass + NodePool per configured pool (GPU pools, the CPU pool, node-isolated tenants).

Every AWS name is prefixed by the cluster name, so two stacks in one account and region never
collide (the anchors' fixed rule names do). The controller policy is modelled on the upstream
Karpenter v1 CloudFormation policy: launch and delete only what carries this cluster's tags."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pulumi
import pulumi_aws as aws

from components import names
from components.aws import pod_identity_role, policy_json
from components.config import CpuPoolConfig, GpuPoolConfig, NodePoolConfig, TenantConfig
from components.k8s import custom_object, helm_release, labels
from components.preflight import PoolDemand, format_report, run_preflight
from domain.instances import instance_facts

NAMESPACE = names.NS_SYSTEM
SERVICE_ACCOUNT = "karpenter"
DISCOVERY_TAG = "karpenter.sh/discovery"
NODE_ROLE_LABEL = names.NODE_ROLE_LABEL
# Bottlerocket's NVIDIA variants bring their own device plugin; the GPU stack skips those nodes.
AMI_FAMILY_LABEL = "agentic.platform/ami-family"
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


# AL2023 GPU nodes: persistence mode keeps the driver initialised between CUDA contexts (no
# re-init latency on every model-server start). Karpenter (v1.14 docs, EC2NodeClass userData, AL2023)
# accepts a MIME multi-part archive and appends its generated NodeConfig part (cluster, kubelet,
# labels and taints are Karpenter's; they cannot be set here). Only a shell-script part, and it can
# never fail the boot. No `modprobe efa`: EFA needs EFA interfaces (spec.networkInterfaces) and a
# self-referencing security group, which these node classes do not configure; without an EFA device
# the module is useless, and the accelerated AL2023 AMIs ship the driver for when one is attached.
# Bottlerocket takes TOML settings instead; its NVIDIA variants need no such script.
USER_DATA_BOUNDARY = "//"
GPU_AL2023_USER_DATA = (
    "MIME-Version: 1.0\n"
    f'Content-Type: multipart/mixed; boundary="{USER_DATA_BOUNDARY}"\n'
    "\n"
    f"--{USER_DATA_BOUNDARY}\n"
    'Content-Type: text/x-shellscript; charset="us-ascii"\n'
    "\n"
    "#!/bin/bash\n"
    "if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -pm 1 || true; fi\n"
    "\n"
    f"--{USER_DATA_BOUNDARY}--\n"
)


# The rule names (and their length limit, checked by the config) are built in components/names.py.
assert tuple(INTERRUPTION_RULES) == names.KARPENTER_RULE_KEYS, "names.KARPENTER_RULE_KEYS drifted"
queue_name = names.karpenter_queue_name
rule_name = names.karpenter_rule_name


def pool_demands(gpu_pools: Sequence[GpuPoolConfig], cpu_pool: CpuPoolConfig) -> list[PoolDemand]:
    """What the pre-flight checks: every GPU pool at its GPU limit, the CPU pool at its cpu limit.
    `reserved` capacity is not a quota question (it is already bought), so it is left out."""

    def caps(p: NodePoolConfig) -> list[str]:
        return [c for c in p.capacity_types if c != "reserved"]

    out = [PoolDemand(p.name, list(p.instance_types), caps(p), p.gpu_limit, p.cpu_limit) for p in gpu_pools]
    out.append(PoolDemand(cpu_pool.name, list(cpu_pool.instance_types), caps(cpu_pool), 0, cpu_pool.cpu_limit))
    return out


def under_mocks() -> bool:
    """True when the program runs under Pulumi's mock monitor (offline plan, unit tests): nothing
    there may reach AWS."""
    from pulumi.runtime import settings
    from pulumi.runtime.mocks import MockMonitor

    return isinstance(settings.get_monitor(), MockMonitor)


def program_preflight(demands: list[PoolDemand], az_count: int) -> None:
    """`cluster.preflight: true`: the capacity pre-flight inside `pulumi preview/up`, with the
    caller's credentials. Each problem becomes a Pulumi error; any problem stops the program."""
    if under_mocks():
        return
    region = pulumi.Config("aws").get("region")
    report = run_preflight(boto3.Session(region_name=region), demands, az_count=az_count)
    if report.ok:
        pulumi.log.info(format_report(report))
        return
    for msg in report.failures + [f for p in report.pools for f in p.failures]:
        pulumi.log.error(f"capacity pre-flight: {msg}")
    raise pulumi.RunError("capacity pre-flight failed (cluster.preflight is on); see the errors above")


@dataclass
class KarpenterArgs:
    cluster_name: str                       # the config name: AWS names derive from it
    cluster: pulumi.Input[str]              # the EKS cluster's name Output (orders after the cluster)
    endpoint: pulumi.Input[str]
    system_nodes: pulumi.Resource           # the controller runs there
    gpu_pools: list[GpuPoolConfig]
    cpu_pool: CpuPoolConfig
    tenants: list[TenantConfig]
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # e.g. CoreDNS, pod-identity agent
    preflight_az_count: int | None = None   # run the capacity pre-flight over this many AZs


class Karpenter(pulumi.ComponentResource):
    """Karpenter and its node pools. `node_pools` maps pool name -> NodePool; `release` is the
    controller's Helm release (layers whose pods need Karpenter nodes depend on it)."""

    node_pools: dict[str, pulumi.Resource]
    node_classes: dict[str, pulumi.Resource]
    release: pulumi.Resource

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:compute:Karpenter", name, None, opts)
        cluster, tags = args.cluster_name, args.tags
        child = pulumi.ResourceOptions(parent=self)
        if args.preflight_az_count is not None:
            program_preflight(pool_demands(args.gpu_pools, args.cpu_pool), args.preflight_az_count)

        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        account = aws.get_caller_identity_output(opts=invoke).account_id

        # --- interruption queue: one per cluster (Karpenter maintainers: never share one)
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

        # --- node role (what Karpenter's nodes run as) and its access entry
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

        # --- controller role (Pod Identity, kube-system/karpenter)
        self.controller = pod_identity_role(
            f"{name}-controller", cluster_name=args.cluster, namespace=NAMESPACE, service_account=SERVICE_ACCOUNT,
            policy=controller_policy(cluster, partition, region, account, self.queue.arn, self.node_role.arn),
            tags=tags, opts=child)

        # --- the chart: CRDs in their own release (owned once), the controller with skip_crds
        base = pulumi.ResourceOptions(parent=self, depends_on=[args.system_nodes, *args.depends_on])
        self.crd_release = helm_release(f"{name}-crd", "karpenter-crd", namespace=NAMESPACE, values={}, opts=base)
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
                             "featureGates": {"nodeRepair": True}},
                # On the system node group, never on nodes it manages itself.
                **names.system_placement(),
                "podDisruptionBudget": {"name": "karpenter", "maxUnavailable": 1},
                "controller": {"resources": CONTROLLER_RESOURCES},
                # The chart renders its ServiceMonitor only if monitoring.coreos.com/v1 is served at
                # install time, and this release installs before kube-prometheus-stack (whose pods run
                # on Karpenter's nodes): it would silently never exist. The GPU stack declares it.
                "serviceMonitor": {"enabled": False},
                "additionalLabels": {"app.kubernetes.io/part-of": "agentic-platform"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                self.crd_release, self.controller.association, access_entry, queue_policy, args.system_nodes,
                *args.depends_on]))

        # --- node classes and pools. They depend on the release: on destroy they go first, while
        # the controller still runs and can terminate the instances it launched.
        self.node_classes, self.node_pools = {}, {}
        for pool, gpu_limit, extra_labels, taints in pool_definitions(args.gpu_pools, args.cpu_pool, args.tenants):
            dep = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
            node_class = custom_object(
                f"{name}-nodeclass-{pool.name}", "karpenter.k8s.aws/v1", "EC2NodeClass", pool.name,
                labels=labels("karpenter", "node-class", instance=pool.name),
                spec=node_class_spec(pool, cluster, self.node_role.name, tags), opts=dep)
            node_pool = custom_object(
                f"{name}-nodepool-{pool.name}", "karpenter.sh/v1", "NodePool", pool.name,
                labels=labels("karpenter", "node-pool", instance=pool.name),
                spec=node_pool_spec(pool, gpu_limit, {**pool.labels, **extra_labels, AMI_FAMILY_LABEL: pool.ami_family},
                                    taints + [t.model_dump(exclude_none=True) for t in pool.taints]),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, node_class]))
            self.node_classes[pool.name] = node_class
            self.node_pools[pool.name] = node_pool

        self.queue_name = self.queue.name
        self.node_role_name = self.node_role.name
        self.register_outputs({"interruptionQueue": self.queue.name, "nodeRole": self.node_role.name,
                               "nodePools": list(self.node_pools)})


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


PoolDefinition = tuple[NodePoolConfig, int | None, dict[str, str], list[dict[str, str]]]


def pool_definitions(gpu_pools: Sequence[GpuPoolConfig], cpu_pool: CpuPoolConfig,
                     tenants: Sequence[TenantConfig]) -> list[PoolDefinition]:
    """Every NodePool the platform declares, as (pool, GPU limit, node labels, taints): the GPU
    pools, the CPU pool, and a copy of its first GPU pool per node-isolated tenant (GPU limit = the
    tenant's GPU quota)."""
    pools: list[PoolDefinition] = []
    for p in gpu_pools:
        pools.append((p, p.gpu_limit, {NODE_ROLE_LABEL: "gpu"}, [dict(names.GPU_TAINT)]))
    pools.append((cpu_pool, None, {NODE_ROLE_LABEL: "platform"}, []))
    by_name = {p.name: p for p in gpu_pools}
    for t in (t for t in tenants if t.isolation == "node"):
        src = by_name[(t.gpu_pools or [gpu_pools[0].name])[0]]
        tenant_pool = src.model_copy(update={"name": names.tenant_pool_name(t.name), "weight": None})
        pools.append((tenant_pool, t.quota.gpu, {NODE_ROLE_LABEL: "gpu", names.TENANT_LABEL: t.name},
                      [dict(names.GPU_TAINT), {"key": names.TENANT_TAINT_KEY, "value": t.name,
                                               "effect": "NoSchedule"}]))
    return pools


def max_pool_nodes(pool: NodePoolConfig, gpu_limit: int | None) -> int | None:
    """The most nodes a pool can hold under its limits, counted in its smallest instance type per
    limited resource; None if nothing limits it. Karpenter stops launching only once a limit is
    exceeded (karpenter.sh v1 docs, NodePool `limits`), so the last node may cross it: ceil."""
    facts = [f for t in pool.instance_types if (f := instance_facts(t)) is not None]
    bounds = []
    for limit, per_node in ((gpu_limit, [f.gpus for f in facts if f.gpus > 0]),
                            (pool.cpu_limit, [f.vcpu for f in facts]),
                            (pool.memory_limit_gib, [f.memory_gib for f in facts])):
        if limit is not None:
            bounds.append(math.ceil(limit / min(per_node, default=1)))
    return min(bounds) if bounds else None


def max_node_count(system_nodes_max: int, gpu_pools: Sequence[GpuPoolConfig], cpu_pool: CpuPoolConfig,
                   tenants: Sequence[TenantConfig]) -> int:
    """The most nodes the cluster can have: the system node group's maxSize plus every NodePool at
    its limits. A pool without any limit cannot be bounded (the config requires one)."""
    total = system_nodes_max
    for pool, gpu_limit, _, _ in pool_definitions(gpu_pools, cpu_pool, tenants):
        n = max_pool_nodes(pool, gpu_limit)
        if n is None:
            raise ValueError(f"NodePool {pool.name} has no cpu, memory or GPU limit: its node count is unbounded")
        total += n
    return total


def _has_nvme(pool: NodePoolConfig) -> bool:
    facts = [instance_facts(t) for t in pool.instance_types]
    return bool(facts) and all(f is not None and f.instance_store_gib > 0 for f in facts)


def node_class_spec(pool: NodePoolConfig, cluster: str, node_role: pulumi.Input[str],
                    tags: dict[str, str]) -> dict[str, Any]:
    """EC2NodeClass: pinned AMI alias, discovery selectors, IMDSv2 with hop limit 1 (pods cannot
    reach the node role), encrypted gp3, RAID0 over the instance-store NVMe when every type has it."""
    volume: dict[str, Any] = {"volumeSize": f"{pool.root_volume_gib}Gi", "volumeType": "gp3", "encrypted": True,
                              "deleteOnTermination": True}
    if pool.root_volume_iops is not None:  # unset: the gp3 baseline (3000 IOPS, 125 MiB/s)
        volume["iops"] = pool.root_volume_iops
    if pool.root_volume_throughput is not None:
        volume["throughput"] = pool.root_volume_throughput
    if pool.ami_family == "bottlerocket":
        # Bottlerocket: /dev/xvda is the small OS volume, /dev/xvdb holds images and pods.
        devices = [{"deviceName": "/dev/xvda", "rootVolume": True,
                    "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}},
                   {"deviceName": "/dev/xvdb", "ebs": volume}]
    else:
        devices = [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": volume}]
    spec: dict[str, Any] = {
        "amiSelectorTerms": [{"alias": f"{pool.ami_family}@{pool.ami_version}"}],
        "role": node_role,
        "subnetSelectorTerms": [{"tags": {DISCOVERY_TAG: cluster}}],
        "securityGroupSelectorTerms": [{"tags": {DISCOVERY_TAG: cluster}}],
        "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                            "httpPutResponseHopLimit": 1, "httpTokens": "required"},
        "blockDeviceMappings": devices,
        "tags": {**tags, "Name": f"{cluster}-{pool.name}"},
    }
    if _has_nvme(pool):
        spec["instanceStorePolicy"] = "RAID0"
    if isinstance(pool, GpuPoolConfig) and pool.ami_family == "al2023":
        spec["userData"] = GPU_AL2023_USER_DATA
    return spec


def node_pool_spec(pool: NodePoolConfig, gpu_limit: int | None, node_labels: dict[str, str],
                   taints: list[dict[str, str]]) -> dict[str, Any]:
    limits: dict[str, str] = {}
    if gpu_limit is not None:
        limits[names.GPU_RESOURCE] = str(gpu_limit)
    if pool.cpu_limit is not None:
        limits["cpu"] = str(pool.cpu_limit)
    if pool.memory_limit_gib is not None:
        limits["memory"] = f"{pool.memory_limit_gib}Gi"
    budgets = [b.model_dump(exclude_none=True) for b in pool.budgets]
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name},
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(pool.instance_types)},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(pool.capacity_types)},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ],
        "expireAfter": pool.expire_after,
        # Karpenter v1: after this long a draining node's pods are deleted even if a PDB or
        # karpenter.sh/do-not-disrupt blocks their eviction (the NodePool CRD's field description).
        "terminationGracePeriod": pool.termination_grace_period,
    }
    if taints:
        template_spec["taints"] = taints
    spec: dict[str, Any] = {
        "template": {"metadata": {"labels": node_labels}, "spec": template_spec},
        "disruption": {"consolidationPolicy": pool.consolidation_policy,
                       "consolidateAfter": pool.consolidate_after, "budgets": budgets},
    }
    if limits:
        spec["limits"] = limits
    if pool.weight is not None:
        spec["weight"] = pool.weight
    return spec
