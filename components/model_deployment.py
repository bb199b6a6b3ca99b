"""One model server (vLLM or TGI): its Deployment, Service, PDB, ServiceMonitor, KEDA ScaledObject
and its weights cache; the pod it runs. `components/models.py` builds one per configured model.

Sizing rules (weights, fit, pod size, startup budgets) live in `domain/sizing.py` and the cold-start
budget in `domain/coldstart.py`: the config's fit rules use the same ones, so what is validated is
what is deployed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import compile_cache, names
from components.aws import pod_identity_role, policy_json
from components.compile_cache import COMPILE_CACHE_GIB
from components.config import ModelConfig, ModelServingConfig
from components.gpu_pool import GpuPool
from components.k8s import (
    container_security_context,
    custom_object,
    labels,
    meta,
    pod_security_context,
    resources,
    selector,
)
from components.model_autoscaling import scaled_object_spec
from components.model_engine import (
    COMPILE_CACHE_DIR,
    DATA_DIR,
    HOME_DIR,
    UID,
    engine_container,
    uses_compile_cache_volume,
)
from components.model_weights import WeightsJob, job_deadline_s, wait_for_weights
from domain.coldstart import ColdStart, cold_start, rollout_allowance_s, startup_allowance_s
from domain.sizing import HOME_GIB, S3_SCRATCH_GIB, TMP_GIB, PodSize, ephemeral_gib, pod_size

# kube-prometheus-stack's Prometheus selects ServiceMonitors carrying its release label.
PROMETHEUS_RELEASE_LABEL = {"release": names.PROMETHEUS_RELEASE}

PROBE_PERIOD_S = 10
PRESTOP_SLEEP_S = 30          # endpoints and the gateway stop sending before SIGTERM
DRAIN_S = 100                 # in-flight generations finish after SIGTERM
# Karpenter does not voluntarily disrupt (consolidate, drift, expire) a node running a pod with this
# annotation (karpenter.sh docs, "Disruption": "Pod-Level Controls"): a loading model is not moved.
DO_NOT_DISRUPT = {"karpenter.sh/do-not-disrupt": "true"}


def s3_prefix(m: ModelConfig) -> str:
    """Where an `s3`-cached model's weights live in the models bucket."""
    return names.weights_prefix(m.model)


@dataclass(frozen=True)
class ModelEndpoint:
    """The model serving layer's typed output: what a layer that calls a model (gateway, agents) needs
    of it, so none of them re-derives a model's namespace, Service or port from the config."""
    name: str                 # the `x-model-id` clients send
    namespace: str
    service: str
    port: int
    engine: str               # vllm | tgi
    tenant: str | None        # the tenant whose namespace serves it; None: the shared ai-inference

    @property
    def url(self) -> str:
        return f"http://{self.service}.{self.namespace}.svc:{self.port}"


@dataclass
class ModelDeploymentArgs:
    model: ModelConfig
    pool: GpuPool                                       # compute's typed output: where it runs
    serving: ModelServingConfig
    cluster_name: pulumi.Input[str]
    keda: pulumi.Resource | None
    hf_token_secret: str | None                        # name of the namespace's token Secret
    models_bucket: Any = None                           # SecureBucket when cache is s3
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    node_selector: dict[str, str] = field(default_factory=dict)
    region: pulumi.Input[str] | None = None
    served_aliases: tuple[str, ...] = ()                # route models it also answers to (canary/fallback)
    tags: dict[str, str] = field(default_factory=dict)
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # What the weights Job needs (namespace, token, CPU nodes, the cache StorageClass): not the GPU
    # pools nor the monitoring CRDs, so the copy starts early in a first deploy.
    weights_depends_on: list[pulumi.Resource] = field(default_factory=list)


class ModelDeployment(pulumi.ComponentResource):
    """One model server: Deployment, Service, PDB, ServiceMonitor, KEDA ScaledObject and its cache."""

    def __init__(self, name: str, args: ModelDeploymentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("agentic:models:ModelDeployment", name, None, opts)
        self._args = args
        m = args.model
        self.model_name = m.name
        self.service_name = m.name
        self.namespace = names.model_namespace(m)
        self.port = names.model_port(m.engine)
        self.endpoint = ModelEndpoint(m.name, self.namespace, self.service_name, self.port, m.engine, m.tenant)
        version = m.image.rsplit(":", 1)[-1] if "@" not in m.image else None
        # MODEL_CACHE_LABEL: the tenancy layer lets `s3` pods (only) reach the Pod Identity agent.
        lbl = labels(m.name, "model-server", version=version,
                     extra={names.MODEL_LABEL: m.name, "agentic.platform/engine": m.engine,
                            names.MODEL_CACHE_LABEL: m.cache})
        # The cold-start budget (domain/coldstart.py, platform/coldstart.yaml) sizes the startup probe,
        # the Deployment's progressDeadlineSeconds and Pulumi's await timeouts: one figure each.
        self.cold_start: ColdStart = cold_start(m, args.pool)
        cache_volume, service_account = self._cache(name, lbl)
        self._server(name, lbl, cache_volume, service_account)
        self._monitoring_and_scaling(name, lbl)
        self.register_outputs({"serviceName": self.service_name, "namespace": self.namespace, "port": self.port})

    def _server(self, name: str, lbl: dict[str, str], cache_volume: dict[str, Any],
                service_account: str | None) -> None:
        """The Deployment running the engine, its Service and its PodDisruptionBudget."""
        args, m, ns, port = self._args, self._args.model, self.namespace, self.port
        sel = selector(m.name)
        size = pod_size(m, args.pool)
        source: pulumi.Input[str] = m.model
        if m.cache == "s3":
            source = pulumi.Output.concat("s3://", args.models_bucket.bucket.bucket, "/", s3_prefix(m))
        command, cmd_args, env = engine_container(m, source, args.hf_token_secret, args.region,
                                                 args.served_aliases)
        startup = startup_allowance_s(self.cold_start)
        rollout_s = rollout_allowance_s(self.cold_start)
        # pulumi-kubernetes waits for a Deployment's rollout and a Service's endpoints, 10 minutes by
        # default, "You can override the default timeout value by setting the 'customTimeouts' option"
        # (pulumi.com/registry/packages/kubernetes/api-docs/apps/v1/deployment/).
        # Nothing in the stack needs a model Ready at deploy time (routes, agents and KEDA only name its
        # Service), so neither is awaited: `pulumi.com/skipAwait: "true"` makes the provider's ready
        # condition an immediate no-op (pulumi-kubernetes provider/pkg/metadata/overrides.go,
        # ReadyCondition). The rollout is then bounded by the Deployment controller, which sets
        # Progressing=False/ProgressDeadlineExceeded after progressDeadlineSeconds without progress
        # (kubernetes.io/docs/concepts/workloads/controllers/deployment/#failed-deployment); the
        # timeouts keep the same figure should the annotation be dropped.
        rollout = pulumi.CustomTimeouts(create=f"{rollout_s}s", update=f"{rollout_s}s")
        not_awaited = {names.PULUMI_SKIP_AWAIT: "true"}
        container = model_container(m, command, cmd_args, env, size, port, startup)
        pod_spec = model_pod_spec(m, args, size, container, cache_volume, service_account, sel)
        if m.cache == "s3" and m.weights_job:
            # The weights Job is not awaited: the pods wait for its marker. A first rollout that
            # outlasts progressDeadlineSeconds meanwhile only reports ProgressDeadlineExceeded
            # (the controller takes no other action: kubernetes.io/docs/concepts/workloads/
            # controllers/deployment/#failed-deployment) and completes once the copy has.
            wait = wait_for_weights(m, args.models_bucket.bucket.bucket, s3_prefix(m), args.region, HOME_DIR,
                                    job_deadline_s(m))
            pod_spec["initContainers"] = [wait, *pod_spec.get("initContainers", [])]
        # A pvc cache attaches to one node: the old pod must let go first. Otherwise no surge, so a
        # rollout never needs GPUs beyond maxReplicas x gpus (what the quota check counts).
        strategy = ({"type": "Recreate"} if m.cache == "pvc"
                    else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
        # An s3 model starts once its Pod Identity association exists and its weights Job is created
        # (its pods wait for the copy themselves).
        deps = [*args.depends_on, *([self.identity.association] if m.cache == "s3" else []),
                *([self.weights.job] if m.cache == "s3" and m.weights_job else [])]
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(m.name, ns, labels=lbl, annotations=not_awaited),
            # No `replicas`: KEDA's HPA owns the count (server-side apply would fight over it).
            spec={"selector": {"matchLabels": sel}, "strategy": strategy, "revisionHistoryLimit": 5,
                  "progressDeadlineSeconds": rollout_s,
                  "template": {"metadata": {"labels": lbl, "annotations": dict(DO_NOT_DISRUPT)}, "spec": pod_spec}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps, custom_timeouts=rollout),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(m.name, ns, labels=lbl, annotations=not_awaited),
            spec={"type": "ClusterIP", "selector": sel, "trafficDistribution": "PreferClose",
                  "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on, custom_timeouts=rollout),
        )
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=meta(m.name, ns, labels=lbl),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": sel}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on))

    def _monitoring_and_scaling(self, name: str, lbl: dict[str, str]) -> None:
        """The ServiceMonitor Prometheus scrapes and the KEDA ScaledObject that sizes the Deployment."""
        args, m, ns = self._args, self._args.model, self.namespace
        sel = selector(m.name)
        # Both engines serve Prometheus text on /metrics of the HTTP port: vLLM's API server, and TGI's
        # router (its `/metrics` route; TGI >= 3.3 also opens a second listener on --prometheus-port,
        # default 9000, which nothing here uses, so no extra port is exposed or allowed).
        self.service_monitor = custom_object(
            f"{name}-servicemonitor", "monitoring.coreos.com/v1", "ServiceMonitor", m.name, namespace=ns,
            labels={**lbl, **PROMETHEUS_RELEASE_LABEL},
            spec={"selector": {"matchLabels": sel}, "namespaceSelector": {"matchNames": [ns]},
                  "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on))
        self.scaled_object = custom_object(
            f"{name}-scaledobject", "keda.sh/v1alpha1", "ScaledObject", m.name, namespace=ns, labels=lbl,
            spec=scaled_object_spec(m, args.serving),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment, *([args.keda] if args.keda else [])]))

    def _cache(self, name: str, lbl: dict[str, str]) -> tuple[dict[str, Any], str | None]:
        """The model cache volume (and, for `s3`, the ServiceAccount, its S3 read role and the weights
        Job); returns the pod's cache volume and its ServiceAccount name (None: no AWS access)."""
        args, m, ns = self._args, self._args.model, self.namespace
        child = pulumi.ResourceOptions(parent=self)
        service_account = None
        cache_volume: dict[str, Any]
        if m.cache == "pvc":
            self.pvc = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-cache",
                metadata=meta(f"{m.name}-cache", ns, labels=lbl),
                # A cache (weights download again): the cluster's Delete class, so no volume outlives
                # the claim, whatever protectData says.
                spec={"accessModes": ["ReadWriteOnce"], "storageClassName": names.STORAGE_CLASS_CACHE,
                      "resources": {"requests": {"storage": f"{m.cache_size_gib}Gi"}}},
                # Binding waits for the first consumer; Pulumi must not wait for it.
                opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
            )
            cache_volume = {"name": "cache", "persistentVolumeClaim": {"claimName": f"{m.name}-cache"}}
        elif m.cache == "s3":
            service_account = m.name
            self.service_account = k8s.core.v1.ServiceAccount(
                f"{name}-sa", metadata=meta(service_account, ns, labels=lbl),
                automount_service_account_token=False, opts=pulumi.ResourceOptions(parent=self,
                                                                                    depends_on=args.depends_on))
            bucket = args.models_bucket
            self.identity = pod_identity_role(
                f"{name}-s3", cluster_name=args.cluster_name, namespace=ns, service_account=service_account,
                policy=policy_json([*bucket.read_only_statements(f"{s3_prefix(m)}/*"),
                                    *(compile_cache.statements(bucket, prefix)
                                      if (prefix := compile_cache.cache_prefix(m, args.pool)) else [])]),
                tags=args.tags, opts=child)
            if m.weights_job:
                self.weights = WeightsJob(
                    name, m, namespace=ns, prefix=s3_prefix(m), bucket=bucket, cluster_name=args.cluster_name,
                    hf_token_secret=args.hf_token_secret, region=args.region, tags=args.tags, parent=self,
                    depends_on=args.weights_depends_on)
            cache_volume = {"name": "cache", "emptyDir": {"sizeLimit": f"{S3_SCRATCH_GIB}Gi"}}
        else:
            # nodeLocal: an emptyDir lives under kubelet's root dir, which is on the instance-store
            # RAID0 when the EC2NodeClass sets instanceStorePolicy RAID0 (hostPath is not restricted-PSS).
            cache_volume = {"name": "cache", "emptyDir": {"sizeLimit": f"{m.cache_size_gib}Gi"}}

        return cache_volume, service_account


def model_container(m: ModelConfig, command: list[str], cmd_args: list[Any], env: list[dict[str, Any]], size: PodSize,
                    port: int, startup: int) -> dict[str, Any]:
    """The engine container: probes sized by the cold-start budget (`startup` seconds), restricted
    security context, requests and limits from the pod size."""
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    mounts = [{"name": "shm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"},
              {"name": "home", "mountPath": HOME_DIR}, {"name": "cache", "mountPath": DATA_DIR}]
    if uses_compile_cache_volume(m):
        mounts.append({"name": "compile-cache", "mountPath": COMPILE_CACHE_DIR})
    container = {
        "name": m.engine,
        "image": m.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "args": cmd_args,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": resources(f"{size.cpu_m}m", f"{size.memory_gib}Gi",
                               extra={names.GPU_RESOURCE: str(m.gpus),
                                      "ephemeral-storage": f"{ephemeral_gib(m) + compile_gib(m)}Gi"}),
        "securityContext": container_security_context(),
        "startupProbe": {**probe, "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 5,
                         "failureThreshold": math.ceil(startup / PROBE_PERIOD_S)},
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
        "volumeMounts": mounts,
    }
    return container


def model_pod_spec(m: ModelConfig, args: ModelDeploymentArgs, size: PodSize, container: dict[str, Any],
                   cache_volume: dict[str, Any], service_account: str | None, sel: dict[str, str]) -> dict[str, Any]:
    """The model server's pod: its placement, volumes (shm, scratch, cache, compile cache) and
    ServiceAccount."""
    zone_spread = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                   "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": sel}}
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(UID, fs_group=UID),
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": PRESTOP_SLEEP_S + DRAIN_S,
        "tolerations": args.tolerations,
        "nodeSelector": args.node_selector,
        "topologySpreadConstraints": [zone_spread],
        "containers": [container],
        "volumes": [
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{size.shm_gib}Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_GIB}Gi"}},
            {"name": "home", "emptyDir": {"sizeLimit": f"{HOME_GIB}Gi"}},
            cache_volume,
            # On the node's ephemeral storage: the instance-store NVMe RAID0 when the pool's
            # EC2NodeClass sets instanceStorePolicy RAID0 (kubelet's root dir moves onto it).
            *([{"name": "compile-cache", "emptyDir": {"sizeLimit": f"{COMPILE_CACHE_GIB}Gi"}}]
              if uses_compile_cache_volume(m) else []),
        ],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    else:
        pod_spec["automountServiceAccountToken"] = False
    if (prefix := compile_cache.cache_prefix(m, args.pool)) is not None:
        # The compile cache through the models bucket: restored before vLLM starts, saved once it serves.
        pod_spec["initContainers"] = compile_cache.containers(
            prefix, args.models_bucket.bucket.bucket, args.region, names.model_port(m.engine), COMPILE_CACHE_DIR,
            "/tmp/home")
    return pod_spec


def compile_gib(m: ModelConfig) -> int:
    return COMPILE_CACHE_GIB if uses_compile_cache_volume(m) else 0
