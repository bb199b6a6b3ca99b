"""The objects operators create at run time from the platform's objects, so admission sees their pods.

`operator_objects(objects)` returns, for every custom resource an operator the platform installs acts
on, the Deployments/StatefulSets (full pod templates), Services, ServiceAccounts and the Secrets and
ConfigMaps their pods mount that the operator itself creates. Each comes back as a `K8sObject` with
the `source` of the object it comes from, `release=None` and `controller="<operator> <version>"`.

Each translation is a port of the operator's own code at the version the platform pins
(platform/operators.yaml: versions, upstream repository/tag/commit, the controller settings the
platform's chart values give it); the functions below cite the upstream file they follow.

* prometheus-operator (kube-prometheus-stack): `monitoring.coreos.com/v1` Prometheus -> StatefulSet
  per shard, the `prometheus-operated` Service, the config/TLS/web-config Secrets and the rule-file
  ConfigMap; Alertmanager -> StatefulSet, `alertmanager-operated`, its generated Secrets.
* kagent: `kagent.dev/v1alpha2` Agent -> config Secret, ServiceAccount, Deployment, Service.
* kgateway: `gateway.networking.k8s.io/v1` Gateway of a kgateway class -> the Envoy proxy's
  ServiceAccount, ConfigMap, Deployment, Service (and the PodDisruptionBudget/HPA its
  GatewayParameters ask for), from the controller's embedded Helm chart and GatewayParameters.
* agentgateway: Gateway of class `agentgateway` -> ServiceAccount, ConfigMap, Deployment, Service and
  the session-key Secret, with AgentgatewayParameters applied.

The controllers' settings (images, the config-reloader flags, kagent's image registry) are read from
the controller object its chart renders when it is among `objects` (the prometheus-operator
Deployment's args, the kagent controller ConfigMap, the kgateway/agentgateway controller env), else
from `defaults` in platform/operators.yaml (what those charts render with the platform's values).

Not modelled (documented per translation): the *content* of generated configuration (Secrets and
ConfigMaps carry their keys with empty values), owner references, hash annotations, status-driven
behaviour, and features the platform does not use (named where they are skipped).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from plan.objects import K8sObject

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "platform" / "operators.yaml"
GATEWAY_GROUP = "gateway.networking.k8s.io"

Obj = dict[str, Any]


@cache
def pins() -> dict[str, Any]:
    """platform/operators.yaml."""
    return yaml.safe_load(DATA.read_text())


def controller_label(operator: str) -> str:
    return f"{operator} {pins()[operator]['version']}"


# ---------------------------------------------------------------------------------------------
# Small helpers: Go's omitempty, semver, strategic merge patch, sprig's merge.
# ---------------------------------------------------------------------------------------------


def _put(d: Obj, key: str, value: Any) -> Obj:
    """Set `key` unless the value is Go-empty (omitempty: nil, "", empty slice or map)."""
    if value is not None and value != "" and value != [] and value != {}:
        d[key] = value
    return d


def _compact(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v is not None and v != "" and v != [] and v != {}}


def _meta(name: str, namespace: str, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> Obj:
    return _compact({"name": name, "namespace": namespace, "labels": dict(labels or {}) or None,
                     "annotations": dict(annotations or {}) or None})


def _data_object(kind: str, name: str, namespace: str, keys: Iterable[str], labels: dict[str, str] | None = None) -> Obj:
    """A Secret or ConfigMap the operator creates: its keys, not its generated content."""
    out: Obj = {"apiVersion": "v1", "kind": kind, "metadata": _meta(name, namespace, labels)}
    if kind == "Secret":
        out["type"] = "Opaque"
    out["data"] = {k: "" for k in keys}
    return out


def semver(version: str) -> tuple[int, int, int]:
    """blang/semver ParseTolerant, as a comparable (major, minor, patch)."""
    core = re.split(r"[-+]", version.strip().lstrip("v"), maxsplit=1)[0]
    parts = [int(p) for p in (core.split(".") + ["0", "0"])[:3]]
    return parts[0], parts[1], parts[2]


def semver_string(version: str) -> str:
    """blang/semver ParseTolerant(v).String(): no leading `v`, missing minor/patch padded."""
    v = version.strip().lstrip("v")
    m = re.match(r"^([0-9.]+)(.*)$", v)
    if not m:
        return v
    core = (m.group(1).split(".") + ["0", "0"])[:3]
    return ".".join(core) + m.group(2)


# k8s.io/apimachinery strategic merge patch: the patchMergeKey of the core/v1 and apps/v1 lists the
# operators patch (k8s.io/api core/v1 types.go `patchStrategy:"merge" patchMergeKey:...`).
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey", "hostAliases": "ip", "resourceClaims": "name",
}


def _merge_key(key: str, base: list[Any], patch: list[Any]) -> str | None:
    if key == "ports":  # ContainerPort by containerPort, ServicePort by port
        items = [i for i in base + patch if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return _MERGE_KEYS.get(key)


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge(base: Any, patch: Any) -> Any:
    """StrategicMergePatch(base, patch) for the Kubernetes types the operators patch: maps merge
    (null deletes), lists with a patchMergeKey merge by it (`$patch: delete` removes an item),
    other lists and scalars are replaced; `$patch: replace` replaces a map."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return _strip_directives(copy.deepcopy(patch))
    if patch.get("$patch") == "replace":
        return _strip_directives(copy.deepcopy(patch))
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = strategic_merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and (mk := _merge_key(key, out[key], value)):
            out[key] = _merge_list(out[key], value, mk)
        else:
            out[key] = _strip_directives(copy.deepcopy(value))
    return out


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    out = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict):
            out.append(item)
            continue
        idx = next((i for i, b in enumerate(out) if isinstance(b, dict) and b.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip_directives(copy.deepcopy(item)))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def merge_patch_containers(base: list[Obj], patches: list[Obj]) -> list[Obj]:
    """prometheus-operator pkg/k8s/merge.go MergePatchContainers (v0.93.0): each patch container
    strategic-merged into the base container of its name (then sanitizeProbeHandlers: a probe
    handler the patch sets replaces the base's), the others appended in order."""
    by_name = {c.get("name"): c for c in patches or []}
    out = []
    for c in base:
        p = by_name.pop(c.get("name"), None)
        if p is None:
            out.append(c)
            continue
        merged = strategic_merge(c, p)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            set_by_patch = [h for h in _PROBE_HANDLERS if h in (p.get(probe) or {})]
            if set_by_patch and isinstance(merged.get(probe), dict):
                for h in _PROBE_HANDLERS:
                    if h not in set_by_patch:
                        merged[probe].pop(h, None)
        out.append(merged)
    out += [c for c in patches or [] if c.get("name") in by_name]
    return out


def sprig_merge(*dicts: dict[str, Any] | None) -> dict[str, Any]:
    """Sprig's `merge $dst $src...`: keys already present win (leftmost first), maps merge deeply."""
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in (d or {}).items():
            if k not in out:
                out[k] = copy.deepcopy(v)
            elif isinstance(out[k], dict) and isinstance(v, dict):
                out[k] = sprig_merge(out[k], v)
    return out


def _find(objects: list[K8sObject], kind: str, namespace: str | None, name: str) -> K8sObject | None:
    return next((o for o in objects if o.kind == kind and o.name == name and (o.namespace or None) == namespace), None)


def _containers_of(obj: K8sObject) -> list[Obj]:
    spec = ((obj.manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or [])


def _controller_env(objects: list[K8sObject], marker: str) -> tuple[dict[str, str], str | None] | None:
    """The literal env of the (chart-rendered) controller Deployment whose container sets `marker`,
    and its namespace."""
    for o in objects:
        if o.kind != "Deployment":
            continue
        for c in _containers_of(o):
            env = {e.get("name"): e.get("value") for e in c.get("env") or [] if "value" in e}
            if marker in {e.get("name") for e in c.get("env") or []}:
                return {k: str(v) for k, v in env.items() if v is not None}, o.namespace
    return None


# ---------------------------------------------------------------------------------------------
# prometheus-operator v0.93.x (prometheus-operator/prometheus-operator, tag v0.93.0).
# ---------------------------------------------------------------------------------------------

PO = "prometheus-operator"
_PO_MANAGED = {"managed-by": "prometheus-operator", "app.kubernetes.io/managed-by": "prometheus-operator"}


def prometheus_operator_flags(objects: list[K8sObject], namespace: str | None) -> dict[str, str]:
    """The operator's flags: cmd/operator/main.go defaults, overridden by the args of the
    kube-prometheus-stack operator Deployment (templates/prometheus-operator/deployment.yaml) when it
    is among the objects (the one in `namespace` first), else by operators.yaml `defaults`."""
    p = pins()[PO]
    flags = dict(p["flagDefaults"])
    deployments = [o for o in objects if o.kind == "Deployment" and any(
        str(a).startswith("--prometheus-config-reloader=") for c in _containers_of(o) for a in c.get("args") or [])]
    deployments.sort(key=lambda o: o.namespace != namespace)
    if not deployments:
        flags.update(p["defaults"])
        return flags
    for c in _containers_of(deployments[0]):
        for arg in c.get("args") or []:
            m = re.fullmatch(r"--([a-z0-9.-]+)(?:=(.*))?", str(arg))
            if m:
                flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
    return flags


def _reloader_resources(flags: dict[str, str]) -> Obj:
    """pkg/operator/config.go ContainerConfig.ResourceRequirements: a "0" flag sets nothing."""
    req, lim = {}, {}
    for res, key in (("cpu", "cpu"), ("memory", "memory")):
        if flags.get(f"config-reloader-{key}-request", "0") != "0":
            req[res] = flags[f"config-reloader-{key}-request"]
        if flags.get(f"config-reloader-{key}-limit", "0") != "0":
            lim[res] = flags[f"config-reloader-{key}-limit"]
    return _compact({"limits": lim, "requests": req})


def exec_action(url: str) -> Obj:
    """pkg/operator/prober.go ExecAction."""
    return {"command": ["sh", "-c", f'if [ -x "$(command -v curl)" ]; then exec curl --fail {url}; '
                        f'elif [ -x "$(command -v wget)" ]; then exec wget -q -O /dev/null {url}; else exit 1; fi']}


def clean_path(path: str) -> str:
    """Go's path.Clean for the absolute URL paths the operator builds (duplicate slashes, trailing slash)."""
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


_RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                         "capabilities": {"drop": ["ALL"]}}


def config_reloader(name: str, flags: dict[str, str], *, init: bool, mounts: list[Obj], watched: list[str],
                    config_file: str, envsubst_file: str, shard: int, log_level: str = "", log_format: str = "",
                    listen_local: bool = False, reload_url: str = "", web_config_file: str = "",
                    pull_policy: str = "") -> Obj:
    """pkg/operator/config_reloader.go CreateConfigReloader (v0.93.0)."""
    args: list[str] = []
    ports: list[Obj] = []
    if init:
        args.append("--watch-interval=0")
    if listen_local:
        args.append(f"--listen-address={flags['localhost']}:8080")
    else:
        port = 8081 if init else 8080
        args.append(f"--listen-address=:{port}")
        ports.append({"name": "reloader-init" if init else "reloader-web", "containerPort": port, "protocol": "TCP"})
    if web_config_file:
        args.append(f"--web-config-file={web_config_file}")
    if reload_url:
        args.append(f"--reload-url={reload_url}")
    watched = list(watched)
    args.append(f"--config-file={config_file}")
    if config_file.rsplit("/", 1)[0] not in watched:  # "HACK: Watch the config file's parent directory"
        watched.append(config_file.rsplit("/", 1)[0])
    args.append(f"--config-envsubst-file={envsubst_file}")
    args += [f"--watched-dir={d}" for d in watched]
    if log_level and log_level != "info":
        args.append(f"--log-level={log_level}")
    if log_format and log_format != "logfmt":
        args.append(f"--log-format={log_format}")
    c: Obj = {"name": name, "image": flags["prometheus-config-reloader"]}
    _put(c, "imagePullPolicy", pull_policy)
    c.update({"terminationMessagePolicy": "FallbackToLogsOnError",
              "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                      {"name": "SHARD", "value": str(shard)}],
              "command": ["/bin/prometheus-config-reloader"], "args": args})
    _put(c, "ports", ports)
    _put(c, "volumeMounts", mounts)
    c["resources"] = _reloader_resources(flags)
    c["securityContext"] = copy.deepcopy(_RESTRICTED_CONTAINER)
    if not init and flags.get("enable-config-reloader-probes") == "true":
        handler = ({"exec": exec_action("http://localhost:8080/healthz")} if listen_local
                   else {"httpGet": {"path": "/healthz", "port": 8080}})
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            c[probe] = copy.deepcopy(handler)
    return c


def _storage(name_db: str, storage: Obj | None) -> tuple[Obj | None, Obj | None, str]:
    """(pod volume, volumeClaimTemplate, volume name) for spec.storage (server/statefulset.go
    makeStatefulSet and pkg/alertmanager/statefulset.go: emptyDir, ephemeral or a claim template)."""
    if not storage:
        return {"name": name_db, "emptyDir": {}}, None, name_db
    if storage.get("emptyDir") is not None:
        return {"name": name_db, "emptyDir": storage["emptyDir"]}, None, name_db
    if storage.get("ephemeral") is not None:
        return {"name": name_db, "ephemeral": storage["ephemeral"]}, None, name_db
    vct = copy.deepcopy(storage.get("volumeClaimTemplate") or {})
    meta = dict(vct.get("metadata") or {})
    meta["name"] = meta.get("name") or name_db
    spec = dict(vct.get("spec") or {})
    spec["accessModes"] = spec.get("accessModes") or ["ReadWriteOnce"]
    return None, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}, meta["name"]


def _dns1123(prefix: str, name: str) -> str:
    """pkg/k8s ResourceNamer.DNS1123Label with a prefix (sanitised, at most 63 characters)."""
    s = re.sub(r"[^a-z0-9-]", "-", f"{prefix}-{name}".lower()).strip("-")
    return s[:63].rstrip("-")


def _secret_cm_volumes(spec: Obj, secrets_dir: str, configmaps_dir: str) -> tuple[list[Obj], list[Obj]]:
    vols, mounts = [], []
    for s in spec.get("secrets") or []:
        n = _dns1123("secret", s)
        vols.append({"name": n, "secret": {"secretName": s}})
        mounts.append({"name": n, "readOnly": True, "mountPath": f"{secrets_dir}/{s}"})
    for c in spec.get("configMaps") or []:
        n = _dns1123("configmap", c)
        vols.append({"name": n, "configMap": {"name": c}})
        mounts.append({"name": n, "readOnly": True, "mountPath": f"{configmaps_dir}/{c}"})
    return vols, mounts


def _statefulset(name: str, namespace: str, cr: Obj, selector: dict[str, str], pod_labels: dict[str, str],
                 pod_annotations: dict[str, str], pod_spec: Obj, spec: Obj, claim: Obj | None, extra_labels: dict[str, str],
                 service_name: str, replicas: int) -> Obj:
    """operator.UpdateObject + the StatefulSetSpec both statefulset.go files build."""
    labels = {**_PO_MANAGED, **((cr.get("metadata") or {}).get("labels") or {}), **extra_labels, **selector}
    annotations = {k: v for k, v in ((cr.get("metadata") or {}).get("annotations") or {}).items()
                   if not k.startswith("kubectl.kubernetes.io/")}
    sts_spec: Obj = {"serviceName": service_name, "replicas": replicas,
                     "podManagementPolicy": spec.get("podManagementPolicy") or "Parallel",
                     "updateStrategy": _update_strategy(spec.get("updateStrategy"))}
    _put(sts_spec, "minReadySeconds", spec.get("minReadySeconds"))
    sts_spec["selector"] = {"matchLabels": selector}
    sts_spec["template"] = {"metadata": _compact({"labels": pod_labels, "annotations": pod_annotations}), "spec": pod_spec}
    if claim:
        sts_spec["volumeClaimTemplates"] = [claim]
    _put(sts_spec, "persistentVolumeClaimRetentionPolicy", spec.get("persistentVolumeClaimRetentionPolicy"))
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(name, namespace, labels, annotations),
            "spec": sts_spec}


def _update_strategy(s: Obj | None) -> Obj:
    """pkg/operator/statefulset.go UpdateStrategyForStatefulSet."""
    if not s:
        return {"type": "RollingUpdate"}
    out: Obj = {"type": s.get("type")}
    if s.get("rollingUpdate"):
        out["rollingUpdate"] = _compact({"maxUnavailable": s["rollingUpdate"].get("maxUnavailable")})
    return out


def _pod_common(spec: Obj, pod: Obj) -> Obj:
    """The PodSpec fields both statefulset.go files copy from the CR unchanged."""
    for key in ("nodeSelector", "schedulerName", "priorityClassName", "tolerations", "affinity", "hostAliases"):
        _put(pod, key, spec.get(key))
    for key in ("hostNetwork",):
        if spec.get(key):
            pod[key] = True
    for key in ("enableServiceLinks", "hostUsers"):
        if spec.get(key) is not None:
            pod[key] = spec[key]
    _put(pod, "imagePullSecrets", spec.get("imagePullSecrets"))
    if spec.get("hostNetwork"):
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    _put(pod, "dnsPolicy", spec.get("dnsPolicy"))
    _put(pod, "dnsConfig", spec.get("dnsConfig"))
    return pod


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


# ---------------------------------------------------------------------------------------------
# kagent v0.9.12 (kagent-dev/kagent, go/core/internal/controller/translator/agent/).
# ---------------------------------------------------------------------------------------------

KAGENT = "kagent"


def kagent_settings(objects: list[K8sObject], agent_namespace: str) -> tuple[dict[str, str], str]:
    """The controller's settings and namespace: the chart's `<release>-controller` ConfigMap
    (helm/kagent/templates/controller-configmap.yaml, the controller's envFrom) when it is among the
    objects, else operators.yaml `defaults` with kagent in the agent's namespace."""
    for o in objects:
        data = o.manifest.get("data") or {}
        if o.kind == "ConfigMap" and "KAGENT_CONTROLLER_NAME" in data and "IMAGE_REPOSITORY" in data:
            return {k: str(v) for k, v in data.items()}, o.namespace or "default"
    return dict(pins()[KAGENT]["defaults"]), agent_namespace


def _model_env(objects: list[K8sObject], namespace: str, model_config: str) -> list[Obj]:
    """adk_api_translator.go translateModel: the provider's API key from the ModelConfig's Secret
    (OpenAI: OPENAI_API_KEY unless apiKeyPassthrough or token exchange). Other providers, TLS CA
    volumes and token-exchange mounts are not modelled."""
    ns, _, name = model_config.rpartition("/")
    mc = _find(objects, "ModelConfig", ns or namespace, name)
    spec = (mc.manifest.get("spec") or {}) if mc else {}
    env = []
    if spec.get("provider") == "OpenAI" and spec.get("apiKeySecret") and not spec.get("apiKeyPassthrough") \
            and not (spec.get("openAI") or {}).get("tokenExchange"):
        env.append({"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {
            "name": spec["apiKeySecret"], "key": spec.get("apiKeySecretKey", "")}}})
    if spec.get("provider") == "OpenAI" and (spec.get("openAI") or {}).get("organization"):
        env.append({"name": "OPENAI_ORGANIZATION", "value": spec["openAI"]["organization"]})
    return env


def kagent_agent(cr: K8sObject, objects: list[K8sObject]) -> list[Obj]:
    """An Agent's objects: compiler.go CompileAgent -> deployments.go resolveInlineDeployment /
    resolveByoDeployment -> manifest_builder.go BuildManifest (config Secret, ServiceAccount when the
    pod runs as `<agent>`, Deployment, Service). Sandbox workloads and the skills-init container are
    not modelled (skills still switch on the privileged code-execution security context)."""
    settings, controller_ns = kagent_settings(objects, cr.namespace or "default")
    spec = cr.manifest.get("spec") or {}
    name, ns = cr.name, cr.namespace or "default"
    byo = spec.get("type") == "BYO"
    dep_spec = ((spec.get("byo") if byo else spec.get("declarative")) or {}).get("deployment") or {}
    declarative = spec.get("declarative") or {}

    # deployments.go getDefaultLabels (+ DEFAULT_AGENT_POD_LABELS), then manifest_builder.go podLabels
    default_pod_labels = dict(p.split("=", 1) for p in settings.get("DEFAULT_AGENT_POD_LABELS", "").split(",") if "=" in p)
    labels = {"app": "kagent", "kagent": name, "app.kubernetes.io/managed-by": "kagent", "app.kubernetes.io/part-of": "kagent",
              "app.kubernetes.io/name": name, **default_pod_labels, **(dep_spec.get("labels") or {})}
    selector = {"app": "kagent", "kagent": name}
    annotations = (cr.metadata.get("annotations") or {})
    sa_name = dep_spec.get("serviceAccountName") or settings.get("DEFAULT_SERVICE_ACCOUNT_NAME") or name

    mdd_env = [] if byo else _model_env(objects, ns, declarative.get("modelConfig", ""))
    skills = spec.get("skills") or {}
    has_skills = bool(skills.get("refs") or skills.get("gitRefs"))
    exec_code = bool(declarative.get("executeCodeBlocks")) and not byo
    need_isolation = exec_code or has_skills

    volumes: list[Obj] = []
    mounts: list[Obj] = []
    if not byo:  # buildConfigSecret: the config Secret mounted at /config when there is an agent config
        volumes.append({"name": "config", "secret": {"secretName": name}})
        mounts.append({"name": "config", "mountPath": "/config"})
    volumes += dep_spec.get("volumes") or []
    mounts += dep_spec.get("volumeMounts") or []
    shared_env = sorted(({"name": k, "value": v} for k, v in settings.items() if k.startswith("OTEL_")),
                        key=lambda e: e["name"])
    shared_env += [{"name": "KAGENT_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                   {"name": "KAGENT_NAME", "value": name},
                   {"name": "KAGENT_URL", "value": f"http://{settings.get('KAGENT_CONTROLLER_NAME', 'kagent-controller')}."
                                                   f"{controller_ns}:8083"}]
    if has_skills:
        shared_env.append({"name": "KAGENT_SKILLS_FOLDER", "value": "/skills"})
        volumes.append({"name": "kagent-skills", "emptyDir": {}})
        mounts.append({"name": "kagent-skills", "mountPath": "/skills", "readOnly": True})
    volumes.append({"name": "kagent-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "kagent", "expirationSeconds": 3600, "path": "kagent-token"}}]}})
    mounts.append({"name": "kagent-token", "mountPath": "/var/run/secrets/tokens"})
    if exec_code or has_skills or (byo and spec.get("sandbox") is not None):
        shared_env.append({"name": "KAGENT_SRT_SETTINGS_PATH", "value": "/config/srt-settings.json"})
    env = list(dep_spec.get("env") or []) + mdd_env + shared_env

    runtime = declarative.get("runtime") or "python"
    if byo:
        image, args, cmd = dep_spec.get("image", ""), list(dep_spec.get("args") or []), dep_spec.get("cmd") or ""
    else:
        registry = dep_spec.get("imageRegistry") or settings.get("IMAGE_REGISTRY", "")
        repo = settings.get("IMAGE_REPOSITORY", "kagent-dev/kagent/app")
        tag = settings.get("IMAGE_TAG", "")
        if runtime == "go":  # getRuntimeImageRepository: the last path segment becomes golang-adk
            repo = (repo.rsplit("/", 1)[0] + "/golang-adk") if "/" in repo else "golang-adk"
            tag += "-full" if has_skills or exec_code else ""
        image = f"{registry}/{repo}:{tag}"
        args = ["--host", settings.get("DEFAULT_AGENT_BIND_HOST", "0.0.0.0"), "--port", "8080", "--filepath", "/config"]
        cmd = ""
    probe = {"initialDelaySeconds": 1, "timeoutSeconds": 5, "periodSeconds": 1} if runtime == "go" and not byo \
        else {"initialDelaySeconds": 15, "timeoutSeconds": 15, "periodSeconds": 15}
    security = copy.deepcopy(dep_spec.get("securityContext"))
    if need_isolation and (security or {}).get("allowPrivilegeEscalation") is not False:
        security = {**(security or {}), "privileged": True}  # buildContainerSecurityContext

    container: Obj = {"name": "kagent", "image": image,
                      "imagePullPolicy": dep_spec.get("imagePullPolicy") or settings.get("IMAGE_PULL_POLICY", "IfNotPresent")}
    _put(container, "command", [cmd] if cmd else None)
    _put(container, "args", args)
    _put(container, "workingDir", dep_spec.get("workingDir"))
    container["ports"] = [{"name": "http", "containerPort": 8080}]
    container["resources"] = dep_spec.get("resources") or {
        "requests": {"cpu": "100m", "memory": "384Mi"}, "limits": {"cpu": "2000m", "memory": "1Gi"}}
    container["env"] = env
    container["readinessProbe"] = {"httpGet": {"path": "/.well-known/agent-card.json", "port": "http"}, **probe}
    _put(container, "securityContext", security)
    container["volumeMounts"] = mounts
    pull_secrets = list(dep_spec.get("imagePullSecrets") or [])
    if settings.get("IMAGE_PULL_SECRET") and not byo and all(s.get("name") != settings["IMAGE_PULL_SECRET"] for s in pull_secrets):
        pull_secrets.append({"name": settings["IMAGE_PULL_SECRET"]})
    pod: Obj = {"serviceAccountName": sa_name}
    _put(pod, "imagePullSecrets", pull_secrets)
    _put(pod, "securityContext", dep_spec.get("podSecurityContext"))
    pod["containers"] = [container, *(dep_spec.get("extraContainers") or [])]
    pod["volumes"] = volumes
    for key in ("tolerations", "affinity", "nodeSelector"):
        _put(pod, key, dep_spec.get(key))
    pod_annotations = dict(dep_spec.get("annotations") or {})

    meta = _meta(name, ns, labels, annotations)
    deployment_spec: Obj = {}
    _put(deployment_spec, "replicas", dep_spec.get("replicas"))
    deployment_spec.update({
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "selector": {"matchLabels": selector},
        "template": {"metadata": _compact({"labels": labels, "annotations": pod_annotations}), "spec": pod}})
    port: Obj = {"name": "http", "port": 8080, "targetPort": 8080}
    if declarative.get("a2aConfig") is not None and not byo:
        port["appProtocol"] = "kgateway.dev/a2a"
    out = [{"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": {"config.json": "", "agent-card.json": ""}}]
    if sa_name == name:
        sa_cfg = dep_spec.get("serviceAccountConfig") or {}
        out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(
            name, ns, {**labels, **(sa_cfg.get("labels") or {})}, {**annotations, **(sa_cfg.get("annotations") or {})})})
    out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deployment_spec})
    out.append({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"selector": selector, "ports": [port], "type": "ClusterIP"}})
    return out


# ---------------------------------------------------------------------------------------------
# Gateway API proxies: kgateway v2.4.3 and agentgateway v1.4.1.
# ---------------------------------------------------------------------------------------------

KGATEWAY = "kgateway"
AGENTGATEWAY = "agentgateway"


def safe_label_value(name: str) -> str:
    """pkg/utils/kubeutils/dns.go SafeGatewayLabelValue / the charts' `kgateway.gateway.safeLabelValue`."""
    if len(name) <= 63:
        return name
    return f"{name[:50].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def gateway_class_controllers(objects: list[K8sObject]) -> dict[str, str]:
    """class name -> operator: the classes each controller creates by default (operators.yaml
    `gatewayClasses`) plus declared GatewayClasses with its controllerName."""
    out = {c: op for op in (KGATEWAY, AGENTGATEWAY) for c in pins()[op]["gatewayClasses"]}
    names = {pins()[op]["controllerName"]: op for op in (KGATEWAY, AGENTGATEWAY)}
    for o in objects:
        if o.kind == "GatewayClass" and o.group == GATEWAY_GROUP:
            ctrl = (o.manifest.get("spec") or {}).get("controllerName")
            if ctrl in names:
                out[o.name] = names[ctrl]
    return out


def _listener_ports(gw: Obj) -> list[int]:
    """The Gateway's listener ports, deduplicated and sorted (ir.GatewayForDeployer.Ports, a smallset)."""
    return sorted({int(listener["port"]) for listener in (gw.get("spec") or {}).get("listeners") or []})


def _helm_port(port: int) -> Obj:
    """deployer/values_helpers.go AppendPortValue: name `listener~<port>` sanitised (SanitizePortName)."""
    name = re.sub(r"-{2,}", "-", re.sub(r"[^a-zA-Z0-9-]+", "-", f"listener~{port}"))[:15]
    return {"name": name, "protocol": "TCP", "port": port, "targetPort": port}


def _infra_meta(gw: Obj, key: str) -> dict[str, str]:
    """gateway_parameters.go translateInfraMeta: infrastructure labels/annotations minus gateway.networking.k8s.io/*."""
    src = ((gw.get("spec") or {}).get("infrastructure") or {}).get(key) or {}
    return {k: str(v) for k, v in src.items() if not k.startswith(f"{GATEWAY_GROUP}/")}


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
    ports = [_helm_port(p) for p in _listener_ports(gw) if p not in (15020, 15021, 15000)]
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
        "ports": [{"containerPort": 15020, "name": "metrics", "protocol": "TCP"}],
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
    pod_meta = {"annotations": sprig_merge(gw_annotations, {"prometheus.io/path": "/metrics", "prometheus.io/port": "15020",
                                                            "prometheus.io/scrape": "true"}),
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


# ---------------------------------------------------------------------------------------------
# Entry point.
# ---------------------------------------------------------------------------------------------


def operator_objects(objects: list[K8sObject]) -> list[K8sObject]:
    """Every object the platform's operators would create from `objects` (see the module docstring).
    A governing Service shared by several CRs of one namespace (prometheus-operated,
    alertmanager-operated) is returned once."""
    classes = gateway_class_controllers(objects)
    out: list[K8sObject] = []
    seen: set[tuple[str, str, str]] = set()

    def emit(manifests: list[Obj], cr: K8sObject, operator: str) -> None:
        for m in manifests:
            key = (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])
            if key in seen:
                continue
            seen.add(key)
            out.append(K8sObject(copy.deepcopy(m), cr.source, release=None, controller=controller_label(operator)))

    for o in objects:
        if o.group == "monitoring.coreos.com" and o.kind == "Prometheus":
            emit(prometheus(o, objects), o, PO)
        elif o.group == "monitoring.coreos.com" and o.kind == "Alertmanager":
            emit(alertmanager(o, objects), o, PO)
        elif o.group == "kagent.dev" and o.kind == "Agent":
            emit(kagent_agent(o, objects), o, KAGENT)
        elif o.group == GATEWAY_GROUP and o.kind == "Gateway":
            operator = classes.get(str((o.manifest.get("spec") or {}).get("gatewayClassName")))
            if operator == KGATEWAY:
                emit(kgateway_proxy(o, objects), o, KGATEWAY)
            elif operator == AGENTGATEWAY:
                emit(agentgateway_proxy(o, objects), o, AGENTGATEWAY)
    return out
