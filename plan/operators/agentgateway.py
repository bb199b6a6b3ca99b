"""agentgateway: a Gateway of class `agentgateway` -> ServiceAccount, ConfigMap, Deployment, Service
and the session-key Secret, with AgentgatewayParameters applied.

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

from components import names
from plan.objects import K8sObject
from plan.operators.common import GATEWAY_GROUP, Obj, _controller_env, _data_object, _find, _meta, _put, pins, sprig_merge
from plan.operators.gateway_proxies import AGENTGATEWAY, _helm_port, _infra_meta, _listener_ports, safe_label_value
from plan.operators.kgateway import _image_ref, apply_overlays


def agentgateway_settings(objects: list[K8sObject], namespace: str) -> tuple[dict[str, str], str]:
    found = _controller_env(objects, "AGW_PROXY_IMAGE_REPOSITORY")
    if found:
        return {**pins()[AGENTGATEWAY]["defaults"], **found[0]}, found[1] or namespace
    return dict(pins()[AGENTGATEWAY]["defaults"]), namespace


def agentgateway_proxy(gw_obj: K8sObject, objects: list[K8sObject]) -> list[Obj]:
    """An agentgateway Gateway's proxy: controller/pkg/deployer/agentgateway_parameters.go GetValues
    (defaults, AgentgatewayParameters ApplyToHelmValues, the managed session key) rendered as
    controller/pkg/helm/agentgateway/templates/*.yaml would, then gateway_parameters.go
    PostProcessObjects (overlays, the `<gateway>-session-key` Secret). Not modelled: the DaemonSet
    workload kind, GatewayClass-level parameters, Istio integration, xDS TLS, model catalogs and the
    checksum annotations."""
    gw = gw_obj.manifest
    ns, name = gw_obj.namespace or "default", gw_obj.name
    settings, controller_ns = agentgateway_settings(objects, ns)
    ref = ((gw.get("spec") or {}).get("infrastructure") or {}).get("parametersRef")
    params: Obj = {}
    if ref:
        if ref.get("group") != "agentgateway.dev" or ref.get("kind") != "AgentgatewayParameters":
            return []
        found = _find(objects, "AgentgatewayParameters", ns, ref.get("name", ""))
        if found is None:
            return []
        params = found.manifest.get("spec") or {}
    ports = [_helm_port(p) for p in _listener_ports(gw) if p not in (names.AGENTGATEWAY_METRICS_PORT, 15021, 15000)]
    if not ports:
        return []
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    for key in ("limits", "requests"):  # DeepMergeResourceRequirements
        src = (params.get("resources") or {}).get(key)
        if src is not None:
            resources[key] = {**resources.get(key, {}), **src} if src else {}
    image = {"registry": settings["AGW_PROXY_IMAGE_REGISTRY"], "repository": settings["AGW_PROXY_IMAGE_REPOSITORY"],
             "tag": settings["AGW_PROXY_IMAGE_TAG"], **{k: v for k, v in (params.get("image") or {}).items() if v is not None}}
    user_env = list(params.get("env") or [])
    log_level = (params.get("logging") or {}).get("level") or "info"
    shutdown = params.get("shutdown") or {}
    session_key = None if any(e.get("name") == "SESSION_KEY" for e in user_env) else safe_label_value(
        f"{safe_label_value(name)}-session-key")
    version = pins()[AGENTGATEWAY]["version"]
    class_name = str((gw.get("spec") or {}).get("gatewayClassName"))
    gname = safe_label_value(name)
    selector = {"app.kubernetes.io/name": gname, "app.kubernetes.io/instance": gname, f"{GATEWAY_GROUP}/gateway-name": gname}
    gw_labels, gw_annotations = _infra_meta(gw, "labels"), _infra_meta(gw, "annotations")
    all_labels = sprig_merge({"app.kubernetes.io/managed-by": "agentgateway", f"{GATEWAY_GROUP}/gateway-class-name": class_name},
                             selector, gw_labels)
    all_labels["app.kubernetes.io/version"] = version
    user_names = {e.get("name") for e in user_env}
    xds = f"http://{settings['AGW_XDS_SERVICE_NAME']}.{controller_ns}.svc.cluster.local:{settings['AGW_AGENTGATEWAY_XDS_SERVICE_PORT']}"
    env: list[Obj] = []
    defaults = [
        ("TERMINATION_GRACE_PERIOD_SECONDS", {"value": str(shutdown.get("max") or 60)}),
        ("CONNECTION_MIN_TERMINATION_DEADLINE", {"value": f"{shutdown.get('min') or 10}s"}),
        ("NODE_NAME", {"valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
        ("POD_NAMESPACE", {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        ("POD_NAME", {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        ("RUST_BACKTRACE", {"value": "1"}),
        ("RUST_LOG", {"value": log_level}),
    ]
    env += [{"name": n, **v} for n, v in defaults if n not in user_names]
    if session_key:
        env.append({"name": "SESSION_KEY", "valueFrom": {"secretKeyRef": {"name": session_key, "key": "key"}}})
    env.append({"name": "XDS_ADDRESS", "value": xds})
    later = [("NAMESPACE", {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
             ("GATEWAY", {"value": gname}),
             ("CPU_LIMIT", {"valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}}),
             ("INSTANCE_IP", {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
             ("SERVICE_ACCOUNT", {"valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}})]
    env += [{"name": n, **v} for n, v in later if n not in user_names]
    env += user_env
    container: Obj = {"name": "agentgateway", "image": _image_ref(image)}
    _put(container, "imagePullPolicy", image.get("pullPolicy"))
    container.update({
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 10101},
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 10},
        "startupProbe": {"failureThreshold": 60, "httpGet": {"path": "/healthz/ready", "port": 15021},
                         "periodSeconds": 1, "successThreshold": 1, "timeoutSeconds": 2},
        "ports": [{"containerPort": names.AGENTGATEWAY_METRICS_PORT, "name": "metrics", "protocol": "TCP"}],
    })
    _put(container, "resources", resources)
    container["args"] = ["-f", "/config/config.yaml"]
    container["env"] = env
    container["volumeMounts"] = [{"name": "config-volume", "mountPath": "/config"}, {"name": "tmp", "mountPath": "/tmp"},
                                 {"name": "xds-token", "mountPath": "/var/run/secrets/xds-tokens", "readOnly": True}]
    pod = {"serviceAccountName": gname,
           "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
           "containers": [container],
           "volumes": [{"name": "config-volume", "configMap": {"name": gname}},
                       {"name": "xds-token", "projected": {"sources": [{"serviceAccountToken": {
                           "audience": "agentgateway", "expirationSeconds": 43200, "path": "xds-token"}}]}},
                       {"name": "tmp", "emptyDir": {}}],
           "terminationGracePeriodSeconds": int(shutdown.get("max") or 60)}
    scrape = {"prometheus.io/path": "/metrics", "prometheus.io/port": str(names.AGENTGATEWAY_METRICS_PORT),
              "prometheus.io/scrape": "true"}
    pod_meta = {"annotations": sprig_merge(gw_annotations, scrape),
                "labels": sprig_merge({f"{GATEWAY_GROUP}/gateway-class-name": class_name}, selector, gw_labels)}
    svc_spec: Obj = {"type": "LoadBalancer"}
    svc_spec["ports"] = [{"name": p["name"], "protocol": p["protocol"], "targetPort": p["port"], "port": p["port"]}
                         for p in ports]
    svc_spec["selector"] = selector
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(gname, ns, all_labels, gw_annotations),
         "automountServiceAccountToken": False},
        {**_data_object("ConfigMap", gname, ns, ["config.yaml"], all_labels)},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(gname, ns, all_labels, gw_annotations),
         "spec": {"selector": {"matchLabels": selector}, "template": {"metadata": pod_meta, "spec": pod}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(gname, ns, all_labels, gw_annotations), "spec": svc_spec},
    ]
    objs = apply_overlays(objs, params, "deployment", "service", "serviceAccount")
    if session_key:
        objs.append({**_data_object("Secret", session_key, ns, ["key"], {
            f"{GATEWAY_GROUP}/gateway-name": gname, f"{GATEWAY_GROUP}/gateway-class-name": class_name})})
    return objs
