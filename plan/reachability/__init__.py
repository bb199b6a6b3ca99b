"""Pod-level NetworkPolicy evaluation: may this pod open a connection to that pod (or address) on
this port? Kubernetes semantics (k8s.io/api networking/v1 and
kubernetes.io/docs/concepts/services-networking/network-policies), over every pod template of every
object of the plan (declared, rendered by Helm, created by operators).

The rules, as implemented in this package (sets, model, cluster, objects, matrix):

- A policy selects the pods of its own namespace that its `podSelector` matches (matchLabels and
  matchExpressions In / NotIn / Exists / DoesNotExist; `{}` selects every pod).
- A pod is isolated for a direction when some policy that selects it has that direction in its
  `policyTypes`. `policyTypes` defaults to ["Ingress"], plus "Egress" when the policy has at least
  one egress rule (SetDefaults_NetworkPolicySpec). A pod no policy isolates allows everything in
  that direction; an isolated one allows the union of the rules of the policies that select it.
- A connection (source, destination, port, protocol) is allowed iff the source's egress allows it
  AND the destination's ingress allows it. Addresses outside the cluster have no policy of their own.
- A rule applies when its ports match (none listed: every port and protocol; an entry without a
  port: every port of its protocol, TCP by default; `port`..`endPort` a range; a named port is
  resolved against the destination pod's container ports of that name and protocol — for egress
  too) and one of its peers matches (no peers: everything). A peer is an `ipBlock` (cidr minus
  `except`), a `namespaceSelector` (pods of the namespaces whose labels match; `{}` every
  namespace), a `podSelector` (pods of the policy's namespace), or both selectors (AND).
- Namespace labels are those of the Namespace objects plus `kubernetes.io/metadata.name` (set by the
  API server); kube-system, default, kube-public and kube-node-lease exist without objects.
- hostNetwork pods are not isolated by any policy (they share the node's network namespace) and
  have the node's IP. Whether a selector peer matches a hostNetwork pod is undefined upstream; the
  evaluator never relies on it for a needed connection (`must`) and assumes it for isolation
  questions (`may`).
- With the VPC CNI, pods and nodes have VPC addresses, so an ipBlock containing the pod range
  matches pods too (`ipblock_matches_pods`, on by default; upstream leaves ipBlock for
  cluster-external addresses, and some plugins never match pods with it).
- Services: connecting to a Service port means connecting to the pods its selector selects, on its
  targetPort (a number, or a name resolved per pod; pods without that named port are no endpoint).

Pod IPs are ranges (the VPC CIDR), so ipBlock matching has two readings: `must` (every address
the pod may have is covered: a needed connection works wherever the pod lands) and `may` (some
address is covered: an isolation question).

The VPC CNI network policy agent (aws/aws-network-policy-agent, with
aws/amazon-network-policy-controller-k8s) deviates in ways that matter here:
- It enforces only when the vpc-cni add-on runs with `enableNetworkPolicy: "true"`; otherwise every
  policy is accepted and ignored (`enforced()`).
- Its egress eBPF program sees the packet before kube-proxy's DNAT: a connection to a ClusterIP
  is matched against the Service's ClusterIP and service port, not the pod. The controller adds a
  Service's ClusterIP to an egress rule only for a non-ipBlock peer whose podSelector (absent: `{}`)
  matches the Service's selector as a label set, in a namespace the peer selects, with the rule's
  ports mapped to service ports through the targetPort (endpoints.go getMatchingServiceClusterIPs);
  headless Services and selector-less ones (the `kubernetes` Service) are never added, so their
  ClusterIP is reachable only through an ipBlock covering the service CIDR. `Cluster.vpc_cni_egress`
  evaluates that path; connections through a ClusterIP carry its verdict.
- It never applies policies to hostNetwork pods (as above), and traffic from a pod's own node is
  admitted (kubelet probes); neither is relied on for a needed connection.
- In its default (`standard`) mode a new pod is unrestricted until its policies are programmed.
"""

from __future__ import annotations

from domain.selectors import selector_matches
from plan.reachability.cluster import Cluster
from plan.reachability.matrix import matrix_lines, namespace_matrix
from plan.reachability.model import (
    BUILTIN_NAMESPACES,
    NS_NAME_LABEL,
    ContainerPort,
    Endpoint,
    External,
    Pod,
    Policy,
    as_int,
    container_ports,
)
from plan.reachability.objects import (
    NAMESPACE,
    NETWORK_POLICY,
    egress_allows_ip,
    namespaces_of,
    pods_of,
    policies_by_namespace,
    policies_of,
    probes,
)
from plan.reachability.sets import ANY, MAX_PORT, PRIVATE, PROTOCOLS, PUBLIC, PUBLIC_DESC, IPSet, PortSet

__all__ = [
    "ANY", "BUILTIN_NAMESPACES", "MAX_PORT", "NAMESPACE", "NETWORK_POLICY", "NS_NAME_LABEL", "PRIVATE", "PROTOCOLS",
    "PUBLIC", "PUBLIC_DESC", "Cluster", "ContainerPort", "Endpoint", "External", "IPSet", "Pod", "Policy", "PortSet",
    "as_int", "container_ports", "egress_allows_ip", "matrix_lines", "namespace_matrix", "namespaces_of", "pods_of",
    "policies_by_namespace", "policies_of", "probes", "selector_matches",
]
