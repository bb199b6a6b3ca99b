"""What each Karpenter pool is made of: the EC2NodeClass and NodePool specs, the node user data
(persistence mode, SOCI parallel pull), capacity reservations, and the node-count bounds that
size the per-node quotas. Pure functions of the compute config and the tenants' placement; the
Karpenter component (components/karpenter.py) declares them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components import names
from components.config import CpuPoolConfig, GpuPoolConfig, NodePoolConfig
from domain.instances import instance_facts

DISCOVERY_TAG = "karpenter.sh/discovery"
NODE_ROLE_LABEL = names.NODE_ROLE_LABEL
# Bottlerocket's NVIDIA variants bring their own device plugin; the GPU stack skips those nodes.
AMI_FAMILY_LABEL = "agentic.platform/ami-family"


@dataclass(frozen=True)
class TenantPlacement:
    """A node-isolated tenant's dedicated NodePool: named `pool`, a copy of GPU pool
    `source_pool`, limited to `gpu_limit` GPUs (the tenant's GPU quota)."""

    tenant: str
    pool: str
    source_pool: str
    gpu_limit: int


# --- user data. Karpenter (v1.14 docs, concepts/nodeclasses.md, "UserData") merges ours with its
# own: AL2023 takes a MIME multi-part archive and Karpenter appends its generated nodeadm
# NodeConfig (cluster, kubelet, labels and taints are Karpenter's; nodeadm merges NodeConfig parts);
# Bottlerocket takes TOML settings, merged the same way.
USER_DATA_BOUNDARY = "//"
# Persistence mode keeps the driver initialised between CUDA contexts (no re-init latency on every
# model-server start); it can never fail the boot. No `modprobe efa`: EFA needs EFA interfaces
# (spec.networkInterfaces) and a self-referencing security group, which these classes do not set.
PERSISTENCE_MODE = "if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -pm 1 || true; fi\n"
# SOCI parallel pull and unpack on AL2023: nodeadm's `FastImagePull` feature gate switches
# containerd's snapshotter to soci in parallel-pull-unpack mode, on nodes with >= 4 vCPUs and 7 GiB
# (awslabs/amazon-eks-ami, nodeadm/internal/api/features.go and nodeadm/internal/containerd/config.go,
# UseSOCISnapshotter; AWS blog "Introducing Seekable OCI Parallel Pull mode for Amazon EKS").
# With instanceStorePolicy RAID0 the array holds /var/lib/containerd but not SOCI's own root, so it
# moves under /var/lib/containerd, onto the NVMe: unit flag and containerd export together
# (awslabs/ai-on-eks, the Karpenter node class templates, `soci_snapshotter_use_instance_store`).
SOCI_ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.soci"
SOCI_ROOT_ON_RAID = (
    f"sed -i 's|ExecStart=/usr/bin/soci-snapshotter-grpc|ExecStart=/usr/bin/soci-snapshotter-grpc --root {SOCI_ROOT}|' "
    "/etc/systemd/system/soci-snapshotter.service && systemctl daemon-reload || true\n")
# Bottlerocket (bottlerocket.dev, settings.container-runtime.snapshotter and
# settings.container-runtime-plugins.soci-snapshotter.pull-mode; Bottlerocket >= 1.44.0).
BOTTLEROCKET_SOCI = ('[settings.container-runtime]\nsnapshotter = "soci"\n\n'
                     '[settings.container-runtime-plugins.soci-snapshotter]\npull-mode = "parallel-pull-unpack"\n')


def _mime(parts: list[tuple[str, str]]) -> str:
    out = f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{USER_DATA_BOUNDARY}"\n\n'
    for content_type, body in parts:
        out += f"--{USER_DATA_BOUNDARY}\nContent-Type: {content_type}\n\n{body}\n"
    return out + f"--{USER_DATA_BOUNDARY}--\n"


def gpu_user_data(pool: GpuPoolConfig) -> str:
    """The GPU pool's user data for its AMI family."""
    if pool.ami_family == "bottlerocket":
        return BOTTLEROCKET_SOCI if pool.fast_image_pull else ""
    on_raid = pool.fast_image_pull and pool.images_on_instance_store()
    script = "#!/bin/bash\n" + PERSISTENCE_MODE + (SOCI_ROOT_ON_RAID if on_raid else "")
    parts = [('text/x-shellscript; charset="us-ascii"', script)]
    if pool.fast_image_pull:
        node_config = ("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"
                       "  featureGates:\n    FastImagePull: true\n")
        if on_raid:
            node_config += (f"  containerd:\n    config: |\n      [proxy_plugins.soci.exports]\n"
                            f"        root = \"{SOCI_ROOT}\"\n")
        parts.append(("application/node.eks.aws", node_config))
    return _mime(parts)


PoolDefinition = tuple[NodePoolConfig, int | None, dict[str, str], list[dict[str, str]]]


def pool_definitions(gpu_pools: Sequence[GpuPoolConfig], cpu_pool: CpuPoolConfig,
                     tenant_pools: Sequence[TenantPlacement]) -> list[PoolDefinition]:
    """Every NodePool the platform declares, as (pool, GPU limit, node labels, taints): the GPU
    pools, the CPU pool, and a copy of a GPU pool per node-isolated tenant."""
    pools: list[PoolDefinition] = []
    for p in gpu_pools:
        # A pool with warm nodes and its static pool share a label its models select (model pods
        # cannot select both by karpenter.sh/nodepool, which Karpenter sets to each pool's name).
        pool_label = {names.GPU_POOL_LABEL: p.name} if p.warm_nodes else {}
        pools.append((p, p.gpu_limit, {NODE_ROLE_LABEL: "gpu", **pool_label}, [dict(names.GPU_TAINT)]))
    pools.append((cpu_pool, None, {NODE_ROLE_LABEL: "platform"}, []))
    by_name = {p.name: p for p in gpu_pools}
    for t in tenant_pools:
        # A tenant's copy keeps no warm nodes: its GPU quota is its limit.
        tenant_pool = by_name[t.source_pool].model_copy(update={"name": t.pool, "weight": None, "warm_nodes": 0})
        pools.append((tenant_pool, t.gpu_limit, {NODE_ROLE_LABEL: "gpu", names.TENANT_LABEL: t.tenant},
                      [dict(names.GPU_TAINT), {"key": names.TENANT_TAINT_KEY, "value": t.tenant,
                                               "effect": "NoSchedule"}]))
    return pools


def tenant_of(node_labels: dict[str, str]) -> str | None:
    """The node-isolated tenant a pool belongs to (its nodes' tenant label), or None."""
    return node_labels.get(names.TENANT_LABEL)


def pool_tags(tags: dict[str, str], node_labels: dict[str, str]) -> dict[str, str]:
    """The AWS tags of a pool's EC2 instances (EC2NodeClass spec.tags, "Tags to be applied on ec2
    resources like instances and launch templates": karpenter-crd 1.14.1 schema): the stack's, plus
    the cost allocation tag of a node-isolated tenant's pool (names.COST_ALLOCATION_TAG; a key the
    schema's CEL rules admit: not eks:eks-cluster-name, kubernetes.io/cluster/*, karpenter.sh/nodepool,
    karpenter.sh/nodeclaim or karpenter.k8s.aws/ec2nodeclass). Karpenter sets the tags at launch
    (RunInstances/CreateFleet tag specifications), which the controller's policy allows for any key
    (AllowScopedResourceCreationTagging); each tenant pool has its own EC2NodeClass, so only its
    instances carry its tag."""
    tenant = tenant_of(node_labels)
    return {**tags, names.COST_ALLOCATION_TAG: tenant} if tenant else dict(tags)


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
                   tenant_pools: Sequence[TenantPlacement]) -> int:
    """The most nodes the cluster can have: the system node group's maxSize plus every NodePool at
    its limits (a GPU pool's warm nodes on top). A pool without any limit cannot be bounded (the
    config requires one)."""
    total = system_nodes_max
    for pool, gpu_limit, _, _ in pool_definitions(gpu_pools, cpu_pool, tenant_pools):
        n = max_pool_nodes(pool, gpu_limit)
        if n is None:
            raise ValueError(f"NodePool {pool.name} has no cpu, memory or GPU limit: its node count is unbounded")
        total += n + (pool.warm_nodes if isinstance(pool, GpuPoolConfig) else 0)   # its static pool's limits.nodes
    return total


def _has_nvme(pool: NodePoolConfig) -> bool:
    facts = [instance_facts(t) for t in pool.instance_types]
    return bool(facts) and all(f is not None and f.instance_store_gib > 0 for f in facts)


def node_class_spec(pool: NodePoolConfig, cluster: str, node_role: pulumi.Input[str],
                    tags: dict[str, str]) -> dict[str, Any]:
    """EC2NodeClass: pinned AMI alias, discovery selectors, IMDSv2 with hop limit 1 (pods cannot
    reach the node role), encrypted gp3, RAID0 over the instance-store NVMe when every type has it,
    the capacity reservations the pool may launch `reserved` nodes into."""
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
    if pool.capacity_reservations:
        # Karpenter's ReservedCapacity feature gate is beta and on in the pinned chart
        # (karpenter 1.14.1 values.yaml, settings.featureGates.reservedCapacity: true).
        spec["capacityReservationSelectorTerms"] = [t.selector_term() for t in pool.capacity_reservations]
    if isinstance(pool, GpuPoolConfig) and (user_data := gpu_user_data(pool)):
        spec["userData"] = user_data
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


def warm_pool_spec(pool: GpuPoolConfig, pool_spec: dict[str, Any]) -> dict[str, Any]:
    """The static NodePool of a pool's warm nodes (karpenter.sh/v1 `spec.replicas`, alpha, feature
    gate StaticCapacity): the pool's template (node class, requirements, labels, taints) and
    budgets; `limits.nodes` = replicas, so drift replaces a node only after the old one is gone
    (kubernetes-sigs/karpenter pkg/controllers/static/provisioning/controller.go). The CRD's rules
    (karpenter-crd 1.14.1, karpenter.sh_nodepools.yaml): only `limits.nodes`, no `weight`; the
    consolidation fields are ignored (consolidateAfter is still required by the schema: the pool's).
    plan/admission/node_pools.py checks them."""
    disruption = pool_spec["disruption"]
    return {"replicas": pool.warm_nodes, "template": pool_spec["template"],
            "disruption": {"consolidateAfter": disruption["consolidateAfter"], "budgets": disruption["budgets"]},
            "limits": {"nodes": str(pool.warm_nodes)}}
