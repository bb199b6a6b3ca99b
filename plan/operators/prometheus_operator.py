"""prometheus-operator v0.93.x: what its Prometheus and Alertmanager translations share (controller
flags, the config reloader, storage, the StatefulSet and pod template skeleton).

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import copy
import re

from plan.objects import K8sObject
from plan.operators.common import Obj, _compact, _containers_of, _meta, _put, pins

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
