"""kgateway v2.4.3: a Gateway of a kgateway class -> the Envoy proxy's ServiceAccount, ConfigMap,
Deployment, Service (and the PDB/HPA its GatewayParameters ask for).

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import copy
from typing import Any

from plan.objects import K8sObject
from plan.operators.common import (
    _PROBE_HANDLERS,
    GATEWAY_GROUP,
    Obj,
    _compact,
    _controller_env,
    _data_object,
    _find,
    _meta,
    _put,
    pins,
    sprig_merge,
    strategic_merge,
)
from plan.operators.gateway_proxies import KGATEWAY, _helm_port, _infra_meta, _listener_ports, safe_label_value


def _kgw_default_parameters(image: dict[str, str], omit_security: bool) -> Obj:
    """pkg/deployer/gateway_parameters.go defaultGatewayParameters (the in-memory GatewayParameters of
    a GatewayClass without parametersRef; kgateway's own classes have none by default)."""
    kube: Obj = {
        "service": {"type": "LoadBalancer"},
        "podTemplate": {
            "terminationGracePeriodSeconds": 60,
            "gracefulShutdown": {"enabled": True, "sleepTimeSeconds": 10},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8082}, "periodSeconds": 10},
            "startupProbe": {"httpGet": {"path": "/ready", "port": 8082}, "periodSeconds": 1, "timeoutSeconds": 2,
                             "failureThreshold": 60, "successThreshold": 1},
        },
        "envoyContainer": {
            "bootstrap": {"logLevel": "info", "dnsResolver": {"udpMaxQueries": 100}},
            "image": {"registry": image["registry"], "tag": image["tag"], "repository": "envoy-wrapper",
                      "pullPolicy": image["pullPolicy"]},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                "runAsUser": 10101, "capabilities": {"drop": ["ALL"]}},
        },
        "stats": {"enabled": True, "routePrefixRewrite": "/stats/prometheus?usedonly", "enableStatsRoute": True,
                  "statsRoutePrefixRewrite": "/stats"},
        "sdsContainer": {"image": {"registry": image["registry"], "tag": image["tag"], "repository": "sds",
                                   "pullPolicy": image["pullPolicy"]}, "bootstrap": {"logLevel": "info"}},
        "istio": {"istioProxyContainer": {
            "image": {"registry": "docker.io/istio", "repository": "proxyv2", "tag": "1.30.1", "pullPolicy": image["pullPolicy"]},
            "logLevel": "warning", "istioDiscoveryAddress": "istiod.istio-system.svc:15012",
            "istioMetaMeshId": "cluster.local", "istioMetaClusterId": "Kubernetes"}},
    }
    if omit_security:
        del kube["envoyContainer"]["securityContext"]
    return kube


# pkg/deployer/merge.go DeepMergeGatewayParameters: pointers override, maps merge, slices append
# (DeepMergeSlices), with these exceptions. Overlays are not merged (they apply to rendered objects).
_KGW_OVERRIDE = {"strategy", "matcher", "loadBalancerSourceRanges", "command", "selfManaged"}
_KGW_NOT_MERGED = {"deploymentOverlay", "serviceOverlay", "serviceAccountOverlay", "podDisruptionBudget",
                   "horizontalPodAutoscaler", "verticalPodAutoscaler"}
_KGW_MAPS = {"extraLabels", "extraAnnotations", "nodeSelector", "limits", "requests", "componentLogLevels"}
_PROBE_INTS = {"initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"}


def kgw_deep_merge(dst: Any, src: Any, key: str = "") -> Any:
    """One field of merge.go DeepMergeGatewayParameters."""
    if src is None:
        return dst
    if dst is None or key in _KGW_OVERRIDE:
        return copy.deepcopy(src)
    if isinstance(src, list):
        return copy.deepcopy(src) if not isinstance(dst, list) or not src else dst + copy.deepcopy(src)
    if not isinstance(src, dict) or not isinstance(dst, dict):
        return src
    if not src and key in _KGW_MAPS:  # DeepMergeMaps: an empty map replaces
        return {}
    out = copy.deepcopy(dst)
    if key.endswith("Probe") and any(h in src for h in _PROBE_HANDLERS):  # deepMergeProbeHandler resets dst's action
        for h in _PROBE_HANDLERS:
            out.pop(h, None)
    for k, v in src.items():
        if k in _KGW_NOT_MERGED:
            continue
        if key.endswith("Probe") and k in _PROBE_INTS and not v:  # MergeComparable: zero keeps dst
            continue
        out[k] = kgw_deep_merge(out.get(k), v, k)
    if key == "image":  # DeepMergeImage: a non-empty tag (digest) alone clears the inherited digest (tag)
        if src.get("digest") and "tag" not in src:
            out["tag"] = ""
        if src.get("tag") and "digest" not in src:
            out["digest"] = ""
    return out


def kgateway_settings(objects: list[K8sObject], namespace: str) -> tuple[dict[str, str], str]:
    found = _controller_env(objects, "KGW_DEFAULT_IMAGE_REGISTRY")
    if found:
        return {**pins()[KGATEWAY]["defaults"], **found[0]}, found[1] or namespace
    return dict(pins()[KGATEWAY]["defaults"]), namespace


def _image_ref(image: Obj) -> str:
    """The charts' `kgateway.gateway.image`."""
    ref = f"{image['registry']}/{image['repository']}" if image.get("registry") else image["repository"]
    if image.get("tag"):
        ref += f":{image['tag']}"
    if image.get("digest"):
        ref += f"@{image['digest']}"
    return ref


def kgateway_proxy(gw_obj: K8sObject, objects: list[K8sObject]) -> list[Obj]:
    """A kgateway Gateway's proxy: pkg/kgateway/deployer/gateway_parameters.go GetValues/getValues
    (GatewayParameters merged over the in-memory defaults, UpdateSecurityContexts for ports < 1024),
    rendered as pkg/kgateway/helm/envoy/templates/{serviceaccount,configmap,deployment,service}.yaml
    would, then PostProcessObjects (pkg/deployer/strategicpatch: deployment/service/serviceAccount
    overlays, PodDisruptionBudget and HorizontalPodAutoscaler). The istio/SDS sidecars (off unless the
    controller's Istio auto-mTLS is on), GatewayClass-level GatewayParameters, the VPA overlay and
    the envoy.yaml content are not modelled."""
    gw = gw_obj.manifest
    ns, name = gw_obj.namespace or "default", gw_obj.name
    settings, _ = kgateway_settings(objects, ns)
    ref = ((gw.get("spec") or {}).get("infrastructure") or {}).get("parametersRef")
    gwp: Obj | None = None
    if ref:
        if ref.get("group") != "gateway.kgateway.dev" or ref.get("kind") != "GatewayParameters":
            return []  # the deployer refuses the Gateway
        found = _find(objects, "GatewayParameters", ns, ref.get("name", ""))
        if found is None:
            return []  # GetGatewayParametersForGatewayError: nothing is deployed
        gwp = found.manifest.get("spec") or {}
        if gwp.get("selfManaged") is not None:
            return []
    src_kube = (gwp or {}).get("kube") or {}
    image = {"registry": settings["KGW_DEFAULT_IMAGE_REGISTRY"], "tag": settings["KGW_DEFAULT_IMAGE_TAG"],
             "pullPolicy": settings["KGW_DEFAULT_IMAGE_PULL_POLICY"]}
    kube = _kgw_default_parameters(image, bool(src_kube.get("omitDefaultSecurityContext")))
    if src_kube:  # DeepMergeGatewayParameters: a nil src.Spec.Kube leaves the defaults
        kube = kgw_deep_merge(kube, src_kube)
    ports = [_helm_port(p) for p in _listener_ports(gw)]
    for sp in (kube.get("service") or {}).get("ports") or []:
        if all(p["port"] != sp["port"] for p in ports):
            ports.append(_helm_port(int(sp["port"])))
    for p in ports:
        if kube["service"].get("type") in ("NodePort", "LoadBalancer"):
            match = next((sp for sp in kube["service"].get("ports") or [] if sp.get("port") == p["port"]), None)
            if match and match.get("nodePort"):
                p["nodePort"] = match["nodePort"]
    if not ports:
        return []  # ErrNoValidPorts
    if any(p["port"] < 1024 for p in ports) and not kube.get("omitDefaultSecurityContext"):
        # deployer/gateway_parameters.go allowPrivilegedPorts
        sc = kube.setdefault("podTemplate", {}).setdefault("securityContext", {})
        sysctls = sc.setdefault("sysctls", [])
        for s in sysctls:
            if s.get("name") == "net.ipv4.ip_unprivileged_port_start":
                s["value"] = "0"
                break
        else:
            sysctls.append({"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"})
    objs = _kgw_render(name, ns, str((gw.get("spec") or {}).get("gatewayClassName")), ports, kube, _infra_meta(gw, "labels"),
                       _infra_meta(gw, "annotations"), pins()[KGATEWAY]["version"])
    return apply_overlays(objs, src_kube, "deploymentOverlay", "serviceOverlay", "serviceAccountOverlay")


def _kgw_render(gw_name: str, ns: str, class_name: str, ports: list[Obj], kube: Obj, gw_labels: dict[str, str],
                gw_annotations: dict[str, str], app_version: str) -> list[Obj]:
    """pkg/kgateway/helm/envoy/templates/*.yaml and _helpers.tpl (chart `kgateway-proxy`, AppVersion
    set to the controller's version by pkg/kgateway/deployer/charts.go loadChart)."""
    name = safe_label_value(gw_name)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name, f"{GATEWAY_GROUP}/gateway-name": name}
    all_labels = sprig_merge({"kgateway": "kube-gateway", "app.kubernetes.io/component": "proxy",
                              "app.kubernetes.io/managed-by": "kgateway", f"{GATEWAY_GROUP}/gateway-class-name": class_name},
                             selector, gw_labels)
    all_labels["app.kubernetes.io/version"] = app_version
    pod_t, envoy, stats = kube.get("podTemplate") or {}, kube.get("envoyContainer") or {}, kube.get("stats") or {}
    svc, sa = kube.get("service") or {}, kube.get("serviceAccount") or {}
    stats_on = bool(stats.get("enabled"))
    prom = {"prometheus.io/path": "/metrics", "prometheus.io/port": "9091", "prometheus.io/scrape": "true"} if stats_on else {}
    pod_annotations = sprig_merge(gw_annotations, pod_t.get("extraAnnotations"), prom,
                                  {"gateway.kgateway.dev/gateway-full-name": gw_name})
    pod_labels = sprig_merge({f"{GATEWAY_GROUP}/gateway-class-name": class_name}, selector, {"kgateway": "kube-gateway"},
                             {"app.kubernetes.io/component": "proxy"}, gw_labels, pod_t.get("extraLabels"))
    bootstrap = envoy.get("bootstrap") or {}
    args = ["--disable-hot-restart", "--service-node", "$(POD_NAME).$(POD_NAMESPACE)"]
    if bootstrap.get("logLevel"):
        args += ["--log-level", bootstrap["logLevel"]]
    levels = ",".join(f"{k}:{v}" for k, v in sorted((bootstrap.get("componentLogLevels") or {}).items()))
    if levels:
        args += ["--component-log-level", levels]
    args += [str(a) for a in envoy.get("extraArgs") or []]
    user_env = envoy.get("env") or []
    otel_extra = "".join(f",{e['value']}" for e in user_env if e.get("name") == "OTEL_RESOURCE_ATTRIBUTES" and e.get("value"))
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
           {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
           {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "ENVOY_UID", "value": "0"},
           {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": (
               f"service.namespace=$(POD_NAMESPACE),service.instance.id=$(POD_UID),service.version={app_version},"
               f"k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.pod.uid=$(POD_UID),"
               f"k8s.node.name=$(NODE_NAME),k8s.deployment.name={name},k8s.container.name=kgateway-proxy{otel_extra}")}]
    env += [e for e in user_env if e.get("name") != "OTEL_RESOURCE_ATTRIBUTES"]
    container: Obj = {"name": "kgateway-proxy"}
    _put(container, "securityContext", envoy.get("securityContext"))
    container["args"] = args
    container["image"] = _image_ref(envoy.get("image") or {})
    _put(container, "imagePullPolicy", (envoy.get("image") or {}).get("pullPolicy"))
    container["volumeMounts"] = [{"mountPath": "/etc/envoy", "name": "envoy-config"},
                                 {"name": "xds-token", "mountPath": "/var/run/secrets/tokens", "readOnly": True},
                                 {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True},
                                 *(envoy.get("extraVolumeMounts") or [])]
    container["env"] = env
    container["ports"] = [{"name": p["name"], "protocol": p["protocol"], "containerPort": p["targetPort"]} for p in ports]
    if stats_on:
        container["ports"].append({"name": "http-monitoring", "containerPort": 9091})
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        _put(container, probe, pod_t.get(probe))
    shutdown = pod_t.get("gracefulShutdown") or {}
    if shutdown.get("enabled"):
        container["lifecycle"] = {"preStop": {"exec": {"command": [
            "/bin/sh", "-c", "wget --post-data \"\" -O /dev/null 127.0.0.1:19000/healthcheck/fail; "
            f"sleep {shutdown.get('sleepTimeSeconds') or 10}"]}}}
    _put(container, "resources", envoy.get("resources"))
    pod: Obj = {}
    _put(pod, "imagePullSecrets", pod_t.get("imagePullSecrets"))
    pod["serviceAccountName"] = name
    _put(pod, "securityContext", pod_t.get("securityContext"))
    pod["containers"] = [container]
    for key in ("nodeSelector", "affinity", "tolerations", "topologySpreadConstraints", "priorityClassName",
                "terminationGracePeriodSeconds"):
        _put(pod, key, pod_t.get(key))
    pod["volumes"] = [
        {"name": "xds-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "kgateway", "expirationSeconds": 43200, "path": "xds-token"}}]}},
        {"configMap": {"name": name}, "name": "envoy-config"},
        {"name": "podinfo", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        *(pod_t.get("extraVolumes") or [])]
    dep_spec: Obj = {}
    if (kube.get("deployment") or {}).get("replicas") is not None:
        dep_spec["replicas"] = kube["deployment"]["replicas"]
    dep_spec["selector"] = {"matchLabels": selector}
    _put(dep_spec, "strategy", (kube.get("deployment") or {}).get("strategy"))
    dep_spec["template"] = {"metadata": {"annotations": pod_annotations, "labels": pod_labels}, "spec": pod}
    svc_spec: Obj = {"type": svc.get("type")}
    for key in ("externalTrafficPolicy", "clusterIP", "loadBalancerClass", "loadBalancerIP", "loadBalancerSourceRanges"):
        _put(svc_spec, key, svc.get(key))
    svc_spec["ports"] = [_compact({"name": p["name"], "protocol": p["protocol"], "targetPort": p["port"], "port": p["port"],
                                   "nodePort": p.get("nodePort")}) for p in ports]
    svc_spec["selector"] = selector
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta(name, ns, sprig_merge(all_labels, sa.get("extraLabels")),
                           sprig_merge(gw_annotations, sa.get("extraAnnotations"))),
         "automountServiceAccountToken": False},
        {**_data_object("ConfigMap", name, ns, ["xds_service_account_token.json", "envoy.yaml"], all_labels)},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns, all_labels, gw_annotations),
         "spec": dep_spec},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(name, ns, sprig_merge(all_labels, svc.get("extraLabels")),
                           sprig_merge(gw_annotations, svc.get("extraAnnotations"))),
         "spec": svc_spec},
    ]


def apply_overlays(objs: list[Obj], params: Obj, deployment_key: str, service_key: str, sa_key: str) -> list[Obj]:
    """deployer/strategicpatch/strategicpatch.go ApplyOverlays (kgateway and agentgateway): metadata
    labels/annotations copied, `spec` strategic-merged into the Deployment, Service and
    ServiceAccount; a PodDisruptionBudget / HorizontalPodAutoscaler made for the Deployment when asked."""
    by_kind = {"Deployment": params.get(deployment_key), "Service": params.get(service_key),
               "ServiceAccount": params.get(sa_key)}
    out = []
    for o in objs:
        overlay = by_kind.get(o["kind"])
        out.append(_apply_overlay(o, overlay) if overlay else o)
    deployment = next((o for o in out if o["kind"] == "Deployment"), None)
    if deployment is not None and params.get("podDisruptionBudget") is not None:
        pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": _meta(deployment["metadata"]["name"], deployment["metadata"]["namespace"],
                                 deployment["metadata"].get("labels")),
               "spec": {"selector": copy.deepcopy(deployment["spec"]["selector"])}}
        out.append(_apply_overlay(pdb, params["podDisruptionBudget"]))
    if deployment is not None and params.get("horizontalPodAutoscaler") is not None:
        hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": _meta(deployment["metadata"]["name"], deployment["metadata"]["namespace"],
                                 deployment["metadata"].get("labels")),
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": deployment["metadata"]["name"]}}}
        out.append(_apply_overlay(hpa, params["horizontalPodAutoscaler"]))
    return out


def _apply_overlay(obj: Obj, overlay: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    meta = overlay.get("metadata") or {}
    for key in ("labels", "annotations"):
        if meta.get(key) is not None:
            obj["metadata"][key] = {**(obj["metadata"].get(key) or {}), **meta[key]}
    if overlay.get("spec"):
        obj["spec"] = strategic_merge(obj.get("spec") or {}, overlay["spec"])
    return obj
