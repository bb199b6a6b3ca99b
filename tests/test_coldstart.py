"""Cold-start budget (domain/coldstart.py, platform/coldstart.yaml), the fit rule (domain/sizing.py,
platform/model-facts.yaml), fast start (Run:ai streamer tuning, compile cache, do-not-disrupt) and
the weights Job of `s3` models."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from types import SimpleNamespace

import pytest

from components import compile_cache, names
from components.config import ConfigError, GpuPoolConfig, ModelConfig
from components.model_engine import streamer_config
from domain import coldstart
from domain.instances import instance_facts
from domain.sizing import architecture, fit, kv_bytes_per_token, tensor_parallel_problem
from tests.test_models import _config, model_deployments, pod, program_config_models

JOB = "kubernetes:batch/v1:Job"


def model(**kw) -> ModelConfig:
    base = {"name": "m", "engine": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "image": "vllm/vllm-openai:v0.12.0",
            "parametersB": 8.03, "pool": "gpu", "cache": "s3"}
    return ModelConfig.model_validate({**base, **kw})


def pool(*types: str, fast: bool = True) -> GpuPoolConfig:
    return GpuPoolConfig.model_validate({"name": "gpu", "instanceTypes": list(types), "fastImagePull": fast, "gpuLimit": 64,
                                         "rootVolumeThroughput": 600})


# ------------------------------------------------------------------------------ the budget

def test_prod_slowest_model_is_up_in_2_minutes_warm_and_10_on_a_new_node():
    """Issue 16's target, by the plan's own budget: every prod model, on a node that holds its image
    (<= 120 s) and on a new node (<= 600 s)."""
    budgets = {n: coldstart.cold_start(m, p) for n, (m, p) in program_config_models("prod").items()}
    assert max(b.warm_node_s for b in budgets.values()) <= 120, {n: b.warm_node_s for n, b in budgets.items()}
    assert max(b.total_s for b in budgets.values()) <= 600, {n: b.total_s for n, b in budgets.items()}


def test_each_phase_follows_its_figure():
    f = coldstart.figures()
    m = model(model="meta-llama/Llama-3.3-70B-Instruct", parametersB=70.6, gpus=4, gpuModel="H100")
    cs = coldstart.cold_start(m, pool("p5.48xlarge"))
    assert cs.node.seconds == f["node"]["p5"]["seconds"]
    assert cs.pull.seconds == -(-f["images"]["vllm/vllm-openai"]["sizeGB"] // f["pull"]["sociGBps"])
    # distributed: 4 ranks x 3 GB/s, capped by the node's network
    assert cs.load.seconds == -(-141.2 // min(4 * 3.0, f["load"]["s3"]["nodeNetworkGBps"]))
    assert "distributed over 4 ranks" in cs.load.assumption
    # an s3 model of a known GPU model restores its compile cache from the bucket; its first start fills it
    assert cs.warmup.seconds == f["warmup"]["vllm"]["init"]["seconds"] + f["warmup"]["vllm"]["compileCached"]["seconds"]
    assert cs.first_warmup.seconds == f["warmup"]["vllm"]["init"]["seconds"] + f["warmup"]["vllm"]["compile"]["seconds"]
    standard = coldstart.cold_start(m, pool("p5.48xlarge", fast=False))
    assert standard.pull.seconds > cs.pull.seconds and "standard pull" in standard.pull.assumption


def test_cache_kinds_load_at_their_rates_and_pvc_keeps_the_compile_cache():
    p = pool("g5.2xlarge")
    s3, pvc, local = (coldstart.cold_start(model(cache=c, maxReplicas=1), p) for c in ("s3", "pvc", "nodeLocal"))
    assert s3.load.seconds < pvc.load.seconds < local.load.seconds
    assert pvc.first_load.seconds > pvc.load.seconds          # the first start downloads from Hugging Face
    assert local.first_load == local.load                     # every nodeLocal pod downloads again
    assert pvc.warmup.seconds < local.warmup.seconds          # a pvc keeps the torch.compile cache
    assert coldstart.cold_start(model(cache="pvc", compileCache=False), p).warmup == local.warmup
    # s3: the bucket keeps it when the GPU model is known (one GPU model in the pool, or gpuModel)
    assert s3.warmup.seconds == pvc.warmup.seconds and s3.first_warmup.seconds == local.warmup.seconds
    mixed = pool("g5.48xlarge", "p4d.24xlarge")
    assert coldstart.cold_start(model(), mixed).warmup == local.warmup
    assert coldstart.cold_start(model(gpuModel="A100"), mixed).warmup == s3.warmup
    # the startup probe allows the first start, which compiles
    assert coldstart.startup_allowance_s(s3) >= s3.first_load.seconds + s3.first_warmup.seconds > (
        s3.load.seconds + s3.warmup.seconds)


def test_probe_deadline_and_awaits_are_the_one_allowance(prod_plan):
    deps = model_deployments(prod_plan)
    for name, (m, p) in program_config_models("prod").items():
        cs = coldstart.cold_start(m, p)
        spec = deps[name].inputs["spec"]
        probe = spec["template"]["spec"]["containers"][0]["startupProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] >= coldstart.startup_allowance_s(cs)
        assert spec["progressDeadlineSeconds"] == coldstart.rollout_allowance_s(cs)
        assert coldstart.rollout_allowance_s(cs) >= cs.node.seconds + cs.pull.seconds + coldstart.startup_allowance_s(cs)


def test_plan_reports_cold_start_and_fit_per_model(prod_plan):
    cold = prod_plan.extras["coldStart"]
    assert set(cold) == {"llama-3-70b", "llama-3-8b", "mixtral-8x7b"}
    for r in cold.values():
        assert {"node", "pull", "load", "warmup"} <= set(r) and all(r[k]["assumption"] for k in ("node", "pull", "load", "warmup"))
        assert r["totalSeconds"] == sum(r[k]["seconds"] for k in ("node", "pull", "load", "warmup"))
        assert r["fit"]["maxModelLenSequences"] >= 1
    assert cold["llama-3-70b"]["fit"]["gpu"] == "H100"


# ------------------------------------------------------------------------------ will it run

def test_kv_cache_per_token_after_the_tensor_parallel_split():
    arch = architecture(SimpleNamespace(architecture=None, model="meta-llama/Llama-3.3-70B-Instruct"))
    # 2 x 80 layers x (8 KV heads / 4 ranks) x 128 x 2 bytes
    assert kv_bytes_per_token(arch, 4) == 2 * 80 * 2 * 128 * 2
    assert kv_bytes_per_token(arch, 16) == 2 * 80 * 1 * 128 * 2      # fewer KV heads than ranks: replicated


def test_tensor_parallel_must_split_the_heads():
    qwen = architecture(SimpleNamespace(architecture=None, model="Qwen/Qwen2.5-1.5B-Instruct"))   # 12 heads, 2 KV
    assert tensor_parallel_problem(qwen, 4) is None
    assert "attention heads" in tensor_parallel_problem(qwen, 8)
    odd = SimpleNamespace(attention_heads=12, kv_heads=3)
    assert "KV heads" in tensor_parallel_problem(odd, 2)


def test_an_8b_fits_one_a10g_with_one_16k_sequence_and_the_count_is_reported():
    f = fit(model(maxModelLen=16384), instance_facts("g5.2xlarge"), architecture(model()))
    assert f.sequences == int(f.kv_free_gib // f.sequence_gib) >= 1
    assert f.budget_gib == pytest.approx(0.9 * 22888 / 1024)   # the usable A10G memory, not 24 GiB


def test_a_context_whose_kv_cache_does_not_fit_is_refused_naming_maxmodellen():
    with pytest.raises(ConfigError) as err:
        _config("dev", lambda c: c["agentic-platform:models"][0].update(
            model="meta-llama/Llama-3.1-8B-Instruct", parametersB=8.03, maxModelLen=131072))
    assert any(line.startswith("agentic-platform:models[0].maxModelLen: 131072 tokens need 16.00 GiB of KV cache")
               for line in err.value.lines()), err.value.lines()


def test_tensor_parallel_and_context_beyond_the_model_are_refused():
    with pytest.raises(ConfigError) as err:
        _config("prod", lambda c: c["agentic-platform:models"][0].update(gpus=3, maxModelLen=200000))
    lines = err.value.lines()
    assert any(line.startswith("agentic-platform:models[0].gpus: meta-llama/Llama-3.3-70B-Instruct: 64 attention heads "
                               "are not divisible by tensor parallel size 3") for line in lines), lines


def test_unknown_model_needs_its_architecture_and_accepts_it_from_config():
    with pytest.raises(ConfigError) as err:
        _config("dev", lambda c: c["agentic-platform:models"][0].update(model="acme/unknown-1b"))
    assert any(line.startswith("agentic-platform:models[0].architecture: no shape for acme/unknown-1b")
               for line in err.value.lines())
    _config("dev", lambda c: c["agentic-platform:models"][0].update(
        model="acme/unknown-1b", architecture={"layers": 28, "attentionHeads": 12, "kvHeads": 2, "headDim": 128}))


# ------------------------------------------------------------------------------ fast start

def test_streamer_is_tuned_per_model(prod_plan):
    deps = model_deployments(prod_plan)
    for name, (m, _p) in program_config_models("prod").items():
        args = pod(deps[name])["containers"][0]["args"]
        extra = json.loads(args[args.index("--model-loader-extra-config") + 1])
        assert extra == streamer_config(m)
        assert extra.get("distributed") is (True if m.gpus > 1 else None)
    assert streamer_config(model(parametersB=1.5))["concurrency"] == 16
    assert streamer_config(model(streamer={"concurrency": 48, "memoryLimitGiB": 4})) == {
        "concurrency": 48, "memory_limit": 4 * 2**30}


def test_model_pods_are_not_disrupted_and_keep_a_compile_cache(prod_plan, dev_plan):
    for plan in (prod_plan, dev_plan):
        for r in model_deployments(plan).values():
            tmpl = r.inputs["spec"]["template"]
            assert tmpl["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
            c = tmpl["spec"]["containers"][0]
            root = next(e["value"] for e in c["env"] if e["name"] == "VLLM_CACHE_ROOT")
            mounts = {v["mountPath"]: v["name"] for v in c["volumeMounts"]}
            mount = next(p for p in mounts if root.startswith(p + "/"))
            vol = next(v for v in tmpl["spec"]["volumes"] if v["name"] == mounts[mount])
            # pvc: kept on the volume across pods; else an emptyDir (hostPath is not `restricted`)
            assert "persistentVolumeClaim" in vol or "emptyDir" in vol


# ------------------------------------------------------------------------------ the weights Job

def _prod_job(prod_plan, model_name: str):
    (job,) = [r for r in prod_plan.by_type(JOB) if r.inputs["metadata"]["name"] == f"{model_name}-weights"]
    return job


def test_every_s3_model_has_a_weights_job_that_runs_before_its_deployment(prod_plan):
    deps = model_deployments(prod_plan)
    for name, (m, _p) in program_config_models("prod").items():
        job = _prod_job(prod_plan, name)
        assert job.urn in deps[name].dependencies, name
        spec = job.inputs["spec"]["template"]["spec"]
        assert [c["name"] for c in spec["initContainers"]] == ["list", "download"] and spec["containers"][0]["name"] == "upload"
        env = {e["name"]: e.get("value") for e in spec["initContainers"][1]["env"]}
        assert env["MODEL"] == m.model and env["PREFIX"] == m.model
        assert any(e["name"] == "HF_TOKEN" and e["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
                   for e in spec["initContainers"][1]["env"])
        assert "--size-only" in spec["containers"][0]["args"][0]          # what is there is not copied again
        assert spec["serviceAccountName"] == f"{name}-weights"
        assert job.inputs["metadata"]["labels"][names.MODEL_CACHE_LABEL] == "s3"


def test_weights_job_role_writes_only_its_prefix(prod_plan):
    roles = [r for r in prod_plan.by_type("aws:iam/rolePolicy:RolePolicy") if "llama-3-70b-weights" in r.name]
    (policy,) = roles
    doc = json.loads(policy.inputs["policy"])
    # DeleteObject: the marker and another revision's files (tests/test_weights_marker.py)
    resources = [s["Resource"] for s in doc["Statement"] if {"s3:PutObject", "s3:DeleteObject"} <= set(s["Action"])]
    assert resources and all(r.endswith("/meta-llama/Llama-3.3-70B-Instruct/*") for r in resources)
    (listing,) = [s for s in doc["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["meta-llama/Llama-3.3-70B-Instruct/*",
                                                               "meta-llama/Llama-3.3-70B-Instruct"]


def test_weights_job_is_admitted_under_restricted_pod_security(prod_plan):
    admitted = {(o.kind, o.name) for o in prod_plan.objects}
    assert ("Job", "llama-3-70b-weights") in admitted
    rejected = [f for f in prod_plan.extras["admission"] if "weights" in json.dumps(f)]
    assert rejected == []
    spec = _prod_job(prod_plan, "llama-3-70b").inputs["spec"]["template"]["spec"]
    assert "ephemeral" in spec["volumes"][0] and spec["securityContext"]["runAsNonRoot"] is True


# ------------------------------------------------------------------------------ compile cache through S3

def test_the_compile_cache_prefix_needs_s3_vllm_and_a_known_gpu_model():
    uniform, mixed = pool("g5.2xlarge"), pool("g5.48xlarge", "p4d.24xlarge")
    key = compile_cache.args_hash(model())      # tests/test_compile_cache.py
    assert compile_cache.cache_prefix(model(), uniform) == f"m/compile-cache/v0.12.0/a10g/{key}"
    assert compile_cache.cache_prefix(model(gpuModel="A100"), mixed) == f"m/compile-cache/v0.12.0/a100/{key}"
    assert compile_cache.cache_prefix(model(), mixed) is None                      # which GPU: unknown
    assert compile_cache.cache_prefix(model(cache="pvc"), uniform) is None        # its volume keeps it
    assert compile_cache.cache_prefix(model(compileCache=False), uniform) is None
    # never inside the weights' prefix, which vLLM copies (all but the weights) on every start
    assert not compile_cache.cache_prefix(model(), uniform).startswith(model().model + "/")


def test_prod_models_restore_and_save_their_compile_cache_with_a_role_for_that_prefix_only(prod_plan):
    deps = model_deployments(prod_plan)
    for name, (m, p) in program_config_models("prod").items():
        spec = pod(deps[name])
        prefix = compile_cache.cache_prefix(m, p)
        # (after wait-for-weights, the first: tests/test_first_deploy.py)
        inits = [c for c in spec.get("initContainers") or [] if c["name"] != "wait-for-weights"]
        if prefix is None:      # llama-3-8b: gpu-inference mixes A10G, A100 and H100 and it sets no gpuModel
            assert not inits and "empty in a new pod" in prod_plan.extras["coldStart"][name]["warmup"]["assumption"]
            continue
        restore, save = inits
        assert "restartPolicy" not in restore and save["restartPolicy"] == "Always"     # a native sidecar
        for c in inits:
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["CACHE_PREFIX"] == prefix and env["CACHE_DIR"] == "/compile-cache/vllm"
        engine_env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert engine_env["VLLM_CACHE_ROOT"] == "/compile-cache/vllm"
        (policy,) = [r for r in prod_plan.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == f"{name}-s3-policy"]
        doc = json.loads(policy.inputs["policy"])
        writable = [s["Resource"] for s in doc["Statement"] if "s3:PutObject" in s["Action"]]
        assert len(writable) == 1 and writable[0].endswith(f"/{prefix}/*")
        assert prod_plan.extras["coldStart"][name]["warmup"]["seconds"] < (
            prod_plan.extras["coldStart"][name]["firstWarmup"]["seconds"])


@pytest.mark.parametrize("script", ["RESTORE", "SAVE"])
def test_the_compile_cache_scripts_are_valid_bash(script):
    """The containers run them with /bin/bash -c (the save sidecar uses bash's /dev/tcp)."""
    result = subprocess.run(["bash", "-n", "-c", getattr(compile_cache, script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_save_sidecar_waits_for_a_200_from_health():
    """Its `ready` check against a local server: true on 200; false on 503, on no answer within its
    timeout, and with nothing listening."""
    status = {"code": 503}

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's API
            self.send_response(status["code"] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # the script's ready() function, its reply timeout shortened for the test
    ready = compile_cache.SAVE.split("\nuntil ", 1)[0].replace(f"-t {compile_cache.READY_TIMEOUT_S} ", "-t 1 ")
    assert "-t 1 " in ready

    def check(port: int) -> int:
        return subprocess.run(["bash", "-c", f"{ready}\nready"], env={"PORT": str(port), "PATH": "/usr/bin:/bin"},
                              timeout=20).returncode
    try:
        port = server.server_address[1]
        assert check(port) != 0
        status["code"] = 200
        assert check(port) == 0
    finally:
        server.shutdown()
    assert check(port) != 0           # listening, never answering: read -t gives up
    server.server_close()
    assert check(port) != 0
