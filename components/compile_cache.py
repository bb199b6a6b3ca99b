"""A vLLM model's torch.compile cache that survives a new pod, so its second start skips compilation.

vLLM keeps its compiled graphs under VLLM_CACHE_ROOT/torch_compile_cache/<hash> (vllm 0.12.0
sdist: vllm/envs.py `VLLM_CACHE_ROOT`; vllm/compilation/backends.py builds the directory from the
vLLM version, the model/cache/parallel configs, the traced code and torch's inductor factors): a
copy of that directory made by an earlier pod of the same image and configuration is a hit. The
pod's own copy lives on the compile-cache emptyDir (the node's instance-store NVMe); hostPath,
which would outlive the pod, is not admitted under Pod Security `restricted`. So the cache goes
through the models bucket, s3://<bucket>/<model name>/compile-cache/<vLLM tag>/<gpu model>/ -- not
under the weights' prefix <HF id>/: vLLM pulls every object there but weights into its assets cache
for the tokenizer (vllm 0.12.0 vllm/config/model.py, ObjectStorageModel.pull_files with only an
ignore_pattern of weight suffixes), so a cache inside it would be copied on every start:
  * an init container (the pinned aws-cli image) copies the prefix into the emptyDir before vLLM
    starts -- nothing there on the model's first start, which then compiles;
  * a sidecar (an init container with restartPolicy Always, Kubernetes' native sidecars) waits until
    the engine answers /health on localhost, then syncs the directory up, and again every hour
    (`aws s3 sync --size-only`: what is there is not copied again);
  * the pod's Pod Identity role may read and write only that prefix besides reading its weights.
The GPU model is part of the key (compiled kernels are per GPU architecture): it must be known at
deploy time -- `models[].gpuModel`, or one GPU model across every type the replica can land on; a
model on a mixed pool without `gpuModel` keeps the per-pod cache only (and the cold-start budget
says so). Only `cache: s3` models: they already have the role and reach S3; a `pvc` model keeps its
cache on its volume."""

from __future__ import annotations

from typing import Any

import pulumi

from components.k8s import container_security_context, resources
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
RESTORE = ('mkdir -p "$CACHE_DIR" && aws s3 sync "s3://$BUCKET/$CACHE_PREFIX" "$CACHE_DIR" --no-progress '
           '--only-show-errors || echo "no compile cache restored: vLLM compiles"')


def engine_version(m: Any) -> str:
    """The vLLM image's tag (the cache is valid for one vLLM build)."""
    return m.image.rsplit(":", 1)[-1] if ":" in m.image.rsplit("/", 1)[-1] else "untagged"


def cache_prefix(m: Any, pool: Any) -> str | None:
    """The S3 prefix of the model's compile cache; None when it has none (see the module doc). A
    model name is a DNS label (no `/`), so the prefix never falls inside a Hugging Face id's."""
    gpu = compile_cache_gpu(m, pool)
    if m.engine != "vllm" or not m.compile_cache or m.cache != "s3" or gpu is None:
        return None
    return f"{m.name}/compile-cache/{engine_version(m)}/{gpu}"


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
           {"name": "HOME", "value": home}, *([{"name": "AWS_REGION", "value": region}] if region is not None else [])]
    mounts = [{"name": "compile-cache", "mountPath": mount_path}, {"name": "tmp", "mountPath": "/tmp"}]

    def container(name: str, script: str, memory: str) -> dict[str, Any]:
        return {"name": name, "image": f"{pin['repository']}:{pin['tag']}", "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/bash", "-c"], "args": [script], "env": env, "volumeMounts": mounts,
                "resources": resources("100m", memory, cpu_limit="1"), "securityContext": container_security_context()}

    return [container("compile-cache-restore", RESTORE, "512Mi"),
            {**container("compile-cache-save", SAVE, "512Mi"), "restartPolicy": "Always"}]
