"""Tenancy layer: platform and tenant namespaces with Pod Security labels, ResourceQuotas and
LimitRanges, default-deny NetworkPolicies plus the flows the design needs (generated from the
`FLOWS` table, so `plan/reachability.py` can check the result), RBAC for kagent resources and EKS
access entries for tenants' IAM roles."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import names
from components.config import PlatformQuotasConfig, QuotaConfig, TenantConfig
from components.k8s import labels, meta

# Pod Security enforce level per platform namespace (audit and warn are always `restricted`, so a
# workload that could be stricter shows up in audit logs and kubectl warnings). Why each: docs/tenancy.md.
POD_SECURITY: dict[str, str] = {
    names.NS_GATEWAY: "restricted",        # kgateway controller and Envoy run non-root on ports >= 1024
    names.NS_AGENTS: "restricted",         # kagent controller/agents: the Agent CRD carries securityContext
    names.NS_INFERENCE: "restricted",      # model servers: non-root, caps dropped, RuntimeDefault seccomp
    names.NS_DATA: "baseline",             # Milvus/Valkey chart pods do not all run non-root by default
    names.NS_OBSERVABILITY: "restricted",  # node-exporter (host access) lives in observability-node
    names.NS_HOST_MONITORING: "privileged",  # node-exporter: hostNetwork, hostPID, hostPath
}
TENANT_POD_SECURITY = "restricted"
# Namespaces whose HTTPRoutes the gateway admits: its own (the model routes) and ai-agents; plus
# every tenant.
GATEWAY_ACCESS_NAMESPACES = (names.NS_GATEWAY, names.NS_AGENTS)
NS_NAME_LABEL = "kubernetes.io/metadata.name"    # set by the API server; a `name` label can be forged

# --- ports the flows use
DNS = (("UDP", 53), ("TCP", 53))
MODEL_PORTS = (("TCP", names.PORT_VLLM), ("TCP", names.PORT_TGI))
# Gateway listeners: 80/443 as declared, 8080/8443 where kgateway's Envoy binds unprivileged ports.
GATEWAY_LISTENER_PORTS = tuple(("TCP", p) for p in (80, 443, 8080, 8443))
AGENT_PORTS = (("TCP", 8080), ("TCP", 8083))     # kagent agents (A2A) and controller API
DATA_PORTS = (("TCP", names.PORT_MILVUS), ("TCP", names.PORT_REDIS))
TELEMETRY_PORTS = (("TCP", names.PORT_OTLP_GRPC), ("TCP", names.PORT_OTLP_HTTP), ("TCP", names.PORT_LANGFUSE))
HTTPS = (("TCP", 443),)
POSTGRES = (("TCP", 5432),)
REDIS = (("TCP", names.PORT_REDIS),)
DB_PORTS = (*POSTGRES, *REDIS)   # RDS PostgreSQL, ElastiCache
PROMETHEUS = (("TCP", 9090),)
EPP_PORTS = (("TCP", 9002),)                        # endpoint picker's ext-proc gRPC (inference routing)
EPP_PODS = (("app.kubernetes.io/component", "endpoint-picker"),)
# Where Prometheus scrapes, per namespace (model servers serve /metrics on their HTTP port).
METRICS_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    names.NS_GATEWAY: (("TCP", 9091), ("TCP", 9092)),    # Envoy stats, kgateway controller
    names.NS_AGENTS: AGENT_PORTS,
    names.NS_INFERENCE: MODEL_PORTS,
    names.NS_DATA: (("TCP", 9091), ("TCP", 9121)),       # Milvus, Valkey exporter
    names.NS_SYSTEM: (("TCP", 8080), ("TCP", 9400)),     # Karpenter/KEDA/LB controller, DCGM exporter
    "TENANTS": MODEL_PORTS,
}
# Node-level scrape targets are host-network (node IPs in the VPC): kubelet/cAdvisor, node-exporter.
NODE_SCRAPE = (("TCP", 10250), ("TCP", 9100))
WEBHOOK = (("TCP", 10250),)   # prometheus-operator admission webhook, called by the API server ENIs

PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# Pseudo-namespaces in FLOWS: every managed namespace, every tenant, IP targets.
ALL, TENANTS, SELF = "*", "TENANTS", "SELF"
VPC, INTERNET = "ipblock:vpc", "ipblock:internet"


@dataclass(frozen=True)
class Flow:
    """One allowed connection: `src` may open connections to `dst` on `ports` (None: any port).
    `dst_pods` narrows the destination to pods with these labels."""

    src: str
    dst: str
    ports: tuple[tuple[str, int], ...] | None
    why: str
    dst_pods: tuple[tuple[str, str], ...] | None = None
    # Narrows the source to pods with these labels: the egress goes into a policy of its own that
    # selects only them (the rest of the namespace does not get it).
    src_pods: tuple[tuple[str, str], ...] | None = None


# The whole network design, as data. Policies are generated from it; reachability checks them.
FLOWS: tuple[Flow, ...] = (
    Flow(ALL, names.NS_SYSTEM, DNS, "DNS", dst_pods=(("k8s-app", "kube-dns"),)),
    Flow(ALL, SELF, None, "pods of one namespace talk to each other (controllers, replicas, tenants' own apps)"),
    # the gateway
    Flow(VPC, names.NS_GATEWAY, GATEWAY_LISTENER_PORTS, "the NLB (in the VPC) forwards to the gateway proxies"),
    Flow(names.NS_GATEWAY, names.NS_INFERENCE, MODEL_PORTS, "gateway -> model servers"),
    Flow(names.NS_GATEWAY, names.NS_AGENTS, AGENT_PORTS, "gateway -> kagent / agents (the seed's request flow)"),
    Flow(names.NS_GATEWAY, TENANTS, None, "gateway -> tenants' backends (routes in gateway-access namespaces)"),
    Flow(names.NS_GATEWAY, names.NS_OBSERVABILITY, TELEMETRY_PORTS[:2], "gateway traces (OTLP)"),
    Flow(names.NS_GATEWAY, INTERNET, HTTPS, "remote JWKS of the JWT issuer"),
    # agents
    Flow(names.NS_AGENTS, names.NS_INFERENCE, MODEL_PORTS, "agents -> model servers"),
    Flow(names.NS_AGENTS, names.NS_GATEWAY, GATEWAY_LISTENER_PORTS, "agents -> gateway (ModelConfig URL)"),
    Flow(names.NS_AGENTS, names.NS_DATA, DATA_PORTS, "agents -> Milvus, Redis"),
    Flow(names.NS_AGENTS, names.NS_OBSERVABILITY, TELEMETRY_PORTS, "agents -> OTel collector, LangFuse"),
    Flow(names.NS_AGENTS, VPC, DB_PORTS, "kagent -> its RDS PostgreSQL; agents -> ElastiCache (prod)"),
    Flow(names.NS_AGENTS, INTERNET, HTTPS, "agents -> remote MCP tool servers (e.g. ticketing), HTTPS"),
    # (agents -> the Milvus MCP server, in ai-agents itself: covered by SELF)
    # tenants: from themselves (SELF) and the gateway; to themselves, the gateway and data
    Flow(TENANTS, names.NS_GATEWAY, GATEWAY_LISTENER_PORTS, "tenants reach models through the gateway"),
    Flow(TENANTS, names.NS_DATA, DATA_PORTS, "tenants -> Milvus, Redis"),
    # model servers: model downloads over HTTPS outside private ranges
    Flow(names.NS_INFERENCE, INTERNET, HTTPS, "model downloads (Hugging Face, S3)"),
    # data services: S3 and managed databases
    Flow(names.NS_DATA, INTERNET, HTTPS, "Milvus -> S3"),
    Flow(names.NS_DATA, VPC, DB_PORTS, "RDS / ElastiCache in the VPC"),
    # observability: scrapes, LangFuse's S3/RDS/Redis, the API server
    Flow(names.NS_OBSERVABILITY, names.NS_GATEWAY, METRICS_PORTS[names.NS_GATEWAY], "scrape"),
    Flow(names.NS_OBSERVABILITY, names.NS_AGENTS, METRICS_PORTS[names.NS_AGENTS], "scrape"),
    Flow(names.NS_OBSERVABILITY, names.NS_INFERENCE, METRICS_PORTS[names.NS_INFERENCE], "scrape"),
    Flow(names.NS_OBSERVABILITY, names.NS_DATA, METRICS_PORTS[names.NS_DATA], "scrape"),
    Flow(names.NS_OBSERVABILITY, names.NS_SYSTEM, METRICS_PORTS[names.NS_SYSTEM], "scrape"),
    Flow(names.NS_OBSERVABILITY, TENANTS, METRICS_PORTS["TENANTS"], "scrape tenants' model servers"),
    Flow(names.NS_OBSERVABILITY, VPC, NODE_SCRAPE, "scrape kubelets and node-exporter (host network)"),
    Flow(names.NS_OBSERVABILITY, INTERNET, HTTPS, "LangFuse -> S3, Alertmanager -> receivers"),
    Flow(names.NS_OBSERVABILITY, VPC, DB_PORTS, "LangFuse -> RDS PostgreSQL / ElastiCache (prod)"),
    Flow(names.NS_OBSERVABILITY, names.NS_DATA, REDIS, "LangFuse -> the platform's Redis (Valkey, dev)"),
    Flow(names.NS_SYSTEM, names.NS_OBSERVABILITY, PROMETHEUS, "KEDA queries Prometheus"),
    # The one way into ai-data from outside agents/tenants/observability, on one port: KEDA's operator
    # (kube-system) reads the agents' task-queue length for their redis triggers. (ElastiCache in prod
    # is outside the cluster: its security group admits the cluster SG.)
    Flow(names.NS_SYSTEM, names.NS_DATA, REDIS, "KEDA -> Valkey (agents' redis scaler trigger)"),
    Flow(VPC, names.NS_OBSERVABILITY, WEBHOOK, "API server -> prometheus-operator webhook"),
    # gateway.inferenceRouting: agentgateway — the proxy asks each model's endpoint picker (EPP,
    # beside the model servers) where to send a request; the EPP watches its InferencePool and pods.
    Flow(names.NS_GATEWAY, names.NS_INFERENCE, EPP_PORTS, "agentgateway -> endpoint pickers (ext-proc)",
         dst_pods=EPP_PODS),
    Flow(names.NS_GATEWAY, TENANTS, EPP_PORTS, "agentgateway -> tenants' endpoint pickers", dst_pods=EPP_PODS),
    Flow(names.NS_INFERENCE, VPC, HTTPS, "endpoint pickers -> Kubernetes API", src_pods=EPP_PODS),
    Flow(TENANTS, VPC, HTTPS, "tenants' endpoint pickers -> Kubernetes API", src_pods=EPP_PODS),
    # controllers -> Kubernetes API: on EKS its endpoints are ENIs in the VPC
    Flow(names.NS_GATEWAY, VPC, HTTPS, "kgateway -> Kubernetes API"),
    Flow(names.NS_AGENTS, VPC, HTTPS, "kagent -> Kubernetes API"),
    Flow(names.NS_OBSERVABILITY, VPC, HTTPS, "Prometheus, Grafana, kube-state-metrics -> Kubernetes API"),
)

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
    kubernetes_version: str
    tags: dict[str, str]


def _ports(ports: tuple[tuple[str, int], ...] | None) -> list[dict[str, Any]] | None:
    return [{"protocol": proto, "port": port} for proto, port in ports] if ports else None


def _ns_peer(namespace: str, pods: tuple[tuple[str, str], ...] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: namespace}}}
    if pods:
        peer["podSelector"] = {"matchLabels": dict(pods)}
    return peer


def _ip_peer(target: str, vpc_cidr: str) -> dict[str, Any]:
    if target == VPC:
        return {"ipBlock": {"cidr": vpc_cidr}}
    return {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}


def expand(flows: tuple[Flow, ...], managed: list[str], tenants: list[str]) -> list[tuple[str, str, Flow]]:
    """(src, dst, flow) with the pseudo-namespaces resolved."""
    def each(x: str) -> list[str]:
        return managed if x == ALL else tenants if x == TENANTS else [x]

    out = []
    for f in flows:
        for src in each(f.src):
            for dst in ([src] if f.dst == SELF else each(f.dst)):
                out.append((src, dst, f))
    return out


def network_policy_specs(managed: list[str], tenants: list[str], vpc_cidr: str,
                         flows: tuple[Flow, ...] = FLOWS) -> dict[str, dict[str, dict[str, Any]]]:
    """namespace -> policy name -> spec: `default-deny` plus `allow-ingress` / `allow-egress`."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    ingress: dict[str, list[dict[str, Any]]] = {ns: [] for ns in managed}
    egress: dict[str, list[dict[str, Any]]] = {ns: [] for ns in managed}
    pod_egress: dict[str, dict[tuple[tuple[str, str], ...], list[dict[str, Any]]]] = {ns: {} for ns in managed}
    for src, dst, f in expand(flows, managed, tenants):
        if dst in ingress:   # the destination admits the source
            peer = _ip_peer(src, vpc_cidr) if src.startswith("ipblock:") else _ns_peer(src)
            rule: dict[str, Any] = {"from": [peer]}
            if f.ports:
                rule["ports"] = _ports(f.ports)
            if rule not in ingress[dst]:
                ingress[dst].append(rule)
        if src in egress:    # the source may send to the destination
            peer = _ip_peer(dst, vpc_cidr) if dst.startswith("ipblock:") else _ns_peer(dst, f.dst_pods)
            rule = {"to": [peer]}
            if f.ports:
                rule["ports"] = _ports(f.ports)
            rules = pod_egress[src].setdefault(f.src_pods, []) if f.src_pods else egress[src]
            if rule not in rules:
                rules.append(rule)
    for ns in managed:
        out[ns] = {"default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
        if ingress[ns]:
            out[ns]["allow-ingress"] = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress[ns]}
        if egress[ns]:
            out[ns]["allow-egress"] = {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress[ns]}
        for pods, rules in pod_egress[ns].items():
            out[ns][f"allow-egress-{_safe(dict(pods).get('app.kubernetes.io/component', 'pods'))}"] = {
                "podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Egress"], "egress": rules}
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")[:40]


class Tenancy(pulumi.ComponentResource):
    """Namespaces, quotas, network isolation and access for the platform and its tenants."""

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: TenancyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:tenancy:Tenancy", name, None, opts)
        self._tenants = {t.name: t for t in args.tenants}
        child = pulumi.ResourceOptions(parent=self)
        psa_version = f"v{args.kubernetes_version}"

        # --- namespaces
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
            self.namespaces[ns] = k8s.core.v1.Namespace(
                f"{name}-ns-{ns}", metadata=meta(ns, labels=labels(ns, kind, extra=extra)), opts=child)

        # --- quotas and container defaults
        quotas: dict[str, QuotaConfig] = {ns: args.platform_quotas.for_namespace(ns) for ns in POD_SECURITY}
        quotas.update({t.name: t.quota for t in args.tenants})
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

        # --- network policies
        self.network_policies: list[k8s.networking.v1.NetworkPolicy] = []
        specs = network_policy_specs(list(self.namespaces), list(self._tenants), args.vpc_cidr)
        for ns, policies in specs.items():
            in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespaces[ns]])
            for pname, spec in policies.items():
                self.network_policies.append(k8s.networking.v1.NetworkPolicy(
                    f"{name}-netpol-{ns}-{pname}",
                    metadata=meta(pname, ns, labels=labels("network-policy", "network-policy", instance=pname)),
                    spec=spec, opts=in_ns))

        # --- RBAC: cluster-wide role definitions, granted per namespace by RoleBindings
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

        # --- EKS access entries: the role's Kubernetes groups get the kagent RBAC above; the
        # namespace-scoped View policy adds read of standard kinds in the tenant's namespace only.
        for t in args.tenants:
            for r in t.iam_roles:
                rid = f"{name}-access-{t.name}-{_safe(r.arn.rsplit('/', 1)[-1])}"
                groups = t.operator_groups if r.access == "operator" else t.viewer_groups
                entry = aws.eks.AccessEntry(rid, cluster_name=args.cluster_name, principal_arn=r.arn,
                                            kubernetes_groups=groups, type="STANDARD", tags=args.tags, opts=child)
                aws.eks.AccessPolicyAssociation(
                    f"{rid}-view", cluster_name=args.cluster_name, principal_arn=entry.principal_arn,
                    policy_arn=EKS_VIEW_POLICY, access_scope={"type": "namespace", "namespaces": [t.name]},
                    opts=pulumi.ResourceOptions(parent=entry))

        self.tenant_namespaces = sorted(self._tenants)
        self.register_outputs({"namespaces": sorted(self.namespaces), "tenantNamespaces": self.tenant_namespaces})

    def scheduling_for(self, tenant_name: str) -> tuple[list[dict[str, str]], dict[str, str]]:
        """(tolerations, nodeSelector) a workload in the tenant's namespace adds to its own (e.g. the
        GPU toleration): a node-isolated tenant's pods tolerate its pool's taint and select it."""
        t = self._tenants[tenant_name]
        if t.isolation != "node":
            return [], {}
        toleration = {"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": t.name, "effect": "NoSchedule"}
        return [toleration], {names.NODEPOOL_LABEL: names.tenant_pool_name(t.name)}
