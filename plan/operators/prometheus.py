"""prometheus-operator: a `monitoring.coreos.com/v1` Prometheus -> StatefulSet per shard, the
`prometheus-operated` Service, its generated Secrets and rule-file ConfigMap.

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import copy

from plan.objects import K8sObject
from plan.operators.common import Obj, _compact, _data_object, _meta, _put, merge_patch_containers, pins, semver, semver_string
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
    exec_action,
    prometheus_operator_flags,
)


def prometheus(cr: K8sObject, objects: list[K8sObject]) -> list[Obj]:
    """pkg/prometheus/server/statefulset.go makeStatefulSet/makeStatefulSetSpec/buildServerArgs,
    pkg/prometheus/common.go (volumes, config reloader, governing Service), promcfg.go
    (BuildCommonPrometheusArgs, BuildProbes, BuildPodMetadata), server/operator.go (selector labels,
    the Secrets/ConfigMaps it syncs), v0.93.0. Thanos sidecar: container, ports and its HTTP client
    Secret; topology sharding (spec.shardingStrategy) and PrometheusAgent are not modelled."""
    p = pins()[PO]
    flags = prometheus_operator_flags(objects, cr.namespace)
    spec = copy.deepcopy(cr.manifest.get("spec") or {})
    name, ns = cr.name, cr.namespace or "default"
    prefixed = f"prometheus-{name}"
    port_name = spec.get("portName") or "web"
    version = spec.get("version") or p["defaultPrometheusVersion"]
    ver = semver(version)
    route = spec.get("routePrefix") or "/"
    local = flags["localhost"]
    listen_local = bool(spec.get("listenLocal"))
    image = spec.get("image") or _image_path(spec.get("baseImage") or flags["prometheus-default-base-image"],
                                            "v" + semver_string(version), spec.get("tag") or "", spec.get("sha") or "")
    rule_cms = [f"{prefixed}-rulefiles-{i}" for i in range(3)]  # operator/rules.go AppendConfigMapNames(.., 3)
    vol, claim, db = _storage(f"{prefixed}-db", spec.get("storage"))
    sub_path = "" if not spec.get("storage") or spec["storage"].get("disableMountSubPath") else "prometheus-db"

    # BuildCommonVolumes + appendServerVolumes + BuildWebconfig (>= 2.24.0)
    volumes: list[Obj] = [
        {"name": "config", "secret": {"secretName": prefixed}},
        {"name": "tls-assets", "projected": {"sources": [{"secret": {"name": f"{prefixed}-tls-assets-0"}}]}},
        {"name": "config-out", "emptyDir": {"medium": "Memory"}},
    ]
    mounts: list[Obj] = [{"name": "config-out", "readOnly": True, "mountPath": "/etc/prometheus/config_out"},
                         {"name": "tls-assets", "readOnly": True, "mountPath": "/etc/prometheus/certs"},
                         _compact({"name": db, "mountPath": "/prometheus", "subPath": sub_path})]
    mounts += spec.get("volumeMounts") or []
    sc_vols, sc_mounts = _secret_cm_volumes(spec, "/etc/prometheus/secrets", "/etc/prometheus/configmaps")
    volumes += sc_vols
    mounts += sc_mounts
    query_log = spec.get("queryLogFile") or ""
    if query_log and "/" not in query_log and not spec.get("scrapeFailureLogFile"):
        volumes.append({"name": "log-file", "emptyDir": {}})
    volumes += [{"name": n, "configMap": {"name": n, "optional": True}} for n in rule_cms]
    mounts += [{"name": n, "mountPath": f"/etc/prometheus/rules/{n}", "readOnly": True} for n in rule_cms]
    if query_log and "/" not in query_log and not spec.get("scrapeFailureLogFile"):
        mounts.append({"name": "log-file", "mountPath": "/var/log/prometheus"})
    web_file = "/etc/prometheus/web_config/web-config.yaml"
    web_mount = {"name": "web-config", "subPath": "web-config.yaml", "readOnly": True, "mountPath": web_file}
    volumes.append({"name": "web-config", "secret": {"secretName": f"{prefixed}-web-config"}})
    mounts.append(web_mount)

    reloader_mounts = [{"name": "config", "mountPath": "/etc/prometheus/config"},
                       {"name": "config-out", "mountPath": "/etc/prometheus/config_out"}]
    if spec.get("web") is not None:
        reloader_mounts.append(web_mount)
    reloader_mounts += [{"name": n, "mountPath": f"/etc/prometheus/rules/{n}"} for n in rule_cms]
    watched = [f"/etc/prometheus/rules/{n}" for n in rule_cms]
    scheme = "https" if (spec.get("web") or {}).get("tlsConfig") else "http"
    reloader = dict(config_file="/etc/prometheus/config/prometheus.yaml.gz",
                    envsubst_file="/etc/prometheus/config_out/prometheus.env.yaml", mounts=reloader_mounts,
                    watched=watched, log_level=spec.get("logLevel") or "", log_format=spec.get("logFormat") or "",
                    pull_policy=spec.get("imagePullPolicy") or "")

    thanos, thanos_volumes = _thanos_sidecar(spec, prefixed, db, sub_path, local, flags, scheme, route, p)
    volumes += thanos_volumes

    startup, readiness, liveness = _prometheus_probes(spec, port_name, route, listen_local)
    selector_base = {"app.kubernetes.io/managed-by": "prometheus-operator", "app.kubernetes.io/name": "prometheus",
                     "app.kubernetes.io/instance": name, "operator.prometheus.io/name": name, "prometheus": name}
    shards = max(int(spec.get("shards") or 1), 1)
    replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    out: list[Obj] = []
    for shard in range(shards):
        selector = {**selector_base, "operator.prometheus.io/shard": str(shard)}
        pod_labels = {"app.kubernetes.io/version": semver_string(version),
                      **((spec.get("podMetadata") or {}).get("labels") or {}), **selector}
        pod_annotations = {"kubectl.kubernetes.io/default-container": "prometheus",
                           **((spec.get("podMetadata") or {}).get("annotations") or {})}
        container: Obj = {"name": "prometheus", "image": image}
        _put(container, "imagePullPolicy", spec.get("imagePullPolicy"))
        if not listen_local:
            container["ports"] = [{"name": port_name, "containerPort": 9090, "protocol": "TCP"}]
        container["args"] = _prometheus_args(spec, ver, route, listen_local, web_file)
        container["volumeMounts"] = mounts
        container.update({"startupProbe": startup, "livenessProbe": liveness, "readinessProbe": readiness})
        container["resources"] = spec.get("resources") or {}
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"
        container["securityContext"] = copy.deepcopy(_RESTRICTED_CONTAINER)
        containers = [container,
                      config_reloader("config-reloader", flags, init=False, shard=shard, listen_local=listen_local,
                                      reload_url=f"{scheme}://{local}:9090{clean_path(route + '/-/reload')}",
                                      web_config_file=web_file if spec.get("web") is not None else "", **reloader)]
        if thanos:
            containers.append(thanos)
        init = [config_reloader("init-config-reloader", flags, init=True, shard=shard, **reloader)]
        pod: Obj = {"shareProcessNamespace": False}
        pod["containers"] = merge_patch_containers(containers, spec.get("containers") or [])
        pod["initContainers"] = merge_patch_containers(init, spec.get("initContainers") or [])
        _put(pod, "securityContext", spec.get("securityContext"))
        _put(pod, "serviceAccountName", spec.get("serviceAccountName"))
        pod["automountServiceAccountToken"] = spec.get("automountServiceAccountToken", True) is not False
        pod["terminationGracePeriodSeconds"] = spec.get("terminationGracePeriodSeconds", 600)
        pod["volumes"] = volumes + ([vol] if vol else []) + list(spec.get("volumes") or [])
        _put(pod, "topologySpreadConstraints", _topology_spread(selector, spec.get("topologySpreadConstraints")))
        _pod_common(spec, pod)
        sts_name = prefixed if shard == 0 else f"{prefixed}-shard-{shard}"
        out.append(_statefulset(sts_name, ns, cr.manifest, selector, pod_labels, pod_annotations, pod, spec, claim,
                                {"operator.prometheus.io/mode": "server"}, spec.get("serviceName") or "prometheus-operated",
                                replicas))
    out += _prometheus_support_objects(spec, prefixed, name, ns, port_name)
    return out


def _image_path(base: str, version: str, tag: str, sha: str) -> str:
    """pkg/operator/image.go BuildImagePath (spec.image handled by the caller)."""
    last = base.rsplit("/", 1)[-1]
    if ":" in last or "@" in base:
        return base
    if sha:
        return f"{base}@sha256:{sha}"
    return f"{base}:{tag or version}"


def _prometheus_probes(spec: Obj, port_name: str, route: str, listen_local: bool) -> tuple[Obj, Obj, Obj]:
    """promcfg.go BuildProbes / buildProbeHandler."""
    def handler(path: str) -> Obj:
        full = clean_path(f"{route}/{path}")
        if listen_local:
            return {"exec": exec_action(f"http://localhost:9090{full}")}
        get: Obj = {"path": full, "port": port_name}
        if (spec.get("web") or {}).get("tlsConfig"):
            get["scheme"] = "HTTPS"
        return {"httpGet": get}
    max_startup = int(spec.get("maximumStartupDurationSeconds") or 0)
    period, failures = 15, 60
    if max_startup >= 60:
        failures = -(-max_startup // 60)
        period = -(-max_startup // failures)
    return ({**handler("-/ready"), "timeoutSeconds": 3, "periodSeconds": period, "failureThreshold": failures},
            {**handler("-/ready"), "timeoutSeconds": 3, "periodSeconds": 5, "failureThreshold": 3},
            {**handler("-/healthy"), "timeoutSeconds": 3, "periodSeconds": 5, "failureThreshold": 6})


def _prometheus_args(spec: Obj, ver: tuple[int, int, int], route: str, listen_local: bool, web_file: str) -> list[str]:
    """promcfg.go BuildCommonPrometheusArgs + server/statefulset.go buildServerArgs + web config,
    compaction and additionalArgs, rendered by pkg/operator/argument.go BuildArgs."""
    args: list[tuple[str, str]] = [("config.file", "/etc/prometheus/config_out/prometheus.env.yaml")]
    if ver[0] == 2:
        args += [("web.console.templates", "/etc/prometheus/consoles"),
                 ("web.console.libraries", "/etc/prometheus/console_libraries")]
    if (spec.get("reloadStrategy") or "HTTP") == "HTTP":
        args.append(("web.enable-lifecycle", ""))
    web = spec.get("web") or {}
    if web.get("pageTitle") is not None:
        args.append(("web.page-title", web["pageTitle"]))
    if web.get("maxConnections") is not None:
        args.append(("web.max-connections", str(web["maxConnections"])))
    if spec.get("enableRemoteWriteReceiver"):
        args.append(("web.enable-remote-write-receiver", ""))
    otlp_on = spec.get("enableOTLPReceiver")
    if otlp_on is True or (otlp_on is None and spec.get("otlp") is not None):
        args.append(("web.enable-otlp-receiver", "") if ver[0] >= 3 else ("enable-feature", "otlp-write-receiver"))
    if spec.get("enableFeatures"):
        args.append(("enable-feature", ",".join(str(f) for f in spec["enableFeatures"])))
    if spec.get("externalUrl"):
        args.append(("web.external-url", spec["externalUrl"]))
    args.append(("web.route-prefix", route))
    if spec.get("logLevel") and spec["logLevel"] != "info":
        args.append(("log.level", spec["logLevel"]))
    if spec.get("logFormat") and spec["logFormat"] != "logfmt":
        args.append(("log.format", spec["logFormat"]))
    if listen_local:
        args.append(("web.listen-address", "127.0.0.1:9090"))
    # buildServerArgs: retention moved to the config file from Prometheus v3.11.0.
    if ver < (3, 11, 0):
        retention = spec.get("retention") or ("" if spec.get("retentionSize") else "24h")
        if retention:
            args.append(("storage.tsdb.retention.time", retention))
        if spec.get("retentionSize"):
            args.append(("storage.tsdb.retention.size", spec["retentionSize"]))
    args.append(("storage.tsdb.path", "/prometheus"))
    if spec.get("enableAdminAPI"):
        args.append(("web.enable-admin-api", ""))
    alert = (spec.get("rules") or {}).get("alert") or {}
    for key, flag in (("forOutageTolerance", "for-outage-tolerance"), ("forGracePeriod", "for-grace-period"),
                      ("resendDelay", "resend-delay")):
        if alert.get(key):
            args.append((f"rules.alert.{flag}", alert[key]))
    query = spec.get("query") or {}
    if query.get("lookbackDelta"):
        args.append(("query.lookback-delta", query["lookbackDelta"]))
    if query.get("maxSamples"):
        args.append(("query.max-samples", str(query["maxSamples"])))
    if query.get("maxConcurrency"):
        args.append(("query.max-concurrency", str(query["maxConcurrency"])))
    if query.get("timeout"):
        args.append(("query.timeout", query["timeout"]))
    if spec.get("walCompression") is not None:
        args.append(("storage.tsdb.wal-compression" if spec["walCompression"] else "no-storage.tsdb.wal-compression", ""))
    args.append(("web.config.file", web_file))
    thanos = spec.get("thanos") or {}
    uploads = bool(thanos.get("objectStorageConfig") or thanos.get("objectStorageConfigFile"))
    if spec.get("disableCompaction") or (uploads and not (ver >= (3, 9, 0) and semver(
            thanos.get("version") or pins()[PO]["defaultThanosVersion"]) >= (0, 41, 0))):
        block = thanos.get("blockDuration") or "2h"
        args += [("storage.tsdb.max-block-duration", block), ("storage.tsdb.min-block-duration", block)]
    elif uploads:
        args.append(("storage.tsdb.delay-compact-file.path", "/prometheus/thanos.shipper.json"))
    if (spec.get("tsdb") or {}).get("outOfOrderTimeWindow") and (uploads or spec.get("disableCompaction")) \
            and ver >= (2, 55, 0):
        args.append(("no-storage.tsdb.allow-overlapping-compaction", ""))
    args += [(a.get("name", ""), str(a.get("value") or "")) for a in spec.get("additionalArgs") or []]
    return [f"--{n}={v}" if v != "" else f"--{n}" for n, v in args]


def _thanos_sidecar(spec: Obj, prefixed: str, db: str, sub_path: str, local: str, flags: dict[str, str],
                    scheme: str, route: str, p: Obj) -> tuple[Obj | None, list[Obj]]:
    """server/statefulset.go createThanosContainer (the part that shapes the pod)."""
    thanos = spec.get("thanos")
    if thanos is None:
        return None, []
    version = thanos.get("version") or p["defaultThanosVersion"]
    image = thanos.get("image") or _image_path(thanos.get("baseImage") or flags["thanos-default-base-image"], version,
                                               thanos.get("tag") or "", thanos.get("sha") or "")
    c: Obj = {"name": "thanos-sidecar", "image": image}
    _put(c, "imagePullPolicy", spec.get("imagePullPolicy"))
    c.update({"terminationMessagePolicy": "FallbackToLogsOnError",
              "securityContext": copy.deepcopy(_RESTRICTED_CONTAINER),
              "ports": [{"name": "http", "containerPort": 10902}, {"name": "grpc", "containerPort": 10901}]})
    _put(c, "resources", thanos.get("resources"))
    mounts = [{"name": m["name"], "mountPath": m["mountPath"]} for m in thanos.get("volumeMounts") or []]
    args = [f"--prometheus.url={scheme}://{local}:9090{clean_path(route)}", "--grpc-address=:10901",
            "--http-address=:10902"]
    if thanos.get("objectStorageConfig") is not None:
        c["env"] = [{"name": "OBJSTORE_CONFIG", "valueFrom": {"secretKeyRef": thanos["objectStorageConfig"]}}]
    if thanos.get("objectStorageConfig") is not None or thanos.get("objectStorageConfigFile"):
        mounts.append(_compact({"name": db, "mountPath": "/prometheus", "subPath": sub_path}))
    volumes = []
    if semver(version) >= (0, 24, 0):
        mounts.append({"name": "thanos-prometheus-http-client-file", "mountPath": "/etc/thanos/config"})
        volumes.append({"name": "thanos-prometheus-http-client-file",
                        "secret": {"secretName": f"{prefixed}-thanos-prometheus-http-client-file"}})
    _put(c, "volumeMounts", mounts)
    c["args"] = ["sidecar", *args]
    return c, volumes


def _topology_spread(selector: dict[str, str], tscs: list[Obj] | None) -> list[Obj]:
    """common.go MakeK8sTopologySpreadConstraint: additionalLabelSelectors add the selector labels."""
    out = []
    for t in tscs or []:
        t = copy.deepcopy(t)
        extra = t.pop("additionalLabelSelectors", None)
        if extra is not None:
            ls = t.setdefault("labelSelector", {}).setdefault("matchLabels", {})
            for k, v in selector.items():
                if not (extra == "ResourceName" and k == "operator.prometheus.io/shard"):
                    ls[k] = v
        out.append(t)
    return out


def _prometheus_support_objects(spec: Obj, prefixed: str, name: str, ns: str, port_name: str) -> list[Obj]:
    """server/operator.go sync: the governing Service (common.go BuildStatefulSetService), the config
    Secret (MakeConfigurationSecret), the TLS-assets shard (NewTLSAssetSecret + sharded_secret.go),
    the web-config Secret, rule ConfigMap 0 (operator/rules.go makeConfigMapsFromRules always makes
    one) and the Thanos HTTP-client Secret."""
    out = [
        _data_object("Secret", prefixed, ns, ["prometheus.yaml.gz"], _PO_MANAGED),
        _data_object("Secret", f"{prefixed}-tls-assets-0", ns, [], _PO_MANAGED),
        _data_object("Secret", f"{prefixed}-web-config", ns, ["web-config.yaml"], _PO_MANAGED),
        _data_object("ConfigMap", f"{prefixed}-rulefiles-0", ns, [], {**_PO_MANAGED, "prometheus-name": name}),
    ]
    if spec.get("thanos") is not None:
        out.append(_data_object("Secret", f"{prefixed}-thanos-prometheus-http-client-file", ns,
                                ["prometheus.http-client-file.yaml"], _PO_MANAGED))
    if not spec.get("serviceName"):
        ports = [{"name": port_name, "port": 9090, "targetPort": port_name}]
        if spec.get("thanos") is not None:
            ports.append({"name": "grpc", "port": 10901, "targetPort": "grpc"})
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": _meta("prometheus-operated", ns, {**_PO_MANAGED, "operated-prometheus": "true"}),
                    "spec": {"clusterIP": "None", "ports": ports, "selector": {"app.kubernetes.io/name": "prometheus"}}})
    return out
