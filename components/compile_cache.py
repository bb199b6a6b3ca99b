"""A vLLM model's torch.compile cache that survives a new pod, so its second start skips compilation.

vLLM keeps its compiled graphs under VLLM_CACHE_ROOT/torch_compile_cache/<hash> (vllm 0.12.0
sdist: vllm/envs.py `VLLM_CACHE_ROOT`; vllm/compilation/backends.py builds the directory from the
vLLM version, the model/cache/parallel configs, the traced code and torch's inductor factors): a
copy of that directory made by an earlier pod of the same image and configuration is a hit. The
pod's own copy lives on the compile-cache emptyDir (the node's instance-store NVMe); hostPath,
which would outlive the pod, is not admitted under Pod Security `restricted`. So the cache goes
through the models bucket, s3://<bucket>/<model name>/compile-cache/<vLLM tag>/<gpu model>/<args hash>/ -- not
under the weights' prefix <HF id>/: vLLM pulls every object there but weights into its assets cache
for the tokenizer (vllm 0.12.0 vllm/config/model.py, ObjectStorageModel.pull_files with only an
ignore_pattern of weight suffixes), so a cache inside it would be copied on every start:
  * an init container (the pinned aws-cli image) copies the prefix into the emptyDir before vLLM
    starts -- nothing there on the model's first start, which then compiles;
  * a sidecar (an init container with restartPolicy Always, Kubernetes' native sidecars) waits until
    the engine answers /health on localhost, then syncs the directory up, and again every hour
    (`aws s3 sync --size-only`: what is there is not copied again);
  * the pod's Pod Identity role may read and write only that prefix besides reading its weights.
The prefix is vLLM's own key, as far as the config says it: vLLM's directory name hashes the
config too, so without `args_hash` every engine-arg change would add a directory under one prefix
that each pod restores whole (stale entries accumulate into the 10 GiB emptyDir). What nothing
reads any more expires (`lifecycle_rules`, modelServing.compileCacheExpiryDays), and a restore
larger than its share of the emptyDir is skipped (`RESTORE_MAX_GIB`): an emptyDir past its
sizeLimit evicts the pod (kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/).
The GPU model is part of the key (compiled kernels are per GPU architecture): it must be known at
deploy time -- `models[].gpuModel`, or one GPU model across every type the replica can land on; a
model on a mixed pool without `gpuModel` keeps the per-pod cache only (and the cold-start budget
says so). Only `cache: s3` models: they already have the role and reach S3; a `pvc` model keeps its
cache on its volume."""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi

from components import names
from components.k8s import container_security_context, resources
from components.model_engine import vllm_args
from domain.coldstart import compile_cache_gpu
from domain.pins import image_pin

CACHE_DIR_NAME = "vllm"          # VLLM_CACHE_ROOT = <compile-cache mount>/vllm (components/model_engine.py)
SYNC_EVERY_S = 3600
READY_TIMEOUT_S = 5              # an engine that accepts but does not answer /health within it is not ready
# Waits for the engine's /health (bash's /dev/tcp: the aws-cli image has no curl guarantee), then
# syncs the cache up now and every SYNC_EVERY_S; a failed sync is retried at the next round.
SAVE = f"""ready() {{ ( exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 &&
  read -t {READY_TIMEOUT_S} -r status <&3 && [[ "$status" == *" 200"* ]] ) 2>/dev/null; }}
until ready; do sleep 10; done
while true; do
  aws s3 sync "$CACHE_DIR" "s3://$BUCKET/$CACHE_PREFIX" --size-only --no-progress --only-show-errors || true
  sleep {SYNC_EVERY_S}
done"""
COMPILE_CACHE_GIB = 10           # the compile-cache emptyDir: torch.compile artifacts and CUDA graph metadata
# A restore may fill half of it: a configuration vLLM does not find there (its key also hashes the
# traced code and torch's inductor factors) compiles beside what was restored.
RESTORE_MAX_GIB = COMPILE_CACHE_GIB // 2
# Restores the prefix unless it holds more than RESTORE_MAX_BYTES (`aws s3 ls --summarize` prints
# "Total Size: <bytes>"); a failed or skipped restore only means vLLM compiles.
RESTORE = """mkdir -p "$CACHE_DIR"
size=$(aws s3 ls --recursive --summarize "s3://$BUCKET/$CACHE_PREFIX/" 2>/dev/null | awk '/Total Size:/ {print $3}')
if [ "${size:-0}" -gt "$RESTORE_MAX_BYTES" ]; then
  echo "compile cache of $size bytes is more than $RESTORE_MAX_BYTES: not restored, vLLM compiles"; exit 0
fi
aws s3 sync "s3://$BUCKET/$CACHE_PREFIX" "$CACHE_DIR" --no-progress --only-show-errors \
  || echo "no compile cache restored: vLLM compiles"
"""
# The engine flags whose vLLM config fields vLLM 0.12.0 leaves out of its compile cache key
# (vllm/compilation/backends.py: sha256 of env factors, VllmConfig.compute_hash(), the traced code
# and the compiler's hash; vllm/config/model.py and cache.py list `served_model_name`,
# `gpu_memory_utilization`, `enable_prefix_caching` as ignored_factors; LoadConfig.compute_hash
# has no factors, vllm/config/load.py; --port is the API server's, not a VllmConfig field). Every
# other flag is hashed: one too many only costs a compile.
NOT_IN_KEY = frozenset({"--served-model-name", "--port", "--gpu-memory-utilization", "--enable-prefix-caching",
                        "--load-format", "--model-loader-extra-config"})


def engine_version(m: Any) -> str:
    """The vLLM image's tag (the cache is valid for one vLLM build)."""
    return m.image.rsplit(":", 1)[-1] if ":" in m.image.rsplit("/", 1)[-1] else "untagged"


def args_hash(m: Any) -> str:
    """10 hex characters of the model (id, revision) and the engine arguments vLLM's compile cache
    key depends on (all but NOT_IN_KEY and their values)."""
    keyed: list[str] = [m.model, m.revision or "main"]
    skipping = False
    for arg in [str(a) for a in vllm_args(m, m.model, 0)[1:]] + list(m.extra_args):
        if arg.startswith("--"):
            skipping = arg.split("=", 1)[0] in NOT_IN_KEY
        if not skipping:
            keyed.append(arg)
    return hashlib.sha256("\0".join(keyed).encode()).hexdigest()[:10]


def model_root(m: Any) -> str:
    return names.compile_cache_root(m.name)


def cache_prefix(m: Any, pool: Any) -> str | None:
    """The S3 prefix of the model's compile cache; None when it has none (see the module doc). The
    config refuses a weights prefix that overlaps it (components/config/rules.py)."""
    gpu = compile_cache_gpu(m, pool)
    if not m.compile_cache_in_s3 or gpu is None:
        return None
    return f"{model_root(m)}{engine_version(m)}/{gpu}/{args_hash(m)}"


def lifecycle_rules(models: list[Any], days: int) -> list[dict[str, Any]]:
    """Rules of the models bucket's lifecycle: a compile cache's objects expire `days` after their
    upload (the save sidecar's `sync --size-only` never uploads an unchanged file again, so an entry
    in use expires too and the next save puts it back); versioning keeps the expired version as
    non-current, which the bucket's own rule removes. One rule per model (S3 lifecycle filters take
    a literal prefix, no wildcard: docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html)."""
    roots = sorted({model_root(m) for m in models if m.compile_cache_in_s3})
    return [{"id": f"expire-compile-cache-{root.split('/', 1)[0]}", "status": "Enabled",
             "filter": {"prefix": root}, "expiration": {"days": days}} for root in roots]


def statements(bucket: Any, prefix: str) -> list[dict[str, Any]]:
    """Read and write the compile-cache prefix only (ListBucket: the model's read statements)."""
    return [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                                       "s3:ListMultipartUploadParts"],
         "Resource": bucket.bucket.arn.apply(lambda a: f"{a}/{prefix}/*")},
        {"Effect": "Allow", "Action": ["kms:GenerateDataKey"], "Resource": bucket.key.arn},
    ]


def containers(prefix: str, bucket_name: pulumi.Input[str], region: pulumi.Input[str] | None, port: int,
               mount_path: str, home: str) -> list[dict[str, Any]]:
    """The init containers of the model's pod: restore, then the save sidecar."""
    pin = image_pin("aws-cli")
    env = [{"name": "BUCKET", "value": bucket_name}, {"name": "CACHE_PREFIX", "value": prefix},
           {"name": "CACHE_DIR", "value": f"{mount_path}/{CACHE_DIR_NAME}"}, {"name": "PORT", "value": str(port)},
           {"name": "RESTORE_MAX_BYTES", "value": str(RESTORE_MAX_GIB * 2**30)},
           {"name": "HOME", "value": home}, *([{"name": "AWS_REGION", "value": region}] if region is not None else [])]
    mounts = [{"name": "compile-cache", "mountPath": mount_path}, {"name": "tmp", "mountPath": "/tmp"}]

    def container(name: str, script: str, memory: str) -> dict[str, Any]:
        return {"name": name, "image": f"{pin['repository']}:{pin['tag']}", "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/bash", "-c"], "args": [script], "env": env, "volumeMounts": mounts,
                "resources": resources("100m", memory, cpu_limit="1"), "securityContext": container_security_context()}

    return [container("compile-cache-restore", RESTORE, "512Mi"),
            {**container("compile-cache-save", SAVE, "512Mi"), "restartPolicy": "Always"}]
