"""Pulumi mocks that record what a program registers, for policy tests (from shared/notes/testkit_example.py).

``fresh_mocks()`` resets Pulumi's process-global state and installs a ``SafeMonitor`` that records
``(RegisterResourceRequest, urn)`` with resource references downgraded to URNs -- the exact input of
``policies.harness.evaluate``. Mocked ids are ``<resource name>-id``.
"""

from __future__ import annotations

import json

import pulumi
from google.protobuf import json_format
from pulumi.runtime import settings
from pulumi.runtime.mocks import MockMonitor

from policies.harness import downgrade

_RES = "5cf8f73096256a8f31e491e813e4eb8e"


class SafeMonitor(MockMonitor):
    """Avoids 'attached to a different loop' errors; records the wire requests."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.requests = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        if _RES in json_format.MessageToJson(request.object):
            req = type(request)()
            req.CopyFrom(request)
            req.object.Clear()
            req.object.update(downgrade(json_format.MessageToDict(request.object)))
            request = req
        resp = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.requests.append((request, resp.urn))
        return resp

    def states(self) -> dict:
        return {urn: reg.state for urn, reg in self.resources.items()}


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.monitor = None

    def new_resource(self, args):
        out = dict(args.inputs)
        if args.typ.startswith("aws:"):
            out.setdefault("arn", f"arn:aws:x::123456789012:{args.name}")
        if args.typ == "eks:index:Cluster":
            kc = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []}
            out.update(kubeconfig=kc, kubeconfigJson=json.dumps(kc))
        return f"{args.name}-id", out

    def call(self, args):
        return {"accountId": "123456789012"} if args.token.endswith("getCallerIdentity") else {}


def fresh_mocks(config=None, project="demo", stack="dev") -> Mocks:
    settings.reset_options()
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v)
                                   for k, v in (config or {}).items()}, [])
    m = Mocks()
    m.monitor = SafeMonitor(m)
    pulumi.runtime.set_mocks(m, project=project, stack=stack, preview=False, monitor=m.monitor)
    return m


def run_program(build, **kwargs) -> SafeMonitor:
    """Run ``build()`` under fresh mocks and wait for every registration."""
    m = fresh_mocks(**kwargs)

    @pulumi.runtime.test
    def _run():
        build()
        return pulumi.Output.from_input(None)

    _run()
    return m.monitor
