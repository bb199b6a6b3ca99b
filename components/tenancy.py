"""Tenancy layer: platform and tenant namespaces with Pod Security labels, ResourceQuotas and
LimitRanges, default-deny NetworkPolicies plus the flows the design needs (generated from the
`FLOWS` table, so `plan/reachability.py` can check the result), RBAC for kagent resources and EKS
access entries for tenants' IAM roles."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import names
from components.config import PlatformQuotasConfig, QuotaConfig, TenantConfig
from components.k8s import labels, meta
from components.tenancy_flows import (  # noqa: F401  (FLOWS, expand and the feature keys: re-exported)
    AGENTGATEWAY,
    ENDPOINT_PICKERS,
    FLOWS,
    MANAGED_POSTGRES,
    MANAGED_REDIS,
    MILVUS_MONITOR,
    MODEL_SERVERS,
    NS_NAME_LABEL,
    S3_MODEL_CACHE,
    VALKEY,
    VALKEY_MONITOR,
    expand,
    network_policy_specs,
    safe_name,
)

# Pod Security enforce level per platform namespace (audit and warn are always `restricted`, so a
# workload that could be stricter shows up in audit logs and kubectl warnings). Why each: docs/tenancy.md.
POD_SECURITY: dict[str, str] = {
    names.NS_GATEWAY: "restricted",        # kgateway controller and Envoy run non-root on ports >= 1024
    names.NS_AGENTS: "restricted",         # kagent controller/agents: the Agent CRD carries securityContext
    names.NS_INFERENCE: "restricted",      # model servers: non-root, caps dropped, RuntimeDefault seccomp
    names.NS_DATA: "baseline",             # Milvus/Valkey chart pods do not all run non-root by default
    names.NS_OBSERVABILITY: "restricted",  # node-exporter (host access) lives in observability-node
    names.NS_HOST_MONITORING: "privileged",  # node-exporter: hostNetwork, hostPID, hostPath
    names.NS_COST: "restricted",           # OpenCost: non-root, caps dropped, RuntimeDefault (components/cost.py)
}
TENANT_POD_SECURITY = "restricted"
# Namespaces whose HTTPRoutes the gateway admits: its own (the model routes) and ai-agents; plus
# every tenant.
GATEWAY_ACCESS_NAMESPACES = (names.NS_GATEWAY, names.NS_AGENTS)

# kagent kinds (kagent.dev/v1alpha2) tenants manage.
KAGENT_RESOURCES = ["agents", "modelconfigs", "remotemcpservers"]
ROLE_OPERATOR, ROLE_VIEWER = "agent-operator", "agent-viewer"
EKS_VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"


@dataclass
class TenancyArgs:
    tenants: list[TenantConfig]
    platform_quotas: PlatformQuotasConfig
    cluster_name: pulumi.Input[str]
    vpc_cidr: str
    api_cidrs: list[str]   # the control-plane subnets: where the Kubernetes API's network interfaces are
    kubernetes_version: str
    tags: dict[str, str]
    # feature -> namespaces that run it (see MODEL_SERVERS ...): conditional flows hold there only.
    features: Mapping[str, Collection[str]] = field(default_factory=dict)
    # Quotas computed by other layers' sizing rules, replacing the configured ones (the
    # observability-node quota from the pools' maximum node count: AgenticPlatform).
    quota_overrides: Mapping[str, QuotaConfig] = field(default_factory=dict)
    # Namespaces that hold PersistentVolumeClaims wait for (and on destroy go before) these: the EBS
    # CSI add-on, so the driver still runs when their volumes are deleted.
    pvc_namespaces: Collection[str] = ()
    storage_driver: Sequence[pulumi.Resource] = ()


class Tenancy(pulumi.ComponentResource):
    """Namespaces, quotas, network isolation and access for the platform and its tenants."""

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: TenancyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:tenancy:Tenancy", name, None, opts)
        self._tenants = {t.name: t for t in args.tenants}
        self._namespaces(name, args)
        self._quotas(name, args)
        self._network_policies(name, args)
        self._rbac(name, args)
        self._access_entries(name, args)
        self.tenant_namespaces = sorted(self._tenants)
        self.register_outputs({"namespaces": sorted(self.namespaces), "tenantNamespaces": self.tenant_namespaces})

    def _namespaces(self, name: str, args: TenancyArgs) -> None:
        """Every namespace with its Pod Security labels, tenant and gateway-access labels."""
        child = pulumi.ResourceOptions(parent=self)
        psa_version = f"v{args.kubernetes_version}"
        self.namespaces = {}
        levels = {**POD_SECURITY, **{t.name: TENANT_POD_SECURITY for t in args.tenants}}
        for ns, level in levels.items():
            extra = {"pod-security.kubernetes.io/enforce": level,
                     "pod-security.kubernetes.io/enforce-version": psa_version,
                     "pod-security.kubernetes.io/audit": "restricted",
                     "pod-security.kubernetes.io/warn": "restricted"}
            if ns in self._tenants:
                extra[names.TENANT_LABEL] = ns
            if ns in self._tenants or ns in GATEWAY_ACCESS_NAMESPACES:
                extra[names.GATEWAY_ACCESS_LABEL] = "true"
            kind = "tenant-namespace" if ns in self._tenants else "platform-namespace"
            # A namespace holding PVCs waits for the EBS CSI driver; on destroy it (and so its PVCs,
            # StatefulSets' included) is deleted while the driver still runs to delete the volumes.
            ns_opts = (pulumi.ResourceOptions(parent=self, depends_on=list(args.storage_driver))
                       if ns in args.pvc_namespaces else child)
            self.namespaces[ns] = k8s.core.v1.Namespace(
                f"{name}-ns-{ns}", metadata=meta(ns, labels=labels(ns, kind, extra=extra)), opts=ns_opts)

    def _quotas(self, name: str, args: TenancyArgs) -> None:
        """A ResourceQuota and LimitRange (container defaults) per namespace."""
        quotas: dict[str, QuotaConfig] = {ns: args.platform_quotas.for_namespace(ns) for ns in POD_SECURITY}
        quotas.update({t.name: t.quota for t in args.tenants})
        quotas.update(args.quota_overrides)
        for ns, q in quotas.items():
            in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespaces[ns]])
            k8s.core.v1.ResourceQuota(f"{name}-quota-{ns}", metadata=meta(f"{ns}-quota", ns,
                                      labels=labels("quota", "resource-quota", instance=ns)),
                                      spec={"hard": q.hard()}, opts=in_ns)
            k8s.core.v1.LimitRange(f"{name}-limits-{ns}", metadata=meta(f"{ns}-limits", ns,
                                   labels=labels("limits", "limit-range", instance=ns)),
                                   spec={"limits": [{"type": "Container",
                                                     "default": q.default_limit.model_dump(),
                                                     "defaultRequest": q.default_request.model_dump()}]},
                                   opts=in_ns)

    def _network_policies(self, name: str, args: TenancyArgs) -> None:
        """The NetworkPolicies generated from the FLOWS table (components/tenancy_flows.py)."""
        self.network_policies: list[k8s.networking.v1.NetworkPolicy] = []
        specs = network_policy_specs(list(self.namespaces), list(self._tenants), args.vpc_cidr,
                                     api_cidrs=args.api_cidrs, features=args.features)
        for ns, policies in specs.items():
            in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespaces[ns]])
            for pname, spec in policies.items():
                self.network_policies.append(k8s.networking.v1.NetworkPolicy(
                    f"{name}-netpol-{ns}-{pname}",
                    metadata=meta(pname, ns, labels=labels("network-policy", "network-policy", instance=pname)),
                    spec=spec, opts=in_ns))

    def _rbac(self, name: str, args: TenancyArgs) -> None:
        """Cluster-wide role definitions, granted per namespace by RoleBindings."""
        child = pulumi.ResourceOptions(parent=self)

        def kagent_rule(verbs: list[str]) -> dict[str, Any]:
            return {"apiGroups": ["kagent.dev"], "resources": KAGENT_RESOURCES, "verbs": verbs}

        read = ["get", "list", "watch"]
        pod_read = {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": read}
        roles = {
            ROLE_OPERATOR: [kagent_rule([*read, "create", "update", "patch", "delete"]), pod_read],
            ROLE_VIEWER: [kagent_rule(read), pod_read],
        }
        for role, rules in roles.items():
            k8s.rbac.v1.ClusterRole(f"{name}-role-{role}", metadata=meta(role, labels=labels(role, "rbac")),
                                    rules=rules, opts=child)

        def bind(ns: str, role: str, groups: list[str]) -> None:
            if not groups:
                return
            k8s.rbac.v1.RoleBinding(
                f"{name}-binding-{ns}-{role}", metadata=meta(role, ns, labels=labels(role, "rbac", instance=ns)),
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespaces[ns]]))

        shared_viewers: list[str] = []
        for t in args.tenants:
            bind(t.name, ROLE_OPERATOR, t.operator_groups)
            bind(t.name, ROLE_VIEWER, t.viewer_groups)
            shared_viewers += [g for g in (*t.operator_groups, *t.viewer_groups) if g not in shared_viewers]
        # ai-agents is shared by every tenant: read-only there, so no tenant changes what others use.
        bind(names.NS_AGENTS, ROLE_VIEWER, shared_viewers)

    def _access_entries(self, name: str, args: TenancyArgs) -> None:
        """EKS access entries: the role's Kubernetes groups get the kagent RBAC; the namespace-scoped
        View policy adds read of standard kinds in the tenant's namespace only."""
        child = pulumi.ResourceOptions(parent=self)
        for t in args.tenants:
            for r in t.iam_roles:
                rid = f"{name}-access-{t.name}-{safe_name(r.arn.rsplit('/', 1)[-1])}"
                groups = t.operator_groups if r.access == "operator" else t.viewer_groups
                entry = aws.eks.AccessEntry(rid, cluster_name=args.cluster_name, principal_arn=r.arn,
                                            kubernetes_groups=groups, type="STANDARD", tags=args.tags, opts=child)
                aws.eks.AccessPolicyAssociation(
                    f"{rid}-view", cluster_name=args.cluster_name, principal_arn=entry.principal_arn,
                    policy_arn=EKS_VIEW_POLICY, access_scope={"type": "namespace", "namespaces": [t.name]},
                    opts=pulumi.ResourceOptions(parent=entry))

    def scheduling_for(self, tenant_name: str) -> tuple[list[dict[str, str]], dict[str, str]]:
        """(tolerations, nodeSelector) a workload in the tenant's namespace adds to its own (e.g. the
        GPU toleration): a node-isolated tenant's pods tolerate its pool's taint and select it."""
        t = self._tenants[tenant_name]
        if t.isolation != "node":
            return [], {}
        toleration = {"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": t.name, "effect": "NoSchedule"}
        return [toleration], {names.NODEPOOL_LABEL: names.tenant_pool_name(t.name)}
