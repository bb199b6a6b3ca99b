"""Model serving: cache strategies, placement, security, KEDA triggers, fit checks, token secrecy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components import names
from components.config import ConfigError, validate
from components.config.gateway import GatewayConfig
from domain.coldstart import cold_start, rollout_allowance_s, startup_allowance_s
from plan.engine import ROOT, program_config, read_stack
from tests.conftest import stack_doc, write_stack

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TOKEN_PLACEHOLDER = "mock-secret-hfToken"


def model_deployments(plan):
    return {r.inputs["metadata"]["name"]: r for r in plan.by_type(DEPLOYMENT)
            if names.MODEL_LABEL in r.inputs["metadata"].get("labels", {})}


def pod(r):
    return r.inputs["spec"]["template"]["spec"]


def test_prod_declares_three_models_with_their_objects(prod_plan):
    deps = model_deployments(prod_plan)
    assert set(deps) == {"llama-3-70b", "llama-3-8b", "mixtral-8x7b"}
    for kind in ("kubernetes:core/v1:Service", "kubernetes:policy/v1:PodDisruptionBudget", SCALED_OBJECT,
                 "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"):
        assert {r.inputs["metadata"]["name"] for r in prod_plan.by_type(kind)} >= set(deps), kind


def test_services_follow_the_gateway_contract(placement_plan):
    services = {r.inputs["metadata"]["name"]: r.inputs for r in placement_plan.by_type("kubernetes:core/v1:Service")}
    for name, engine in (("llama-3-70b", "vllm"), ("tgi-mixtral", "tgi")):
        svc = services[name]
        assert svc["metadata"]["namespace"] == names.NS_INFERENCE
        assert svc["spec"]["trafficDistribution"] == "PreferClose"
        assert svc["spec"]["ports"][0] == {"name": "http", "port": names.model_port(engine), "targetPort": "http",
                                           "protocol": "TCP"}


def test_pvc_cache_mounts_a_gp3_claim(placement_plan):
    spec = pod(model_deployments(placement_plan)["tgi-mixtral"])
    cache = next(v for v in spec["volumes"] if v["name"] == "cache")
    claim = cache["persistentVolumeClaim"]["claimName"]
    pvc = next(r for r in placement_plan.by_type("kubernetes:core/v1:PersistentVolumeClaim")
               if r.inputs["metadata"]["name"] == claim)
    # a cache: the always-Delete class, so no EBS volume outlives the claim (protectData or not)
    assert pvc.inputs["spec"]["storageClassName"] == names.STORAGE_CLASS_CACHE
    assert pvc.inputs["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert {"name": "cache", "mountPath": "/data"} in spec["containers"][0]["volumeMounts"]


def test_s3_cache_streams_through_a_read_only_pod_identity(prod_plan):
    dep = model_deployments(prod_plan)["llama-3-70b"]
    spec = pod(dep)
    args = spec["containers"][0]["args"]
    assert args[args.index("--load-format") + 1] == "runai_streamer"
    assert args[0].startswith("s3://") and args[0].endswith("/meta-llama/Llama-3.3-70B-Instruct")
    assert spec["serviceAccountName"] == "llama-3-70b"
    assoc = [r for r in prod_plan.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
             if r.inputs["serviceAccount"] == "llama-3-70b"]
    assert len(assoc) == 1 and assoc[0].inputs["namespace"] == names.NS_INFERENCE
    policy = next(r for r in prod_plan.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == "llama-3-70b-s3-policy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    # the weights are read only; what it may write is its compile cache's prefix (components/compile_cache.py)
    on_weights = {a for s in statements if "/meta-llama/" in str(s["Resource"]) or "/" not in str(s["Resource"])
                  .split(":::", 1)[-1] for a in s["Action"]}
    assert on_weights == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}
    writes = [s["Resource"] for s in statements if "s3:PutObject" in s["Action"]]
    assert writes and all("/llama-3-70b/compile-cache/" in r for r in writes)
    buckets = [r for r in prod_plan.by_type("aws:s3/bucket:Bucket") if r.inputs.get("tags", {}).get("purpose") == "model-weights"]
    assert len(buckets) == 1 and buckets[0].protect  # prod protects data


def test_node_local_cache_is_a_sized_empty_dir(placement_plan):
    spec = pod(model_deployments(placement_plan)["b-llama-8b"])
    cache = next(v for v in spec["volumes"] if v["name"] == "cache")
    assert cache == {"name": "cache", "emptyDir": {"sizeLimit": "100Gi"}}
    assert not any("hostPath" in v for v in spec["volumes"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_gpu_placement_and_restricted_security(stack, dev_plan, prod_plan):
    plan = dev_plan if stack == "dev" else prod_plan
    deps = model_deployments(plan)
    assert deps
    for r in deps.values():
        spec = pod(r)
        c = spec["containers"][0]
        assert c["resources"]["requests"][names.GPU_RESOURCE] == c["resources"]["limits"][names.GPU_RESOURCE]
        assert c["resources"]["requests"] == c["resources"]["limits"]
        assert names.GPU_TOLERATION in spec["tolerations"]
        assert spec["nodeSelector"][names.NODEPOOL_LABEL] == "gpu-inference"
        assert spec["securityContext"]["runAsNonRoot"] is True
        for ctr in spec["containers"] + spec.get("initContainers", []):
            sc = ctr["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        shm = next(v for v in spec["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"]
        assert spec["terminationGracePeriodSeconds"] > c["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert any(e["name"] == "HF_TOKEN" and e["valueFrom"]["secretKeyRef"]["name"] == "hf-token" for e in c["env"])


def test_gpu_model_pins_the_gpu_and_the_startup_probe_is_the_cold_start_allowance(prod_plan):
    deps = model_deployments(prod_plan)
    assert pod(deps["llama-3-70b"])["nodeSelector"][names.GPU_NAME_LABEL] == "h100"
    cfg = program_config_models("prod")
    for name, (m, pool) in cfg.items():
        startup = pod(deps[name])["containers"][0]["startupProbe"]
        allowed = startup_allowance_s(cold_start(m, pool))
        assert allowed <= startup["periodSeconds"] * startup["failureThreshold"] < allowed + startup["periodSeconds"]
        assert deps[name].inputs["spec"]["progressDeadlineSeconds"] == rollout_allowance_s(cold_start(m, pool))
    args = pod(deps["llama-3-70b"])["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"


def test_tgi_shards_over_its_gpus(placement_plan):
    tgi = pod(model_deployments(placement_plan)["tgi-mixtral"])["containers"][0]["args"]
    assert tgi[tgi.index("--num-shard") + 1] == "4" and "--max-total-tokens" in tgi


def test_scaled_objects_use_strings_and_the_seed_behaviour(any_plan):
    objs = [r for r in any_plan.by_type(SCALED_OBJECT) if names.MODEL_LABEL in r.inputs["metadata"].get("labels", {})]
    assert objs
    for r in objs:
        spec = r.inputs["spec"]
        for trig in spec["triggers"]:
            assert all(isinstance(v, str) for v in trig["metadata"].values()), trig
        queries = " ".join(t["metadata"]["query"] for t in spec["triggers"])
        assert "DCGM_FI_DEV_GPU_UTIL" in queries
        assert "vllm:num_requests_waiting" in queries or "tgi_queue_size" in queries
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
        assert spec["fallback"]["failureThreshold"] == 3
        keda = [d for d in r.dependencies if "Release::" in d and d.endswith("-keda")]
        assert keda, "ScaledObjects depend on the KEDA release"


def program_config_models(stack: str):
    """{model name: (ModelConfig, its GpuPoolConfig)} of a stack file, as the program validates it."""
    cfg = _config(stack, lambda _c: None)
    pools = {p.name: p for p in cfg.gpu_pools}
    return {m.name: (m, pools[m.pool]) for m in cfg.models}


def _config(stack: str, change):
    doc = stack_doc(stack)
    change(doc["config"])
    sf = read_stack(stack)
    sf.config.update(doc["config"])
    raw = {k.split(":", 1)[1]: v for k, v in program_config(sf).items() if k.startswith("agentic-platform:")}
    return validate(raw, stack)


def test_70b_fp16_on_one_a10g_is_refused_naming_the_key():
    def change(c):
        c["agentic-platform:models"][0].update(model="meta-llama/Llama-3.3-70B-Instruct", parametersB=70.6,
                                               dtype="float16", gpus=1)
    with pytest.raises(ConfigError) as err:
        _config("dev", change)
    lines = err.value.lines()
    assert any(line.startswith("agentic-platform:models[0].gpus: meta-llama/Llama-3.3-70B-Instruct (141 GB in float16) "
                               "does not fit 1 x A10G: per GPU gpuMemoryUtilization x memory = 20.1 GiB")
               for line in lines), lines


def test_more_gpus_than_a_node_is_refused():
    with pytest.raises(ConfigError) as err:
        _config("dev", lambda c: c["agentic-platform:models"][0].update(gpus=2))
    assert any(line.startswith("agentic-platform:models[0].gpus: 2 GPUs do not fit one node of pool 'gpu-inference'")
               for line in err.value.lines())


@pytest.mark.slow
def test_replicas_over_the_gpu_quota_are_refused(tmp_path):
    doc = stack_doc("prod")
    doc["config"]["agentic-platform:models"][1]["maxReplicas"] = 40
    path = write_stack(tmp_path, doc)
    out = subprocess.run([sys.executable, "-m", "plan", str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert "agentic-platform:models[1].maxReplicas: 40 x 1 GPUs: the models of namespace ai-inference need" in out.stderr
    assert "platformQuotas.ai-inference.gpu = 48" in out.stderr


def test_s3_cache_with_tgi_is_refused():
    with pytest.raises(ConfigError) as err:
        _config("prod", lambda c: c["agentic-platform:models"][2].update(engine="tgi", cache="s3"))
    assert any(line.startswith("agentic-platform:models[2].cache: 's3' streams weights") for line in err.value.lines())


# ------------------------------------------------------------------ images, metrics, writable paths

def _images():
    import yaml
    return yaml.safe_load((ROOT / "platform" / "images.yaml").read_text())


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_model_images_repeat_the_pins_of_images_yaml(stack):
    pins = {e: f"{_images()[e]['repository']}:{_images()[e]['tag']}" for e in ("vllm", "tgi")}
    models = stack_doc(stack)["config"]["agentic-platform:models"]
    assert models
    for m in models:
        # a derived image (tgi) lives in the operator's registry: <registry>/<repository>:<tag>
        assert m["image"] == pins[m["engine"]] or m["image"].endswith("/" + pins[m["engine"]]), m["name"]


def test_service_monitors_scrape_a_port_the_service_exposes(prod_plan):
    services = {r.inputs["metadata"]["name"]: r.inputs for r in prod_plan.by_type("kubernetes:core/v1:Service")
                if r.inputs["metadata"]["namespace"] == names.NS_INFERENCE}
    monitors = [r.inputs for r in prod_plan.by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
                if names.MODEL_LABEL in r.inputs["metadata"].get("labels", {})]
    assert {m["metadata"]["name"] for m in monitors} >= {"llama-3-70b", "mixtral-8x7b"}
    for mon in monitors:
        svc = services[mon["metadata"]["name"]]
        ports = {p["name"] for p in svc["spec"]["ports"]}
        for ep in mon["spec"]["endpoints"]:
            # vLLM and TGI both serve /metrics on the HTTP port (TGI's router route), the one the
            # observability -> ai-inference NetworkPolicy already allows.
            assert ep["port"] in ports and ep["path"] == "/metrics"


def _writable_mounts(spec):
    mounts = spec["containers"][0]["volumeMounts"]
    vols = {v["name"]: v for v in spec["volumes"]}
    return [m["mountPath"] for m in mounts if not m.get("readOnly") and "configMap" not in vols[m["name"]]]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_cache_path_the_engines_write_is_a_mounted_volume(stack, dev_plan, prod_plan):
    plan = dev_plan if stack == "dev" else prod_plan
    deps = model_deployments(plan)
    assert deps
    path_vars = {"HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "HF_HOME", "TRITON_CACHE_DIR",
                 "TORCHINDUCTOR_CACHE_DIR", "NUMBA_CACHE_DIR", "TMPDIR", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT",
                 "VLLM_ASSETS_CACHE", "HUGGINGFACE_HUB_CACHE"}
    for name, r in deps.items():
        spec = pod(r)
        c = spec["containers"][0]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        env = {e["name"]: e.get("value") for e in c["env"]}
        engine = r.inputs["metadata"]["labels"]["agentic.platform/engine"]
        must = {"HOME", "XDG_CACHE_HOME", "HF_HOME", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "NUMBA_CACHE_DIR"}
        must |= {"VLLM_CACHE_ROOT", "VLLM_ASSETS_CACHE"} if engine == "vllm" else {"HUGGINGFACE_HUB_CACHE"}
        assert must <= set(env), (name, must - set(env))
        assert env.get("USER"), "getpass.getuser() needs USER: UID 1000 has no passwd entry"
        writable = _writable_mounts(spec)
        for var in path_vars & set(env):
            assert any(env[var] == w or env[var].startswith(w.rstrip("/") + "/") for w in writable), (name, var)
        assert "/tmp" in writable and "/dev/shm" in writable


# ------------------------------------------------------------------ placement: isolated tenants and spot

def test_node_isolated_tenant_model_lands_on_its_dedicated_pool(placement_plan):
    dep = model_deployments(placement_plan)["b-llama-8b"]
    assert dep.inputs["metadata"]["namespace"] == "tenant-b"
    spec = pod(dep)
    assert spec["nodeSelector"][names.NODEPOOL_LABEL] == names.tenant_pool_name("tenant-b") == "tenant-tenant-b"
    assert {"key": names.TENANT_TAINT_KEY, "operator": "Equal", "value": "tenant-b",
            "effect": "NoSchedule"} in spec["tolerations"]
    assert names.GPU_TOLERATION in spec["tolerations"]
    # The dedicated NodePool exists and carries exactly that taint and label.
    pools = {r.inputs["metadata"]["name"]: r.inputs for r in placement_plan.resources
             if r.type.endswith(":NodePool") and "metadata" in r.inputs}
    tmpl = pools["tenant-tenant-b"]["spec"]["template"]
    assert {"key": names.TENANT_TAINT_KEY, "value": "tenant-b", "effect": "NoSchedule"} in [
        {k: t.get(k) for k in ("key", "value", "effect")} for t in tmpl["spec"]["taints"]]
    assert tmpl["metadata"]["labels"][names.TENANT_LABEL] == "tenant-b"
    # The model's Secret, ScaledObject and Service are in the tenant namespace too.
    for kind in ("kubernetes:core/v1:Service", SCALED_OBJECT):
        objs = [r for r in placement_plan.by_type(kind) if r.inputs["metadata"]["name"] == "b-llama-8b"]
        assert objs and objs[0].inputs["metadata"]["namespace"] == "tenant-b", kind
    assert any(r.inputs["metadata"]["namespace"] == "tenant-b" and r.inputs["metadata"]["name"] == "hf-token"
               for r in placement_plan.by_type("kubernetes:core/v1:Secret"))


def test_spot_pool_model_tolerates_the_pools_spot_taint(placement_plan):
    dep = model_deployments(placement_plan)["a-spot-8b"]
    assert dep.inputs["metadata"]["namespace"] == "tenant-a"
    spec = pod(dep)
    assert spec["nodeSelector"][names.NODEPOOL_LABEL] == "gpu-spot"
    pool = next(r.inputs for r in placement_plan.resources
                if r.type.endswith(":NodePool") and r.inputs.get("metadata", {}).get("name") == "gpu-spot")
    taints = pool["spec"]["template"]["spec"]["taints"]
    spot = {"key": "karpenter.sh/capacity-type", "value": "spot", "effect": "NoSchedule"}
    assert spot in [{k: t.get(k) for k in ("key", "value", "effect")} for t in taints]
    # Every taint of the pool is tolerated, else the pod would never schedule there.
    for t in taints:
        assert any(tol["key"] == t["key"] and tol.get("effect") == t["effect"]
                   and (tol["operator"] == "Exists" or tol.get("value") == t.get("value"))
                   for tol in spec["tolerations"]), t
    assert {"key": "karpenter.sh/capacity-type", "operator": "Equal", "value": "spot",
            "effect": "NoSchedule"} in spec["tolerations"]
    # The model on gpu-inference does not carry the spot toleration (it must not drift onto spot-only nodes).
    other = pod(model_deployments(placement_plan)["llama-3-8b"])
    assert not any(t["key"] == "karpenter.sh/capacity-type" for t in other["tolerations"])


def _timeouts(plan, urn: str) -> tuple[str, str]:
    (req,) = [req for req, u in plan.monitor.requests if u == urn]
    return req.customTimeouts.create, req.customTimeouts.update


def test_model_service_waits_as_long_as_its_deployment(prod_plan):
    """pulumi-kubernetes awaits a Service with a selector until its endpoints are ready (10 minutes
    by default): each model's Service and Deployment wait the model's rollout budget (node launch +
    startup budget), not the default that a 70B first deploy outlasts."""
    models = program_config_models("prod")
    deployments = model_deployments(prod_plan)
    services = {r.inputs["metadata"]["name"]: r for r in prod_plan.by_type("kubernetes:core/v1:Service")
                if r.inputs["metadata"]["name"] in models}
    assert set(services) == set(models)
    for name, (m, pool) in models.items():
        budget = f"{rollout_allowance_s(cold_start(m, pool))}s"
        assert _timeouts(prod_plan, services[name].urn) == (budget, budget), name
        assert _timeouts(prod_plan, deployments[name].urn) == (budget, budget), name


def test_keda_waits_for_the_system_nodes(any_plan):
    """KEDA's pods run on the system node group (nodeSelector): its atomic release depends on it."""
    (keda,) = [r for r in any_plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "keda"]
    (ng,) = any_plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert keda.inputs["values"]["operator"]["nodeSelector"] == {"agentic.platform/node-role": "system"}
    assert ng.urn in keda.dependencies


def test_model_pods_carry_their_cache_label(prod_plan):
    """The tenancy layer lets only `s3`-cached model pods reach the Pod Identity agent."""
    for name, d in model_deployments(prod_plan).items():
        labels = d.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels[names.MODEL_CACHE_LABEL] in ("pvc", "s3", "nodeLocal"), name


def served_names(deployment) -> list[str]:
    """The names after --served-model-name, up to the next flag."""
    args = [a for a in pod(deployment)["containers"][0]["args"] if isinstance(a, str)]
    rest = args[args.index("--served-model-name") + 1:]
    return rest[:next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))]


def test_a_canary_and_fallback_model_also_answers_to_its_route_model(kgw_plan):
    """kgateway sends a canary's or a fallback's share with the body unchanged, naming the route's model;
    vLLM answers 404 to a name it does not serve, so prod's 8B (canary and fallback of the 70B) also
    serves `llama-3-70b`, its own name first (responses and metrics keep it)."""
    deps = model_deployments(kgw_plan)
    assert served_names(deps["llama-3-8b"]) == ["llama-3-8b", "llama-3-70b"]
    assert served_names(deps["llama-3-70b"]) == ["llama-3-70b"]
    assert served_names(deps["mixtral-8x7b"]) == ["mixtral-8x7b"]


def test_behind_agentgateway_every_model_serves_its_own_name_only(prod_plan):
    """Prod reaches its vLLM models through agentgateway, which renames the canary's share itself."""
    for name, deployment in model_deployments(prod_plan).items():
        assert served_names(deployment) == [name]


def test_served_aliases_come_from_canaries_and_fallbacks():
    gateway = GatewayConfig.model_validate({
        "jwt": {"issuer": "https://issuer.example", "jwksUri": "https://issuer.example/jwks", "audiences": ["a"]},
        "routes": [{"model": "big", "canary": {"model": "small", "weight": 10}, "fallback": "small"},
                   {"model": "other", "fallback": "small"}, {"model": "plain"}]})
    assert gateway.served_aliases() == {"small": ("big", "other")}
