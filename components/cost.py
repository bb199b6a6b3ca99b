"""Cost layer: OpenCost (chart opencost 2.5.17, image 1.120.1) in its own namespace, prices every
node from AWS's on-demand price list and EC2 spot price history and allocates it to containers;
Prometheus (kube-prometheus-stack) scrapes its metrics, and the daily cost alert per tenant is a
PrometheusRule on them (docs/cost.md).

How OpenCost 1.120.1 prices AWS nodes (opencost/opencost pkg/cloud/aws, read at the image's tag):
- on-demand: the public bulk price list, a plain unauthenticated HTTPS GET of
  https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/<region>/index.json
  (provider.go getRegionPricing, pricelistapi.go); cached under its config path (/var/configs);
- spot (nodes labelled karpenter.sh/capacity-type=spot): the spot data feed when configured (not
  here), else EC2 DescribeSpotPriceHistory (spotpricehistory.go, opencost PR #3731) through the
  default AWS credential chain: the Pod Identity role below grants exactly that action, which
  supports no resource-level permissions (Resource "*"). Without it OpenCost falls back to the
  on-demand price for spot nodes (opencost issue #3995).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import names
from components.aws import pod_identity_role, policy_json
from components.config import CostConfig
from components.k8s import (
    NodeSource,
    container_security_context,
    custom_object,
    helm_release,
    labels,
    platform_data,
    pod_security_context,
    resources,
)

NS = names.NS_COST
RELEASE = names.OPENCOST_RELEASE
# The chart names its ServiceAccount, Deployment and Service after the release (fullnameOverride).
SERVICE_ACCOUNT = RELEASE
OPENCOST_UID = 1001                      # opencost Dockerfile `USER 1001`
# Where OpenCost writes (its config path, pkg/env costmodelenv.go DefaultConfigMountPath
# "/var/configs": pricing caches, config files) and Go's temp dir: the root filesystem is read-only
# (Pod Security restricted, container_security_context).
WRITABLE_PATHS = {"configs": "/var/configs", "tmp": "/tmp"}
# EC2 DescribeSpotPriceHistory: "does not support resource-level permissions" (Service
# Authorization Reference, Amazon EC2 actions), hence Resource "*"; read-only.
SPOT_PRICE_STATEMENT = {"Effect": "Allow", "Action": ["ec2:DescribeSpotPriceHistory"], "Resource": "*"}

# The recording rule every cost query builds on: USD per hour of each namespace's compute (CPU,
# memory, GPU), OpenCost's allocation of each node's price to the containers on it (container_*_allocation
# = max(request, usage); node_*_hourly_cost per node). Labels `namespace` (= the tenant for tenant
# namespaces). Metric names: opencost pkg/costmodel/metrics.go (platform/metrics.yaml, `opencost`).
NAMESPACE_COST = "agentic:namespace_compute_cost:usd_per_hour"
_PART = ('label_replace(sum by (namespace, node) ({alloc}){scale} * on (node) group_left () '
         'max by (node) ({price}), "resource", "{resource}", "", "")')
NAMESPACE_COST_EXPR = "sum by (namespace) (" + " or ".join(
    _PART.format(alloc=alloc, scale=scale, price=price, resource=resource)
    for alloc, scale, price, resource in (
        ("container_cpu_allocation", "", "node_cpu_hourly_cost", "cpu"),
        ("container_memory_allocation_bytes", " / 1073741824", "node_ram_hourly_cost", "memory"),
        ("container_gpu_allocation", "", "node_gpu_hourly_cost", "gpu"))) + ")"
DAILY_COST_ALERT = "TenantDailyCostHigh"


def daily_cost_expr(tenant: str) -> str:
    """USD a tenant's namespace cost over the last 24 hours: the hourly rate sampled every 5
    minutes, summed, / 12 (twelve 5-minute samples per hour)."""
    return f'sum_over_time({NAMESPACE_COST}{{namespace="{tenant}"}}[1d:5m]) / 12'


def cost_rules(cfg: CostConfig, tenants: Sequence[str]) -> dict[str, Any]:
    """The PrometheusRule's spec: the namespace cost recording rule and one daily cost alert per
    tenant at its threshold (cost.tenantThresholdsUsd, else cost.dailyTenantThresholdUsd)."""
    alerts = [{
        "alert": DAILY_COST_ALERT,
        "expr": f"{daily_cost_expr(t)} > {cfg.threshold_for(t):g}",
        "for": cfg.alert_for,
        "labels": {"severity": "warning", "tenant": t},
        "annotations": {
            "summary": f"Tenant {t} cost above ${cfg.threshold_for(t):g} in the last 24 hours",
            "description": (f"OpenCost's allocation of node prices to namespace {t} (CPU, memory, GPU) adds up to "
                            "${{ $value | printf \"%.2f\" }} over the last 24 hours (threshold "
                            f"${cfg.threshold_for(t):g}, config cost.dailyTenantThresholdUsd / tenantThresholdsUsd)."),
        },
    } for t in tenants]
    groups: list[dict[str, Any]] = [{"name": "cost-allocation", "rules": [{"record": NAMESPACE_COST,
                                                                            "expr": NAMESPACE_COST_EXPR}]}]
    if alerts:
        groups.append({"name": "tenant-cost", "rules": alerts})
    return {"groups": groups}


def opencost_values(cluster_name: str) -> dict[str, Any]:
    """The chart's values: the exporter only (no UI, no MCP server), restricted, on the platform's
    Prometheus (names.PROMETHEUS_URL), its ServiceMonitor on."""
    image = platform_data("images.yaml")["opencost"]
    return {
        "fullnameOverride": RELEASE,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},   # the Pod Identity association's
        "podSecurityContext": pod_security_context(OPENCOST_UID, fs_group=OPENCOST_UID),
        "extraVolumes": [{"name": volume, "emptyDir": {}} for volume in WRITABLE_PATHS],
        "opencost": {
            "exporter": {
                "image": {"registry": image["registry"], "repository": image["repository"], "tag": str(image["tag"])},
                # One replica, not configurable. Upstream runs replicas (opencost/opencost#1750: "You
                # should be able to run a replicated opencost just fine"; chart 2.5.x added a
                # PodDisruptionBudget for the API's availability, opencost-helm-chart#287), but every
                # replica computes and exports the same series, and the chart's ServiceMonitor
                # (templates/servicemonitor.yaml: one endpoint, the Service's pods) makes each pod a
                # target: node_*_hourly_cost (no pod label of its own) would be counted once per
                # replica by the dashboard's and TenantDailyCostHigh's sums, and the allocation series
                # (honorLabels keeps their own namespace/pod/instance) would collide between targets.
                # The platform reads OpenCost through Prometheus only (no UI, no API clients).
                "replicas": 1,
                # The cluster's name as OpenCost's cluster id (cluster_id label, allocation API).
                "defaultClusterId": cluster_name,
                "resources": resources("100m", "256Mi", cpu_limit="1", memory_limit="1Gi"),
                "securityContext": container_security_context(),
                "extraVolumeMounts": [{"name": volume, "mountPath": path} for volume, path in WRITABLE_PATHS.items()],
            },
            # The UI (nginx, another image and port) and the MCP server (port 8081) are not used: the
            # Cost Tracking dashboard reads OpenCost's metrics from Prometheus.
            "ui": {"enabled": False},
            "mcp": {"enabled": False},
            "prometheus": {"internal": {"enabled": False},
                           "external": {"enabled": True, "url": names.PROMETHEUS_URL}},
            # honorLabels (the chart's default, kept explicit): OpenCost's `namespace` and `node` labels
            # are the container's; the target's own (namespace opencost) must not replace them.
            "metrics": {"serviceMonitor": {"enabled": True, "honorLabels": True}},
        },
    }


@dataclass
class CostAllocationArgs:
    config: CostConfig
    cluster_name: pulumi.Input[str]          # the cluster's output: Pod Identity binds to the live cluster
    cluster_id: str                          # the configured cluster name: OpenCost's cluster id
    tenants: Sequence[str]                   # Tenancy.tenant_namespaces: one daily cost alert each
    tags: dict[str, str]
    # The opencost namespace and observability (the tenant cost rules' namespace), the tenancy
    # layer's; the monitoring.coreos.com CRDs' release
    # (Observability.monitoring_crds), which the ServiceMonitor and PrometheusRule need (and which
    # goes after them on destroy): not kube-prometheus-stack, whose pods need Karpenter's nodes.
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    monitoring_crds: pulumi.Resource | None = None
    nodes: NodeSource | None = None          # Karpenter's platform NodePool: the release waits for it


class CostAllocation(pulumi.ComponentResource):
    """OpenCost and the tenant cost alerts. Public: `release`, `rules`, `ready` (the release)."""

    def __init__(self, name: str, args: CostAllocationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:cost:CostAllocation", name, None, opts)
        after = [*args.depends_on, *([args.monitoring_crds] if args.monitoring_crds else [])]
        child = pulumi.ResourceOptions(parent=self)
        self.identity = pod_identity_role(f"{name}-opencost", cluster_name=args.cluster_name, namespace=NS,
                                          service_account=SERVICE_ACCOUNT, policy=policy_json([SPOT_PRICE_STATEMENT]),
                                          tags=args.tags, opts=child)
        self.release = helm_release(
            f"{name}-opencost", "opencost", namespace=NS, release_name=RELEASE,
            values=opencost_values(args.cluster_id),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, *(args.nodes or ()),
                                                                  self.identity.association]))
        self.rules = custom_object(
            f"{name}-rules", "monitoring.coreos.com/v1", "PrometheusRule", "tenant-cost",
            namespace=names.NS_OBSERVABILITY,
            labels=labels("tenant-cost", "alerts", extra={"release": names.PROMETHEUS_RELEASE}),
            spec=cost_rules(args.config, args.tenants), opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        self.ready = self.release
        self.register_outputs({"opencostRelease": RELEASE, "dailyCostThresholdUsd": args.config.daily_tenant_threshold_usd})
