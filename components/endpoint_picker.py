"""The GAIE endpoint picker (EPP) of one InferencePool (`gateway.inferenceRouting: agentgateway`), as
the upstream `inferencepool` chart (v1.5.0) declares it, with the restricted security context the model
namespaces enforce (the chart has no values for it)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.k8s import container_security_context, labels, platform_data, pod_security_context, resources
from components.models import ModelEndpoint

INFERENCE_GROUP = "inference.networking.k8s.io"
EPP_PORT = 9002                                  # the GAIE endpoint picker's gRPC (ext-proc) port
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
EPP_CONFIG_FILE = "default-plugins.yaml"
# The upstream chart's default scheduling profile (GAIE v1.5.0 epplib `_config.yaml`, vLLM over HTTP).
EPP_PLUGINS = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig",
    "plugins": [{"type": "queue-scorer"}, {"type": "kv-cache-utilization-scorer"}, {"type": "prefix-cache-scorer"},
                {"type": "metrics-data-source",
                 "parameters": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True}},
                {"type": "core-metrics-extractor"}],
    "schedulingProfiles": [{"name": "default", "plugins": [
        {"pluginRef": "queue-scorer", "weight": 2}, {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
        {"pluginRef": "prefix-cache-scorer", "weight": 3}]}],
}
EPP_IMAGE: dict[str, str] = platform_data("images.yaml")["epp"]


def epp_name(model: str) -> str:
    return f"{model}-epp"


def endpoint_picker(name: str, endpoint: ModelEndpoint, parent: pulumi.Resource,
                    deps: list[pulumi.Resource]) -> k8s.apps.v1.Deployment:
    """The GAIE endpoint picker of one pool, as the upstream `inferencepool` chart (v1.5.0)
    declares it, but with the restricted security context the namespace enforces (the chart
    has no values for it)."""
    model, ns, epp = endpoint.name, endpoint.namespace, epp_name(endpoint.name)
    lbl = labels(epp, "endpoint-picker", version=EPP_IMAGE["tag"])
    select = {"app.kubernetes.io/name": epp}
    child = pulumi.ResourceOptions(parent=parent, depends_on=deps)
    md = k8s.meta.v1.ObjectMetaArgs
    k8s.core.v1.ServiceAccount(f"{name}-epp-sa-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                               automount_service_account_token=True, opts=child)
    role = k8s.rbac.v1.Role(f"{name}-epp-role-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                            rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]},
                                   {"apiGroups": [INFERENCE_GROUP], "resources": ["inferencepools"],
                                    "verbs": ["get", "watch", "list"]},
                                   {"apiGroups": ["inference.networking.x-k8s.io"],
                                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                                    "verbs": ["get", "watch", "list"]}], opts=child)
    k8s.rbac.v1.RoleBinding(f"{name}-epp-binding-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": epp},
                            subjects=[{"kind": "ServiceAccount", "name": epp, "namespace": ns}],
                            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]))
    config = k8s.core.v1.ConfigMap(f"{name}-epp-config-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
                                   data={EPP_CONFIG_FILE: yaml.safe_dump(EPP_PLUGINS, sort_keys=False)}, opts=child)
    # The Service also selects on the component label, which the gateway's egress policy names
    # (tenancy_flows EPP_PODS): the VPC CNI admits a ClusterIP only for an egress peer whose podSelector
    # matches the Service's selector as a label set (plan/reachability/__init__.py, VPC CNI), so with the
    # name alone the proxy's connection to the picker would be dropped. (Not the Deployment's selector:
    # it is immutable.)
    k8s.core.v1.Service(f"{name}-epp-svc-{model}", metadata=md(name=epp, namespace=ns, labels=lbl), spec={
        "selector": {**select, "app.kubernetes.io/component": lbl["app.kubernetes.io/component"]},
        "ports": [{"name": "grpc-ext-proc", "port": EPP_PORT, "targetPort": EPP_PORT, "appProtocol": "http2"},
                  {"name": "http-metrics", "port": EPP_METRICS_PORT, "targetPort": EPP_METRICS_PORT}]}, opts=child)
    grpc_probe = {"grpc": {"port": EPP_HEALTH_PORT, "service": "inference-extension"}}
    return k8s.apps.v1.Deployment(
        f"{name}-epp-{model}", metadata=md(name=epp, namespace=ns, labels=lbl),
        spec={"replicas": 1,  # one active picker (prefix-cache state); Recreate as upstream
              "strategy": {"type": "Recreate"},
              "selector": {"matchLabels": select},
              "template": {"metadata": {"labels": lbl}, "spec": {
                  "serviceAccountName": epp,
                  "terminationGracePeriodSeconds": 130,
                  "securityContext": pod_security_context(65532),
                  "containers": [{
                      "name": "epp",
                      "image": f"{EPP_IMAGE['registry']}/{EPP_IMAGE['repository']}:{EPP_IMAGE['tag']}",
                      "args": ["--pool-name", model, "--pool-namespace", ns, "--pool-group", INFERENCE_GROUP,
                               "--zap-encoder", "json", "--config-file", f"/config/{EPP_CONFIG_FILE}",
                               "--tracing=false"],
                      "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                              {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                      "ports": [{"name": "grpc", "containerPort": EPP_PORT},
                                {"name": "grpc-health", "containerPort": EPP_HEALTH_PORT},
                                {"name": "metrics", "containerPort": EPP_METRICS_PORT}],
                      "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5, "periodSeconds": 10},
                      "readinessProbe": {**grpc_probe, "periodSeconds": 2},
                      "resources": resources("500m", "1Gi", cpu_limit="2", memory_limit="4Gi"),
                      "securityContext": container_security_context(),
                      "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}]}],
                  "volumes": [{"name": "config", "configMap": {"name": epp}}]}}},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[config, *deps]))
