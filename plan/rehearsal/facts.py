"""The rehearsal's constants: Pulumi's and Helm's defaults, hazards. Its data, platform/durations.yaml,
is read by domain/durations.py, the reader the components' timeouts use too."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from plan.objects import EKS_ADDON, EKS_NODE_GROUP

MANDATORY, ADVISORY = "mandatory", "advisory"
GPU = "nvidia.com/gpu"
NODEGROUP = EKS_NODE_GROUP
ADDON = EKS_ADDON
NODEPOOL_KINDS = {("karpenter.sh", "NodePool"), ("karpenter.k8s.aws", "EC2NodeClass"), ("karpenter.sh", "NodeClaim")}
# Goals for the first deploy, by environment (the design's: prod within 20 minutes).
GOAL_MINUTES = {"prod": 20}

# pulumi-kubernetes await defaults (provider/pkg/await: deployment.go DefaultDeploymentTimeoutMins,
# statefulset.go, daemonset.go, job.go, pod.go, service.go DefaultServiceTimeoutMins, ingress.go: 10
# minutes each; awaiters.go untilCoreV1PersistentVolumeClaimReady: 5 minutes, and with
# WaitForFirstConsumer it only waits for Pending). `customTimeouts.create` or the annotation
# `pulumi.com/timeoutSeconds` override them; `pulumi.com/skipAwait: "true"` skips the wait
# (provider/pkg/await/await.go, metadata.SkipAwaitLogic).
PULUMI_AWAIT_S = {"Deployment": 600, "StatefulSet": 600, "DaemonSet": 600, "Job": 600, "Pod": 600,
                  "Service": 600, "Ingress": 600, "PersistentVolumeClaim": 300}
# helm.sh/v3 Release: `timeout` defaults to 300 s (pulumi-kubernetes provider/pkg/provider/
# helm_release.go defaultTimeoutSeconds); `client.Wait = !skipAwait`, `WaitForJobs` only when asked,
# and `atomic` rolls the release back when the wait times out. Helm waits for hooks regardless.
HELM_DEFAULT_TIMEOUT_S = 300
HOOK_JOB_RUN_S = 10
MAX_LEVER_STEPS = 12     # the longest steps of the critical path each lever round considers

# API groups Kubernetes serves itself (kubectl api-resources, 1.34): anything else needs a CRD.
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io", "networking.k8s.io",
    "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io", "coordination.k8s.io",
    "scheduling.k8s.io", "node.k8s.io", "discovery.k8s.io", "certificates.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "apiregistration.k8s.io", "resource.k8s.io", "authentication.k8s.io",
    "authorization.k8s.io", "internal.apiserver.k8s.io", "storagemigration.k8s.io",
})
# Groups EKS itself installs CRDs for (the VPC resource controller, the VPC CNI).
EKS_GROUPS = frozenset({"vpcresources.k8s.aws", "crd.k8s.amazonaws.com", "networking.k8s.aws"})
# Plural resource names of the built-in kinds webhook rules name (kubectl api-resources).
PLURALS = {"Endpoints": "endpoints", "Ingress": "ingresses", "IngressClass": "ingressclasses",
           "NetworkPolicy": "networkpolicies", "PodSecurityPolicy": "podsecuritypolicies",
           "StorageClass": "storageclasses", "PriorityClass": "priorityclasses", "RuntimeClass": "runtimeclasses"}


def hazard(cls: str, level: str, message: str, resources: Iterable[str] = (), objects: Iterable[str] = ()) -> dict[str, Any]:
    return {"class": cls, "level": level, "resources": sorted(set(resources)), "objects": sorted(set(objects)),
            "message": message}


def seconds(text: Any) -> int | None:
    """A Pulumi custom timeout ("3830s", "10m", "1h30m") in seconds."""
    if text in (None, ""):
        return None
    total, matched = 0.0, False
    for value, unit in re.findall(r"([0-9.]+)\s*(h|m|s|ms)?", str(text)):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "": 1}[unit or ""]
        matched = True
    return int(total) if matched else None


def minutes(s: float) -> float:
    return round(s / 60, 1)
