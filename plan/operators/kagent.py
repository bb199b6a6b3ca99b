"""kagent: a `kagent.dev/v1alpha2` Agent -> config Secret, ServiceAccount, Deployment, Service.

See plan/operators/__init__.py for what the translations model and what they leave out."""

from __future__ import annotations

import copy

from plan.objects import K8sObject
from plan.operators.common import Obj, _compact, _find, _meta, _put, pins

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
