"""The tenancy layer's network design as data: the ports and peers, the `FLOWS` table of
`Flow(src, dst, ports, why)` and the NetworkPolicy specs generated from it (`network_policy_specs`),
which `plan/reachability.py` checks against what the platform really connects to."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components import names
from components.data import MILVUS_RELEASE
from components.langfuse import LANGFUSE_RELEASE
from components.observability import KPS_RELEASE

NS_NAME_LABEL = "kubernetes.io/metadata.name"    # set by the API server; a `name` label can be forged


def safe_name(text: str) -> str:
    """A fragment of a Kubernetes object name (lowercase, dashes, <= 40 characters)."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")[:40]

# --- ports the flows use
DNS = (("UDP", 53), ("TCP", 53))
MODEL_PORTS = (("TCP", names.PORT_VLLM), ("TCP", names.PORT_TGI))
# Gateway listeners: 80/443 as declared, 8080/8443 where kgateway's Envoy binds unprivileged ports.
GATEWAY_LISTENER_PORTS = tuple(("TCP", p) for p in (80, 443, 8080, 8443))
AGENT_PORTS = (("TCP", 8080), ("TCP", 8083))     # kagent agents (A2A) and controller API
MILVUS = (("TCP", names.PORT_MILVUS),)
TELEMETRY_PORTS = (("TCP", names.PORT_OTLP_GRPC), ("TCP", names.PORT_OTLP_HTTP), ("TCP", names.PORT_LANGFUSE))
HTTPS = (("TCP", 443),)
POSTGRES = (("TCP", 5432),)
REDIS = (("TCP", names.PORT_REDIS),)
DB_PORTS = (*POSTGRES, *REDIS)   # RDS PostgreSQL, ElastiCache
PROMETHEUS = (("TCP", names.PROMETHEUS_PORT),)
OPENCOST = (("TCP", names.PORT_OPENCOST),)
EPP_PORTS = (("TCP", 9002),)                        # endpoint picker's ext-proc gRPC (inference routing)
EPP_PODS = (("app.kubernetes.io/component", "endpoint-picker"),)
KUBE_DNS_PODS = (("k8s-app", "kube-dns"),)
# Where Prometheus scrapes, per namespace: only ports a ServiceMonitor really targets (model
# servers serve /metrics on their HTTP port). In ai-gateway only the agentgateway proxies are scraped
# (their PodMonitor, with inferenceRouting: agentgateway; no kgateway monitor is declared); nothing
# scrapes ai-agents (kagent 0.9.12 agents serve no /metrics, its controller's metrics
# endpoint is off by default: docs/agents.md), so neither admits observability.
AGENTGATEWAY_METRICS = (("TCP", names.AGENTGATEWAY_METRICS_PORT),)
AGENTGATEWAY_PODS = (("app.kubernetes.io/name", names.AGENTGATEWAY_NAME),)
MILVUS_METRICS = (("TCP", 9091),)      # milvus-helm milvus-5.0.19 values.yaml metrics port 9091
VALKEY_METRICS = (("TCP", 9121),)      # valkey-helm 0.11.0 metrics.exporter.port 9121
METRICS_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    names.NS_INFERENCE: MODEL_PORTS,
    names.NS_DATA: (*MILVUS_METRICS, *VALKEY_METRICS),
    # Karpenter's http-metrics (chart 1.14.1 controller.metrics.port 8080; the GPU stack's
    # ServiceMonitor), the DCGM exporter (9400).
    names.NS_SYSTEM: (("TCP", 8080), ("TCP", 9400)),
    "TENANTS": MODEL_PORTS,
}
# kube-prometheus-stack 88.5.3 values.yaml `coreDns`: enabled, Service port/targetPort 9153 selecting
# k8s-app: kube-dns, with a ServiceMonitor: Prometheus scrapes the CoreDNS pods there.
COREDNS_METRICS = (("TCP", 9153),)

# The EKS Pod Identity agent (DaemonSet, hostNetwork) answers credential requests on the node at
# 169.254.170.23:80 ("Set up the Amazon EKS Pod Identity Agent",
# docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html; the SDKs get
# AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials,
# docs.aws.amazon.com/eks/latest/userguide/pod-id-how-it-works.html). With NetworkPolicies
# enforced a pod with a PodIdentityAssociation must be allowed to reach it, or the SDK gets no
# credentials (IMDS is closed by hop limit 1).
POD_IDENTITY_AGENT_CIDR = "169.254.170.23/32"
POD_IDENTITY_PORTS = (("TCP", 80),)
# Pods with a Pod Identity association in managed namespaces (kube-system has no NetworkPolicy):
# Milvus (service account `milvus`: every Milvus component of the chart, not its etcd, whose pods
# are named etcd) and LangFuse web/worker (service account `langfuse`, not the bitnami subcharts'
# pods), selected by their charts' selector labels (milvus-helm 5.0.19 _helpers.tpl
# "milvus.matchLabels", langfuse-k8s 1.5.41 _helpers.tpl "langfuse.selectorLabels":
# app.kubernetes.io/name = the chart name, app.kubernetes.io/instance = the release); the model
# servers that stream weights from S3 (components/models.py labels them).
MILVUS_PODS = (("app.kubernetes.io/name", "milvus"), ("app.kubernetes.io/instance", MILVUS_RELEASE))
LANGFUSE_PODS = (("app.kubernetes.io/name", "langfuse"), ("app.kubernetes.io/instance", LANGFUSE_RELEASE))
# kube-prometheus-stack 88.5.3 templates/prometheus-operator/deployment.yaml selector labels.
PROMETHEUS_OPERATOR_PODS = (("app", f"{KPS_RELEASE}-operator"), ("release", KPS_RELEASE))
S3_CACHE_PODS = ((names.MODEL_CACHE_LABEL, "s3"),)
# opencost 2.5.17 _helpers.tpl "opencost.selectorLabels" (fullnameOverride = the release name).
OPENCOST_PODS = (("app.kubernetes.io/name", names.OPENCOST_RELEASE), ("app.kubernetes.io/instance", names.OPENCOST_RELEASE))
# Node-level scrape targets are host-network (node IPs in the VPC): kubelet/cAdvisor, node-exporter.
NODE_SCRAPE = (("TCP", 10250), ("TCP", 9100))
WEBHOOK = (("TCP", 10250),)   # prometheus-operator admission webhook, called by the API server ENIs

PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# Pseudo-namespaces in FLOWS: every managed namespace, every tenant, IP targets.
ALL, TENANTS, SELF = "*", "TENANTS", "SELF"
VPC, INTERNET, POD_IDENTITY_AGENT = "ipblock:vpc", "ipblock:internet", "ipblock:pod-identity-agent"
# The Kubernetes API as pods reach it: `kubernetes.default` (its ClusterIP) and the control plane's
# network interfaces, which EKS puts in the cluster's subnets: the dedicated control-plane subnets
# (components/network.py), not the node subnets, so the peer is their CIDRs and not the VPC (the
# VPC would let every API client reach any pod or load balancer on 443). The ClusterIP is not
# enough alone: the VPC CNI's policy agent judges egress before the ClusterIP is translated and
# admits a ClusterIP only for a peer whose podSelector matches the Service's selector, which the
# selector-less `kubernetes` Service never has (aws/amazon-network-policy-controller
# pkg/resolvers/endpoints.go), and it also sees the translated endpoint, an ENI address
# (aws/aws-network-policy-agent#281): both need an ipBlock.
KUBE_API = "ipblock:kubernetes-api"
# The API server as a caller (admission webhooks): from its network interfaces, the control-plane subnets.
CONTROL_PLANE = "ipblock:control-plane"

# Features: a flow with `when` exists only for namespaces where the layer that needs it really runs
# the pods (TenancyArgs.features: feature -> those namespaces), so no policy selects pods or admits
# ports that nothing creates.
MODEL_SERVERS = "model-servers"        # namespaces serving a model (components/models.py)
S3_MODEL_CACHE = "s3-model-cache"      # namespaces with a model streaming from S3 (Pod Identity)
ENDPOINT_PICKERS = "endpoint-pickers"  # namespaces with endpoint pickers (gateway.inferenceRouting)
AGENTGATEWAY = "agentgateway"          # the namespace of the agentgateway proxies (gateway.inferenceRouting)
VALKEY = "valkey"                      # in-cluster Valkey (data.redis.mode inCluster)
MILVUS_MONITOR = "milvus-monitor"      # the Milvus chart's ServiceMonitor (data.serviceMonitors)
VALKEY_MONITOR = "valkey-monitor"      # the Valkey chart's exporter ServiceMonitor (in-cluster Valkey)
MANAGED_POSTGRES = "managed-postgres"  # namespaces whose pods use an RDS PostgreSQL (kagent, LangFuse)
MANAGED_REDIS = "managed-redis"        # namespaces whose pods use the ElastiCache Redis (data.redis.mode)


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
    # A feature (above): the flow holds only where its source or destination namespace runs it.
    when: str | None = None


# The whole network design, as data. Policies are generated from it; reachability checks them.
FLOWS: tuple[Flow, ...] = (
    Flow(ALL, names.NS_SYSTEM, DNS, "DNS", dst_pods=(("k8s-app", "kube-dns"),)),
    Flow(ALL, SELF, None, "pods of one namespace talk to each other (controllers, replicas, tenants' own apps)"),
    # the gateway
    Flow(VPC, names.NS_GATEWAY, GATEWAY_LISTENER_PORTS, "the NLB (in the VPC) forwards to the gateway proxies"),
    Flow(names.NS_GATEWAY, names.NS_INFERENCE, MODEL_PORTS, "gateway -> model servers", when=MODEL_SERVERS),
    Flow(names.NS_GATEWAY, names.NS_AGENTS, AGENT_PORTS, "gateway -> kagent / agents (the seed's request flow)"),
    Flow(names.NS_GATEWAY, TENANTS, None, "gateway -> tenants' backends (routes in gateway-access namespaces)"),
    Flow(names.NS_GATEWAY, names.NS_OBSERVABILITY, TELEMETRY_PORTS[:2], "gateway traces (OTLP)"),
    Flow(names.NS_GATEWAY, INTERNET, HTTPS, "remote JWKS of the JWT issuer"),
    # agents
    Flow(names.NS_AGENTS, names.NS_INFERENCE, MODEL_PORTS, "agents -> model servers", when=MODEL_SERVERS),
    Flow(names.NS_AGENTS, names.NS_GATEWAY, GATEWAY_LISTENER_PORTS, "agents -> gateway (ModelConfig URL)"),
    Flow(names.NS_AGENTS, names.NS_DATA, MILVUS, "agents -> Milvus"),
    Flow(names.NS_AGENTS, names.NS_DATA, REDIS, "agents -> Redis (in-cluster Valkey)", when=VALKEY),
    Flow(names.NS_AGENTS, names.NS_OBSERVABILITY, TELEMETRY_PORTS, "agents -> OTel collector, LangFuse"),
    Flow(names.NS_AGENTS, VPC, POSTGRES, "kagent -> its RDS PostgreSQL", when=MANAGED_POSTGRES),
    Flow(names.NS_AGENTS, VPC, REDIS, "agents -> ElastiCache", when=MANAGED_REDIS),
    Flow(names.NS_AGENTS, INTERNET, HTTPS, "agents -> remote MCP tool servers (e.g. ticketing), HTTPS"),
    # (agents -> the Milvus MCP server, in ai-agents itself: covered by SELF)
    # tenants: from themselves (SELF) and the gateway; to themselves, the gateway and data
    Flow(TENANTS, names.NS_GATEWAY, GATEWAY_LISTENER_PORTS, "tenants reach models through the gateway"),
    Flow(TENANTS, names.NS_DATA, MILVUS, "tenants -> Milvus"),
    Flow(TENANTS, names.NS_DATA, REDIS, "tenants -> Redis (in-cluster Valkey)", when=VALKEY),
    # model servers: model downloads over HTTPS outside private ranges
    Flow(names.NS_INFERENCE, INTERNET, HTTPS, "model downloads (Hugging Face, S3)", when=MODEL_SERVERS),
    # data services: S3 and managed databases
    Flow(names.NS_DATA, INTERNET, HTTPS, "Milvus -> S3"),
    # observability: scrapes, LangFuse's S3/RDS/Redis, the API server
    Flow(names.NS_OBSERVABILITY, names.NS_INFERENCE, METRICS_PORTS[names.NS_INFERENCE], "scrape model servers",
         when=MODEL_SERVERS),
    Flow(names.NS_OBSERVABILITY, names.NS_DATA, MILVUS_METRICS, "scrape Milvus", when=MILVUS_MONITOR),
    Flow(names.NS_OBSERVABILITY, names.NS_DATA, VALKEY_METRICS, "scrape the Valkey exporter", when=VALKEY_MONITOR),
    Flow(names.NS_OBSERVABILITY, names.NS_SYSTEM, METRICS_PORTS[names.NS_SYSTEM], "scrape"),
    Flow(names.NS_OBSERVABILITY, names.NS_GATEWAY, AGENTGATEWAY_METRICS,
         "scrape the agentgateway proxies (LLM token usage per tenant)", dst_pods=AGENTGATEWAY_PODS, when=AGENTGATEWAY),
    Flow(names.NS_OBSERVABILITY, names.NS_SYSTEM, COREDNS_METRICS, "scrape CoreDNS (kube-prometheus-stack coreDns)",
         dst_pods=KUBE_DNS_PODS),
    Flow(names.NS_OBSERVABILITY, TENANTS, METRICS_PORTS["TENANTS"], "scrape tenants' model servers",
         when=MODEL_SERVERS),
    Flow(names.NS_OBSERVABILITY, VPC, NODE_SCRAPE, "scrape kubelets and node-exporter (host network)"),
    Flow(names.NS_OBSERVABILITY, INTERNET, HTTPS, "LangFuse -> S3, Alertmanager -> receivers"),
    Flow(names.NS_OBSERVABILITY, VPC, POSTGRES, "LangFuse -> its RDS PostgreSQL", when=MANAGED_POSTGRES),
    Flow(names.NS_OBSERVABILITY, VPC, REDIS, "LangFuse -> ElastiCache", when=MANAGED_REDIS),
    Flow(names.NS_OBSERVABILITY, names.NS_DATA, REDIS, "LangFuse -> the platform's Redis (Valkey, dev)", when=VALKEY),
    Flow(names.NS_SYSTEM, names.NS_OBSERVABILITY, PROMETHEUS, "KEDA queries Prometheus"),
    # The one way into ai-data from outside agents/tenants/observability, on one port: KEDA's operator
    # (kube-system) reads the agents' task-queue length for their redis triggers. (ElastiCache in prod
    # is outside the cluster: its security group admits the cluster SG.)
    Flow(names.NS_SYSTEM, names.NS_DATA, REDIS, "KEDA -> Valkey (agents' redis scaler trigger)", when=VALKEY),
    Flow(CONTROL_PLANE, names.NS_OBSERVABILITY, WEBHOOK, "API server -> prometheus-operator webhook",
         dst_pods=PROMETHEUS_OPERATOR_PODS),
    # gateway.inferenceRouting: agentgateway — the proxy asks each model's endpoint picker (EPP,
    # beside the model servers) where to send a request; the EPP watches its InferencePool and pods.
    # Only where inference routing runs endpoint pickers (nothing else creates those pods).
    Flow(names.NS_GATEWAY, names.NS_INFERENCE, EPP_PORTS, "agentgateway -> endpoint pickers (ext-proc)",
         dst_pods=EPP_PODS, when=ENDPOINT_PICKERS),
    Flow(names.NS_GATEWAY, TENANTS, EPP_PORTS, "agentgateway -> tenants' endpoint pickers", dst_pods=EPP_PODS,
         when=ENDPOINT_PICKERS),
    Flow(names.NS_INFERENCE, KUBE_API, HTTPS, "endpoint pickers -> Kubernetes API", src_pods=EPP_PODS,
         when=ENDPOINT_PICKERS),
    Flow(TENANTS, KUBE_API, HTTPS, "tenants' endpoint pickers -> Kubernetes API", src_pods=EPP_PODS,
         when=ENDPOINT_PICKERS),
    # EKS Pod Identity: exactly the pods that have a PodIdentityAssociation, to the node's agent.
    Flow(names.NS_DATA, POD_IDENTITY_AGENT, POD_IDENTITY_PORTS, "Milvus -> Pod Identity agent (S3 credentials)",
         src_pods=MILVUS_PODS),
    Flow(names.NS_OBSERVABILITY, POD_IDENTITY_AGENT, POD_IDENTITY_PORTS,
         "LangFuse -> Pod Identity agent (S3 credentials)", src_pods=LANGFUSE_PODS),
    Flow(names.NS_INFERENCE, POD_IDENTITY_AGENT, POD_IDENTITY_PORTS,
         "S3-cached model servers -> Pod Identity agent", src_pods=S3_CACHE_PODS, when=S3_MODEL_CACHE),
    Flow(TENANTS, POD_IDENTITY_AGENT, POD_IDENTITY_PORTS, "tenants' S3-cached model servers -> Pod Identity agent",
         src_pods=S3_CACHE_PODS, when=S3_MODEL_CACHE),
    # controllers -> Kubernetes API (KUBE_API: its ClusterIP and the control-plane subnets)
    Flow(names.NS_GATEWAY, KUBE_API, HTTPS, "kgateway -> Kubernetes API"),
    Flow(names.NS_AGENTS, KUBE_API, HTTPS, "kagent -> Kubernetes API"),
    Flow(names.NS_OBSERVABILITY, KUBE_API, HTTPS, "Prometheus, Grafana, kube-state-metrics -> Kubernetes API"),
    # OpenCost (its own namespace; docs/cost.md): exactly Prometheus (its cost queries), the API
    # server (nodes, pods, PVs it prices), DNS (ALL above), the Pod Identity agent (credentials of
    # ec2:DescribeSpotPriceHistory) and HTTPS outside the private ranges: AWS's public price list
    # (pricing.us-east-1.amazonaws.com, opencost 1.120.1 pkg/cloud/aws pricelistapi.go, a plain GET)
    # and the EC2 API (ec2.<region>.amazonaws.com, spotpricehistory.go). Prometheus scrapes it.
    Flow(names.NS_COST, names.NS_OBSERVABILITY, PROMETHEUS, "OpenCost queries Prometheus"),
    Flow(names.NS_COST, KUBE_API, HTTPS, "OpenCost -> Kubernetes API (nodes, pods, volumes it prices)"),
    Flow(names.NS_COST, INTERNET, HTTPS, "OpenCost -> AWS price list and EC2 spot price history (HTTPS)"),
    Flow(names.NS_COST, POD_IDENTITY_AGENT, POD_IDENTITY_PORTS, "OpenCost -> Pod Identity agent (EC2 credentials)",
         src_pods=OPENCOST_PODS),
    Flow(names.NS_OBSERVABILITY, names.NS_COST, OPENCOST, "Prometheus scrapes OpenCost"),
)


def _ports(ports: tuple[tuple[str, int], ...] | None) -> list[dict[str, Any]] | None:
    return [{"protocol": proto, "port": port} for proto, port in ports] if ports else None


def _ns_peer(namespace: str, pods: tuple[tuple[str, str], ...] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: namespace}}}
    if pods:
        peer["podSelector"] = {"matchLabels": dict(pods)}
    return peer


def _ip_peers(target: str, vpc_cidr: str, api_cidrs: Sequence[str]) -> list[dict[str, Any]]:
    if target == VPC:
        return [{"ipBlock": {"cidr": vpc_cidr}}]
    if target == CONTROL_PLANE:
        return [{"ipBlock": {"cidr": c}} for c in api_cidrs]
    if target == KUBE_API:
        return [*({"ipBlock": {"cidr": c}} for c in api_cidrs),
                {"ipBlock": {"cidr": f"{names.kubernetes_service_ip(vpc_cidr)}/32"}}]
    if target == POD_IDENTITY_AGENT:
        return [{"ipBlock": {"cidr": POD_IDENTITY_AGENT_CIDR}}]
    return [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]


def expand(flows: tuple[Flow, ...], managed: list[str], tenants: list[str],
           features: Mapping[str, Collection[str]] | None = None) -> list[tuple[str, str, Flow]]:
    """(src, dst, flow) with the pseudo-namespaces resolved; a flow with `when` only where its
    source or destination namespace runs the feature."""
    def each(x: str) -> list[str]:
        return managed if x == ALL else tenants if x == TENANTS else [x]

    features = features or {}
    out = []
    for f in flows:
        for src in each(f.src):
            for dst in ([src] if f.dst == SELF else each(f.dst)):
                if f.when is not None and not {src, dst} & set(features.get(f.when, ())):
                    continue
                out.append((src, dst, f))
    return out


def _pod_policy_name(pods: tuple[tuple[str, str], ...]) -> str:
    sel = dict(pods)
    return safe_name(sel.get("app.kubernetes.io/component") or sel.get("app.kubernetes.io/name")
                 or "-".join(v for _, v in pods))


def network_policy_specs(managed: list[str], tenants: list[str], vpc_cidr: str, *, api_cidrs: Sequence[str],
                         flows: tuple[Flow, ...] = FLOWS,
                         features: Mapping[str, Collection[str]] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """namespace -> policy name -> spec: `default-deny` plus `allow-ingress` / `allow-egress`
    (and `allow-egress-<pods>` / `allow-ingress-<pods>` for a flow scoped to some pods of its
    source / destination). `api_cidrs`: the control-plane subnets (KUBE_API, CONTROL_PLANE)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    ingress: dict[str, list[dict[str, Any]]] = {ns: [] for ns in managed}
    egress: dict[str, list[dict[str, Any]]] = {ns: [] for ns in managed}
    pod_egress: dict[str, dict[tuple[tuple[str, str], ...], list[dict[str, Any]]]] = {ns: {} for ns in managed}
    pod_ingress: dict[str, dict[tuple[tuple[str, str], ...], list[dict[str, Any]]]] = {ns: {} for ns in managed}
    for src, dst, f in expand(flows, managed, tenants, features):
        if dst in ingress:   # the destination admits the source
            peers = _ip_peers(src, vpc_cidr, api_cidrs) if src.startswith("ipblock:") else [_ns_peer(src)]
            rule: dict[str, Any] = {"from": peers}
            if f.ports:
                rule["ports"] = _ports(f.ports)
            rules = pod_ingress[dst].setdefault(f.dst_pods, []) if f.dst_pods else ingress[dst]
            if rule not in rules:
                rules.append(rule)
        if src in egress:    # the source may send to the destination
            peers = _ip_peers(dst, vpc_cidr, api_cidrs) if dst.startswith("ipblock:") else [_ns_peer(dst, f.dst_pods)]
            rule = {"to": peers}
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
            pname = f"allow-egress-{_pod_policy_name(pods)}"
            assert pname not in out[ns], f"{ns}: two pod selectors make policy {pname}"
            out[ns][pname] = {"podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Egress"], "egress": rules}
        for pods, rules in pod_ingress[ns].items():
            pname = f"allow-ingress-{_pod_policy_name(pods)}"
            assert pname not in out[ns], f"{ns}: two pod selectors make policy {pname}"
            out[ns][pname] = {"podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Ingress"], "ingress": rules}
    return out
