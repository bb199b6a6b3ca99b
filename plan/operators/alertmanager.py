"""prometheus-operator: a `monitoring.coreos.com/v1` Alertmanager -> StatefulSet, the
`alertmanager-operated` Service and its generated Secrets.

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import copy

from plan.objects import K8sObject
from plan.operators.common import Obj, _compact, _data_object, _meta, _put, merge_patch_containers, pins, semver, semver_string
from plan.operators.prometheus import _image_path
from plan.operators.prometheus_operator import (
    _PO_MANAGED,
    _RESTRICTED_CONTAINER,
    PO,
    _pod_common,
    _secret_cm_volumes,
    _statefulset,
    _storage,
    clean_path,
    config_reloader,
    prometheus_operator_flags,
)


def alertmanager(cr: K8sObject, objects: list[K8sObject]) -> list[Obj]:
    """pkg/alertmanager/statefulset.go makeStatefulSet/makeStatefulSetSpec/makeStatefulSetService,
    operator.go (selector labels, the Secrets it syncs), clustertlsconfig/config.go, v0.93.0."""
    p = pins()[PO]
    flags = prometheus_operator_flags(objects, cr.namespace)
    spec = copy.deepcopy(cr.manifest.get("spec") or {})
    name, ns = cr.name, cr.namespace or "default"
    prefixed = f"alertmanager-{name}"
    port_name = spec.get("portName") or "web"
    replicas = max(int(spec["replicas"]), 0) if spec.get("replicas") is not None else 1
    retention = spec.get("retention") or "120h"
    resources = copy.deepcopy(spec.get("resources") or {})
    resources.setdefault("requests", {}).setdefault("memory", "200Mi")
    version = spec.get("version") or p["defaultAlertmanagerVersion"]
    ver = semver(version)
    image = spec.get("image") or _image_path(spec.get("baseImage") or flags["alertmanager-default-base-image"], version,
                                            spec.get("tag") or "", spec.get("sha") or "")
    route = spec.get("routePrefix") or "/"
    listen_local = bool(spec.get("listenLocal"))
    local = flags["localhost"]
    service = spec.get("serviceName") or "alertmanager-operated"
    vol, claim, db = _storage(f"{prefixed}-db", spec.get("storage"))
    sub_path = "" if not spec.get("storage") or spec["storage"].get("disableMountSubPath") else "alertmanager-db"

    args: list[tuple[str, str]] = [("config.file", "/etc/alertmanager/config_out/alertmanager.env.yaml"),
                                   ("storage.path", "/alertmanager"), ("data.retention", retention)]
    if replicas == 1 and not spec.get("forceEnableClusterMode"):
        args.append(("cluster.listen-address=", ""))
    else:
        args.append(("cluster.listen-address", "[$(POD_IP)]:9094"))
    args.append(("web.listen-address", "127.0.0.1:9093" if listen_local else ":9093"))
    if spec.get("externalUrl"):
        args.append(("web.external-url", spec["externalUrl"]))
    if ver >= (0, 27, 0) and spec.get("enableFeatures"):
        args.append(("enable-feature", ",".join(spec["enableFeatures"])))
    args.append(("web.route-prefix", route))
    if spec.get("logLevel") and spec["logLevel"] != "info":
        args.append(("log.level", spec["logLevel"]))
    if ver >= (0, 16, 0) and spec.get("logFormat") and spec["logFormat"] != "logfmt":
        args.append(("log.format", spec["logFormat"]))
    for key, flag in (("clusterAdvertiseAddress", "advertise-address"), ("clusterGossipInterval", "gossip-interval"),
                      ("clusterPushpullInterval", "pushpull-interval"), ("clusterPeerTimeout", "peer-timeout")):
        if spec.get(key):
            args.append((f"cluster.{flag}", spec[key]))
    if ver >= (0, 30, 0):
        args.append(("cluster.peer-name", "$(POD_NAME)"))
    if ver >= (0, 26, 0):
        args.append(("cluster.label", spec.get("clusterLabel") or f"{ns}/{name}"))
    domain = f"{service}.{ns}.svc.{flags['cluster-domain']}." if flags.get("cluster-domain") else service
    args += [("cluster.peer", f"{prefixed}-{i}.{domain}:9094") for i in range(replicas)]
    args += [("cluster.peer", peer) for peer in spec.get("additionalPeers") or []]
    args.append(("cluster.reconnect-timeout", "5m"))

    volumes: list[Obj] = [
        {"name": "config-volume", "secret": {"secretName": f"{prefixed}-generated"}},
        {"name": "tls-assets", "projected": {"sources": [{"secret": {"name": f"{prefixed}-tls-assets-0"}}]}},
        {"name": "config-out", "emptyDir": {"medium": "Memory"}},
    ]
    am_mounts: list[Obj] = [{"name": "config-volume", "mountPath": "/etc/alertmanager/config"},
                            {"name": "config-out", "readOnly": True, "mountPath": "/etc/alertmanager/config_out"},
                            {"name": "tls-assets", "readOnly": True, "mountPath": "/etc/alertmanager/certs"},
                            _compact({"name": db, "mountPath": "/alertmanager", "subPath": sub_path})]
    watched = ["/etc/alertmanager/config"]
    reloader_mounts: list[Obj] = [{"name": "config-volume", "mountPath": "/etc/alertmanager/config", "readOnly": True},
                                  {"name": "config-out", "mountPath": "/etc/alertmanager/config_out"}]
    templates = _am_templates(spec)
    if templates:
        volumes.append(templates)
        m = {"name": "notification-templates", "readOnly": True, "mountPath": "/etc/alertmanager/templates"}
        am_mounts.append(m)
        reloader_mounts.append(m)
        watched.append("/etc/alertmanager/templates")
    sc_vols, sc_mounts = _secret_cm_volumes(spec, "/etc/alertmanager/secrets", "/etc/alertmanager/configmaps")
    volumes += sc_vols
    am_mounts += sc_mounts
    reloader_mounts += sc_mounts
    watched += [m["mountPath"] for m in sc_mounts]
    am_mounts += spec.get("volumeMounts") or []
    web_file = ""
    if ver >= (0, 22, 0):
        web_file = "/etc/alertmanager/web_config/web-config.yaml"
        web_mount = {"name": "web-config", "subPath": "web-config.yaml", "readOnly": True, "mountPath": web_file}
        args.append(("web.config.file", web_file))
        volumes.append({"name": "web-config", "secret": {"secretName": f"{prefixed}-web-config"}})
        am_mounts.append(web_mount)
        reloader_mounts.append(web_mount)
    if ver >= (0, 24, 0):
        tls_file = "/etc/alertmanager/cluster_tls_config/cluster-tls-config.yaml"
        if spec.get("clusterTLS") is not None:
            args.append(("cluster.tls-config", tls_file))
        volumes.append({"name": "cluster-tls-config", "secret": {"secretName": f"{prefixed}-cluster-tls-config"}})
        am_mounts.append({"name": "cluster-tls-config", "subPath": "cluster-tls-config.yaml", "readOnly": True,
                          "mountPath": tls_file})
    args += [(a.get("name", ""), str(a.get("value") or "")) for a in spec.get("additionalArgs") or []]

    https = (spec.get("web") or {}).get("tlsConfig") is not None and ver >= (0, 22, 0)
    container: Obj = {"name": "alertmanager", "image": image,
                      "args": [f"--{n}={v}" if v != "" else f"--{n}" for n, v in args]}
    _put(container, "imagePullPolicy", spec.get("imagePullPolicy"))
    ports = [{"name": "mesh-tcp", "containerPort": 9094, "protocol": "TCP"},
             {"name": "mesh-udp", "containerPort": 9094, "protocol": "UDP"}]
    if not listen_local:
        ports.insert(0, {"name": port_name, "containerPort": 9093, "protocol": "TCP"})
    container["ports"] = ports
    container["volumeMounts"] = am_mounts
    if not listen_local:
        def get(path: str) -> Obj:
            g: Obj = {"path": clean_path(f"{route}/{path}"), "port": port_name}
            if https:
                g["scheme"] = "HTTPS"
            return {"httpGet": g}
        container["livenessProbe"] = {**get("-/healthy"), "timeoutSeconds": 3, "failureThreshold": 10}
        container["readinessProbe"] = {**get("-/ready"), "initialDelaySeconds": 3, "timeoutSeconds": 3,
                                       "periodSeconds": 5, "failureThreshold": 10}
    container["resources"] = resources
    container["securityContext"] = copy.deepcopy(_RESTRICTED_CONTAINER)
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    if ver >= (0, 30, 0):
        env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    container["env"] = env
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    common = dict(config_file="/etc/alertmanager/config/alertmanager.yaml.gz",
                  envsubst_file="/etc/alertmanager/config_out/alertmanager.env.yaml", mounts=reloader_mounts,
                  watched=watched, log_level=spec.get("logLevel") or "", log_format=spec.get("logFormat") or "",
                  shard=-1, pull_policy=spec.get("imagePullPolicy") or "")
    reloader = config_reloader("config-reloader", flags, init=False, listen_local=listen_local,
                               reload_url=f"{'https' if https else 'http'}://{local}:9093{clean_path(route + '/-/reload')}",
                               web_config_file=web_file, **common)
    init = config_reloader("init-config-reloader", flags, init=True, **common)

    selector = {"app.kubernetes.io/name": "alertmanager", "app.kubernetes.io/managed-by": "prometheus-operator",
                "app.kubernetes.io/instance": name, "alertmanager": name}
    pod_labels = {"app.kubernetes.io/version": semver_string(version),
                  **((spec.get("podMetadata") or {}).get("labels") or {}), **selector}
    pod_annotations = {**((spec.get("podMetadata") or {}).get("annotations") or {}),
                       "kubectl.kubernetes.io/default-container": "alertmanager"}
    pod: Obj = {}
    if spec.get("automountServiceAccountToken") is not None:
        pod["automountServiceAccountToken"] = spec["automountServiceAccountToken"]
    pod["terminationGracePeriodSeconds"] = spec.get("terminationGracePeriodSeconds", 120)
    pod["initContainers"] = merge_patch_containers([init], spec.get("initContainers") or [])
    pod["containers"] = merge_patch_containers([container, reloader], spec.get("containers") or [])
    pod["volumes"] = volumes + ([vol] if vol else []) + list(spec.get("volumes") or [])
    _put(pod, "serviceAccountName", spec.get("serviceAccountName"))
    _put(pod, "securityContext", spec.get("securityContext"))
    _put(pod, "topologySpreadConstraints", spec.get("topologySpreadConstraints"))
    _pod_common(spec, pod)
    out = [_statefulset(prefixed, ns, cr.manifest, selector, pod_labels, pod_annotations, pod, spec, claim, {},
                        service, replicas)]
    out += [_data_object("Secret", f"{prefixed}-generated", ns, ["alertmanager.yaml.gz"], _PO_MANAGED),
            _data_object("Secret", f"{prefixed}-tls-assets-0", ns, [], _PO_MANAGED),
            _data_object("Secret", f"{prefixed}-web-config", ns, ["web-config.yaml"], _PO_MANAGED),
            _data_object("Secret", f"{prefixed}-cluster-tls-config", ns, ["cluster-tls-config.yaml"], _PO_MANAGED)]
    if not spec.get("serviceName"):
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": _meta("alertmanager-operated", ns, {**_PO_MANAGED, "operated-alertmanager": "true"}),
                    "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "ports": [
                        {"name": port_name, "port": 9093, "targetPort": port_name, "protocol": "TCP"},
                        {"name": "tcp-mesh", "port": 9094, "targetPort": "mesh-tcp", "protocol": "TCP"},
                        {"name": "udp-mesh", "port": 9094, "targetPort": "mesh-udp", "protocol": "UDP"}],
                        "selector": {"app.kubernetes.io/name": "alertmanager"}}})
    return out


def _am_templates(spec: Obj) -> Obj | None:
    """statefulset.go: spec.alertmanagerConfiguration.templates as one projected volume (duplicate keys skipped)."""
    templates = (spec.get("alertmanagerConfiguration") or {}).get("templates") or []
    if not templates:
        return None
    sources, keys = [], set()
    for t in templates:
        for kind in ("configMap", "secret"):
            ref = t.get(kind)
            if ref and ref.get("key") not in keys:
                sources.append({kind: {"name": ref["name"], "items": [{"key": ref["key"], "path": ref["key"]}]}})
                keys.add(ref.get("key"))
    return {"name": "notification-templates", "projected": {"sources": sources}}
