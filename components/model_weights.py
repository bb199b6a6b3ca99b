"""The weights Job of an `s3`-cached model: fills s3://<models bucket>/<HF id>/ from Hugging Face
before the model's Deployment starts, so `cache: s3` needs no operator step (docs/models.md).

Idempotent: the first init container deletes the completion marker (so no server starts while this
copy runs) and lists what the prefix already holds; the second downloads from Hugging Face only the
files missing there (or of another size); the container uploads what was downloaded (`aws s3 sync
--size-only`) and writes the marker last. A second run finds everything and copies nothing. The
marker names what was copied (`weights_id`: model id, revision, file patterns) and the servers wait
for that very id: a marker left by another revision's copy does not start them. Sizes are trusted
only for files the prefix says belong to this id (`.weights-of`, written before anything is
copied); a prefix of another revision is emptied first (the same file names can hold other bytes
of the same size, and a revision with other shard names would leave the old ones behind). The pod
runs under Pod Security `restricted`, as its own service account whose Pod Identity role may list,
read and write that prefix only; its scratch space is a generic ephemeral volume (a gp3 claim that
lives and dies with the pod), so the node's disk does not bound the model's size."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import names
from components.aws import pod_identity_role, policy_json
from components.config import ModelConfig
from components.k8s import container_security_context, labels, meta, pod_security_context, resources
from components.model_engine import HF_TOKEN_KEY, UID
from domain.coldstart import figures, pull_phase
from domain.pins import image_pin
from domain.sizing import weights_gb, weights_gib

WORK = "/work"
# The object the Job writes last, once every file is in S3: what the model server's pods wait for.
WEIGHTS_COMPLETE = ".weights-complete"
# Which copy the files under the prefix belong to, written before the Job copies anything: a retried
# pod of the same copy trusts their sizes, a copy of another revision empties the prefix first.
WEIGHTS_OF = ".weights-of"
# What the marker said before it named the copy: a copy of the main branch with today's patterns.
LEGACY_MARKER = "done"
WAIT_POLL_S = 15
WEIGHTS_OF_LABEL = "agentic.platform/weights-of"   # the model whose weights the Job copies
# What vLLM reads of a Hugging Face repository: safetensors, configs and tokenizer files; not the
# duplicate `original/` checkpoints (.pth) or other formats some repositories carry.
ALLOW = ["*.safetensors", "*.json", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
IGNORE = ["original/*"]

# Runs in the pinned vLLM image, which carries huggingface_hub (a vLLM dependency).
DOWNLOAD = """
import fnmatch, os
from huggingface_hub import HfApi, hf_hub_download
allow, ignore = os.environ["ALLOW"].split(), os.environ["IGNORE"].split()
revision = os.environ.get("REVISION") or None
have = {}
for line in open(os.environ["WORK"] + "/in-s3.txt"):
    parts = line.split(None, 3)
    if len(parts) == 4:
        have[parts[3].strip()] = int(parts[2])
info = HfApi().model_info(os.environ["MODEL"], revision=revision, files_metadata=True)
missing = [s for s in info.siblings
           if any(fnmatch.fnmatch(s.rfilename, p) for p in allow)
           and not any(fnmatch.fnmatch(s.rfilename, p) for p in ignore)
           and have.get(os.environ["PREFIX"] + "/" + s.rfilename) != s.size]
print(f"{len(missing)} of {len(info.siblings)} files to copy", flush=True)
for s in missing:
    hf_hub_download(os.environ["MODEL"], s.rfilename, revision=revision, local_dir=os.environ["WORK"] + "/files")
"""


# The `list` init container: what the prefix holds and for which copy. Files of another copy (a marker
# naming another id, or none) are deleted, so the download compares sizes with this copy's files only.
LIST = f"""set -e
object() {{ aws s3 cp "s3://$BUCKET/$PREFIX/$1" - 2>/dev/null || :; }}
was=$(object {WEIGHTS_COMPLETE}); [ -n "$was" ] || was=$(object {WEIGHTS_OF})
aws s3 rm --quiet "s3://$BUCKET/$PREFIX/{WEIGHTS_COMPLETE}"
if [ "$was" != "$WEIGHTS_ID" ] && {{ [ -n "$REVISION" ] || [ "$was" != {LEGACY_MARKER} ]; }}; then
  echo "the prefix holds ${{was:-no marked copy}}, not $WEIGHTS_ID: emptying it"
  aws s3 rm --quiet --recursive "s3://$BUCKET/$PREFIX/"
fi
echo "$WEIGHTS_ID" | aws s3 cp - "s3://$BUCKET/$PREFIX/{WEIGHTS_OF}"
aws s3 ls --recursive "s3://$BUCKET/$PREFIX/" > "$WORK/in-s3.txt" || : > "$WORK/in-s3.txt"
"""


def weights_id(m: ModelConfig) -> str:
    """What a copy is: the model id, its revision and the file patterns it takes. The completion
    marker holds it; the servers' pods wait for their own model's (a rerun for another revision
    deletes the marker first, and the old marker names another id anyway)."""
    revision = m.revision or "main"
    digest = hashlib.sha256(json.dumps([m.model, revision, ALLOW, IGNORE]).encode()).hexdigest()[:12]
    return f"{m.model}@{revision} {digest}"


def weights_image(key: str) -> str:
    pin = image_pin(key)
    return f"{pin['repository']}:{pin['tag']}"


def copy_seconds(m: ModelConfig) -> tuple[int, int]:
    """What the Job's copy takes at the cold-start figures: the download from Hugging Face onto the
    gp3 scratch claim (the `download` init container) and the upload from it into S3 (`upload`)."""
    f = figures()
    hf = f["load"]["huggingFace"]["GBps"]
    up = f["load"]["pvc"]["throughputMiBps"] * 2**20 / 1e9
    return math.ceil(weights_gb(m) / hf), math.ceil(weights_gb(m) / up)


def job_deadline_s(m: ModelConfig) -> int:
    """activeDeadlineSeconds (counted from the Job's start) and the Pulumi await: a CPU node launch,
    the vLLM image's standard pull, the weights from Hugging Face and back out of the gp3 scratch
    claim into S3, at the cold-start figures, x margin, at least the floor."""
    f = figures()
    before = int(f["node"]["default"]["seconds"]) + pull_phase(weights_image("vllm"), soci=False).seconds
    transfer = sum(copy_seconds(m))
    return max(int(f["floorSeconds"]), math.ceil((before + transfer) * float(f["margin"])))


def write_statements(bucket: Any, prefix: str) -> list[dict[str, Any]]:
    """List, read, write and delete (the marker, another revision's files) `prefix/` only (ListBucket
    limited by the s3:prefix condition key)."""
    return [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket.bucket.arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                       "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
         "Resource": bucket.bucket.arn.apply(lambda a: f"{a}/{prefix}/*")},
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": bucket.key.arn},
    ]


def weights_pod_spec(m: ModelConfig, bucket_name: pulumi.Input[str], prefix: str, service_account: str,
                     hf_token_secret: str | None, region: pulumi.Input[str] | None) -> dict[str, Any]:
    scratch = math.ceil(weights_gib(m) * 1.1) + 5
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": f"{WORK}/home"}, {"name": "HF_HOME", "value": f"{WORK}/hf"},
        {"name": "WORK", "value": WORK}, {"name": "MODEL", "value": m.model},
        {"name": "REVISION", "value": m.revision or ""}, {"name": "WEIGHTS_ID", "value": weights_id(m)},
        {"name": "PREFIX", "value": prefix},
        {"name": "BUCKET", "value": bucket_name}, {"name": "ALLOW", "value": " ".join(ALLOW)},
        {"name": "IGNORE", "value": " ".join(IGNORE)}, {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        *([{"name": "AWS_REGION", "value": region}] if region is not None else []),
        *([{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_token_secret, "key": HF_TOKEN_KEY}}}]
          if hf_token_secret else []),
    ]
    mounts = [{"name": "work", "mountPath": WORK}]

    def container(name: str, image: str, command: list[str], args: list[str], cpu: str, memory: str) -> dict[str, Any]:
        return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command, "args": args,
                "env": env, "volumeMounts": mounts, "resources": resources(cpu, memory),
                "securityContext": container_security_context()}

    aws_cli, vllm = weights_image("aws-cli"), weights_image("vllm")
    return {
        "securityContext": pod_security_context(UID, fs_group=UID),
        "serviceAccountName": service_account,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "initContainers": [
            container("list", aws_cli, ["/bin/sh", "-c"], [LIST], "250m", "512Mi"),
            container("download", vllm, ["python3", "-c"], [DOWNLOAD], "2", "4Gi"),
        ],
        "containers": [
            container("upload", aws_cli, ["/bin/sh", "-c"],
                      ['mkdir -p /work/files && aws s3 sync /work/files "s3://$BUCKET/$PREFIX" --size-only '
                       f'--exclude ".cache/*" --no-progress && echo "$WEIGHTS_ID" | aws s3 cp - "s3://$BUCKET/$PREFIX/{WEIGHTS_COMPLETE}"'],
                      "1", "2Gi"),
        ],
        "volumes": [{"name": "work", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": names.STORAGE_CLASS_CACHE,
            "resources": {"requests": {"storage": f"{scratch}Gi"}}}}}}],
    }


def wait_for_weights(m: ModelConfig, bucket_name: pulumi.Input[str], prefix: str, region: pulumi.Input[str] | None,
                     home: str, give_up_s: int) -> dict[str, Any]:
    """The model server's init container: waits until the weights Job wrote its completion marker
    for this model's copy (`weights_id`; reading it needs s3:GetObject, which the server's read role
    has on the prefix), so the engine never starts on a partial prefix, nor on one a rerun is still
    filling for another revision. Once the marker is there it returns at once. It gives up after
    `give_up_s` (the Job's activeDeadlineSeconds: by then the Job finished or the Job controller
    failed it) and exits 1, so a failed copy shows as a restarting pod (kube-prometheus-stack's
    KubePodCrashLooping) instead of a pod in Init forever; each restart waits again."""
    env = [{"name": "BUCKET", "value": bucket_name}, {"name": "PREFIX", "value": prefix},
           {"name": "WEIGHTS_ID", "value": weights_id(m)}, {"name": "HOME", "value": home},
           *([{"name": "AWS_REGION", "value": region}] if region is not None else [])]
    return {"name": "wait-for-weights", "image": weights_image("aws-cli"), "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c"],
            "args": [f'end=$(( $(date +%s) + {give_up_s} )); '
                     f'until [ "$(aws s3 cp "s3://$BUCKET/$PREFIX/{WEIGHTS_COMPLETE}" - 2>/dev/null)" = "$WEIGHTS_ID" ]; '
                     f'do if [ "$(date +%s)" -ge "$end" ]; then echo "no $PREFIX/{WEIGHTS_COMPLETE} of $WEIGHTS_ID after '
                     f'{give_up_s} s: the weights Job failed or is still copying" >&2; exit 1; fi; sleep {WAIT_POLL_S}; done'],
            "env": env, "volumeMounts": [{"name": "home", "mountPath": home}],
            "resources": resources("50m", "128Mi", cpu_limit="250m", memory_limit="256Mi"),
            "securityContext": container_security_context()}


class WeightsJob:
    """ServiceAccount, Pod Identity role (write `prefix/` only) and the Job. Not awaited: nothing
    but the model server needs the weights, and its pods wait for them (`wait_for_weights`); the
    copy is bounded by the Job's activeDeadlineSeconds (the Job controller fails it:
    DeadlineExceeded)."""

    def __init__(self, name: str, m: ModelConfig, *, namespace: str, prefix: str, bucket: Any,
                 cluster_name: pulumi.Input[str], hf_token_secret: str | None, region: pulumi.Input[str] | None,
                 tags: dict[str, str], parent: pulumi.Resource, depends_on: list[pulumi.Resource]):
        sa = f"{m.name}-weights"
        # MODEL_CACHE_LABEL s3: the tenancy layer lets these pods (only) reach the Pod Identity agent.
        lbl = labels(sa, "model-weights", extra={WEIGHTS_OF_LABEL: m.name, names.MODEL_CACHE_LABEL: "s3"})
        child = pulumi.ResourceOptions(parent=parent)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-weights-sa", metadata=meta(sa, namespace, labels=lbl), automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on))
        self.identity = pod_identity_role(
            f"{name}-weights", cluster_name=cluster_name, namespace=namespace, service_account=sa,
            policy=policy_json(write_statements(bucket, prefix)), tags=tags, opts=child)
        deadline = job_deadline_s(m)
        spec = weights_pod_spec(m, bucket.bucket.bucket, prefix, sa, hf_token_secret, region)
        # pulumi.com/skipAwait: the provider's ready condition is a no-op (pulumi-kubernetes
        # provider/pkg/metadata/overrides.go); a first `pulumi up` no longer waits the ~10-20 min
        # copy of a large model. The timeouts keep the deadline should the annotation be dropped.
        self.job = k8s.batch.v1.Job(
            f"{name}-weights", metadata=meta(sa, namespace, labels=lbl, annotations={names.PULUMI_SKIP_AWAIT: "true"}),
            spec={"backoffLimit": 3, "activeDeadlineSeconds": deadline,
                  "template": {"metadata": {"labels": lbl}, "spec": spec}},
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[*depends_on, self.identity.association],
                                        custom_timeouts=pulumi.CustomTimeouts(create=f"{deadline}s",
                                                                              update=f"{deadline}s")))
