"""What the policy gate tests share (tests/test_policy_gate*.py): a copy of the prod plan's recorded
requests and states that can be broken in one place (`Recording`), the resources they pick out of it,
and the findings of one rule (`flagged`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from plan.engine import Plan
from plan.policy_harness import evaluate

BUCKET = "aws:s3/bucket:Bucket"
KMS_KEY = "aws:kms/key:Key"
RDS = "aws:rds/instance:Instance"
ELASTICACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
QUOTA = "kubernetes:core/v1:ResourceQuota"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
GPU = "nvidia.com/gpu"


class Recording:
    """A copy of a plan's recorded requests and states that can be broken without touching the plan.

    ``edit`` copies the request protobuf (``CopyFrom``) and applies the same change to its inputs
    (``object``, what resource rules read) and to its mocked state (what stack rules read)."""

    def __init__(self, plan: Plan):
        self.requests: list[tuple[Any, str]] = list(plan.monitor.requests)
        self.states: dict[str, Any] = {urn: reg.state for urn, reg in plan.monitor.resources.items()}
        self._inputs: dict[str, dict] = {}

    def urns(self, typ: str) -> list[str]:
        return [urn for req, urn in self.requests if req.type == typ]

    def request(self, urn: str):
        return next(req for req, u in self.requests if u == urn)

    def inputs(self, urn: str) -> dict:
        """The request's inputs as a dict (a cached copy: change them with `edit`)."""
        if urn not in self._inputs:
            self._inputs[urn] = json_format.MessageToDict(self.request(urn).object)
        return self._inputs[urn]

    def edit(self, urn: str, change: Callable[[dict], None] | None = None, *, protect: bool | None = None) -> None:
        i = next(i for i, (_, u) in enumerate(self.requests) if u == urn)
        old = self.requests[i][0]
        req = type(old)()
        req.CopyFrom(old)
        if change is not None:
            props = json_format.MessageToDict(old.object)
            change(props)
            req.object.Clear()
            req.object.update(props)
            state = copy.deepcopy(self.states[urn]) if urn in self.states else \
                json_format.MessageToDict(old.object)
            change(state)
            self.states[urn] = state
        if protect is not None:
            req.protect = protect
        self.requests[i] = (req, urn)
        self._inputs.pop(urn, None)

    def drop(self, urn: str) -> None:
        self.requests = [(r, u) for r, u in self.requests if u != urn]

    def run(self, *policies, env: str = "prod") -> list[dict]:
        return evaluate(self.requests, self.states, env, list(policies))

    def meta(self, urn: str, key: str) -> str:
        return self.inputs(urn)["metadata"][key]


def flagged(findings: list[dict], policy: str, level: str = "mandatory") -> set[str]:
    found = [f for f in findings if f["policy"] == policy]
    assert all(f["level"] == level for f in found), found
    assert all(f["message"] and not f["message"].startswith("can't run") for f in found), found
    return {f["urn"] for f in found}


def companions(rec: Recording, typ: str, bucket_urn: str) -> list[str]:
    """Companion resources whose `bucket` input depends on the bucket (how a real preview links them)."""
    return [urn for req, urn in rec.requests if req.type == typ
            and bucket_urn in req.propertyDependencies["bucket"].urns]


def pod_spec(props: dict) -> dict:
    return props["spec"]["template"]["spec"]


def model_deployments(rec: Recording) -> list[str]:
    return [u for u in rec.urns(DEPLOYMENT)
            if any(GPU in c.get("resources", {}).get("requests", {}) for c in pod_spec(rec.inputs(u))["containers"])]



def owned(rec: Recording, typ: str, ns: str, pick: Callable[[dict], bool] = lambda p: True) -> list[str]:
    return [u for u in rec.urns(typ) if rec.meta(u, "namespace") == ns and pick(rec.inputs(u))]


def is_default_deny(props: dict) -> bool:
    spec = props.get("spec", {})
    return not spec.get("podSelector") and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"} \
        and not spec.get("ingress") and not spec.get("egress")
