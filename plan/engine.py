"""Runs the real program (`__main__.py`) in-process under Pulumi's mock engine and records every
resource it declares. No cloud account, no Pulumi CLI, no provider plugins.

Mocked outputs (ids, ARNs, endpoints, kubeconfig, generated passwords) are placeholders: ids and
names start with `mock-`, the account is 123456789012 (the AWS documentation account)."""

from __future__ import annotations

import asyncio
import gc
import json
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from domain.yamlfile import load_yaml, read_yaml
from plan.objects import EKS_CLUSTER, EKS_CONTROL_PLANE
from plan.wire import RESOURCE_SIG, SECRET_TEXT, SIG, redact, request_inputs, strip_references

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "agentic-platform"
ACCOUNT = "123456789012"


def tune_gc() -> None:
    """Collect garbage for a planning process: the provider SDKs' classes, the program's resources
    and the plan's objects are hundreds of thousands of long-lived objects with few cycles among
    them, and CPython's default thresholds (700, 10, 10) rescan all of them a dozen times per plan
    to free a few hundred (~2 s of a prod plan). Young objects are still collected, rarely."""
    gc.set_threshold(100_000, 50, 100)


class StackFileError(Exception):
    """The stack file cannot be read (missing, not YAML, no `config:` map)."""


# ------------------------------------------------------------------------------ stack files

@dataclass
class StackFile:
    name: str
    path: Path
    config: dict[str, Any]      # "ns:key" -> value as in the YAML
    secret_keys: list[str]      # keys given as `secure:` values


def read_stack(stack_or_file: str) -> StackFile:
    """`dev` reads Pulumi.dev.yaml next to the program; a path reads that file. The stack name is
    the file name between `Pulumi.` and `.yaml`, else the file's stem."""
    path = Path(stack_or_file)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = ROOT / f"Pulumi.{stack_or_file}.yaml"
    if not path.is_file():
        raise StackFileError(f"{path}: no such stack file")
    stem = path.name
    if stem.startswith("Pulumi.") and stem.count(".") >= 2:
        name = stem[len("Pulumi."):].rsplit(".", 1)[0]
    else:
        name = path.stem
    try:
        doc = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise StackFileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise StackFileError(f"{path}: expected a top-level `config:` map")
    config, secrets = {}, []
    for key, value in (doc.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets.append(key)
            # The ciphertext cannot be decrypted here; the program gets a placeholder marked secret.
            value = f"mock-secret-{key.split(':')[-1]}"
        config[key] = value
    return StackFile(name, path, config, secrets)


def project_defaults() -> dict[str, Any]:
    """Defaults declared in Pulumi.yaml's `config:` block."""
    doc = read_yaml(ROOT / "Pulumi.yaml")
    out = {}
    for key, decl in (doc.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            out[key if ":" in key else f"{PROJECT}:{key}"] = decl["default"]
    return out


def _wire(value: Any) -> str:
    """Config values reach the program as strings; objects as JSON (as `pulumi config` does)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def program_config(stack: StackFile) -> dict[str, str]:
    merged = {**project_defaults(), **stack.config}
    return {k: _wire(v) for k, v in merged.items()}


# ------------------------------------------------------------------------------------ mocks

class RecordingMonitor(MockMonitor):
    """The stock mock monitor, plus: resource references in inputs are turned into URNs before the
    monitor rehydrates them (which otherwise crosses event loops), every request is kept, and the
    outputs echo the request's own wire values (echo_outputs)."""

    def __init__(self, mocks: PlanMocks):
        super().__init__(mocks)
        self.requests: list[tuple[Any, str]] = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        if RESOURCE_SIG.encode() in request.object.SerializeToString():   # the marker is a string value
            req = type(request)()
            req.CopyFrom(request)
            req.object.Clear()
            req.object.update(strip_references(json_format.MessageToDict(request.object)))
            request = req
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        # As the stock MockMonitor.RegisterResource (pulumi 3.272 runtime/mocks.py): the inputs as
        # Python values, the mocks' state kept for the policies, the state sent back as outputs
        # (echo_outputs). No transforms: the mock monitor runs none and PlanMocks reads none.
        _ensure_event_loop()   # deserializing may build secrets and resource references
        inputs = rpc.deserialize_properties(request.object)
        id_, state = self.mocks.new_resource(MockResourceArgs(
            typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
        self.requests.append((request, urn))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=echo_outputs(request.object, inputs, state))


def echo_outputs(wire_inputs: struct_pb2.Struct, inputs: dict[str, Any], state: dict[str, Any]) -> struct_pb2.Struct:
    """The state as the wire's outputs. A property the mocks echo unchanged (the very object they
    were given) is copied from the request as it came: it is already serialized, and the stock path
    (serialize_properties of the deserialized value) gives the SDK the same values, each pass over a
    big spec costing as much as the SDK's own. Only what the mocks add or change is serialized.
    tests/test_engine_echo.py checks both give the program the same outputs. The mocks must not change
    an input in place (`out = dict(inputs)`, then new values): a value changed in place would be
    echoed as it came."""
    out = struct_pb2.Struct()
    added = {}
    for key, value in state.items():
        if key in inputs and value is inputs[key]:
            out.fields[key].CopyFrom(wire_inputs.fields[key])
        else:
            added[key] = value
    if added:
        out.MergeFrom(_sync_await(rpc.serialize_properties(added, {})))
    return out


def _arn(service: str, resource: str, region: str = "us-west-2") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


class PlanMocks(pulumi.runtime.Mocks):
    """Plausible outputs for what the program reads back from resources and invokes."""

    def __init__(self, region: str):
        self.region = region
        self.monitor: RecordingMonitor | None = None

    def _fake_child(self, parent_type: str, parent_name: str, typ: str, rid: str, state: dict) -> dict:
        """Register a child a remote component would create (mocks run none), so references to it
        (e.g. `cluster.eks_cluster.name`) resolve."""
        urn = f"urn:pulumi:{settings.get_stack()}::{settings.get_project()}::{parent_type}${typ}::{parent_name}"
        assert self.monitor is not None
        self.monitor.resources[urn] = MockMonitor.ResourceRegistration(urn, rid, state)
        return {SIG: RESOURCE_SIG, "urn": urn, "id": rid}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        rid = f"mock-{name}"
        out = dict(inputs)
        if typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            kind = typ.rsplit(":", 1)[-1].lower()
            out.setdefault("arn", _arn(service, f"{kind}/{name}", self.region))
            out.setdefault("tagsAll", inputs.get("tags") or {})
        if typ == "aws:iam/role:Role":
            out.setdefault("name", f"mock-{name}")
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{out['name']}"
        elif typ in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
            bucket = inputs.get("bucket") or f"mock-{name}"
            out.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}", bucketDomainName=f"{bucket}.s3.amazonaws.com")
            rid = bucket
        elif typ == "aws:kms/key:Key":
            out.update(keyId=rid, arn=_arn("kms", f"key/{rid}", self.region))
        elif typ == "aws:sqs/queue:Queue":
            qname = inputs.get("name") or f"mock-{name}"
            out.update(name=qname, arn=_arn("sqs", qname, self.region),
                       url=f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{qname}")
            rid = out["url"]
        elif typ == "aws:elasticache/replicationGroup:ReplicationGroup":
            rg = inputs.get("replicationGroupId") or f"mock-{name}"
            out.update(primaryEndpointAddress=f"master.{rg}.mock.usw2.cache.amazonaws.com",
                       readerEndpointAddress=f"replica.{rg}.mock.usw2.cache.amazonaws.com")
        elif typ in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"):
            ident = inputs.get("identifier") or inputs.get("clusterIdentifier") or f"mock-{name}"
            host = f"{ident}.mock.{self.region}.rds.amazonaws.com"
            out.update(address=host, endpoint=f"{host}:5432", port=inputs.get("port", 5432))
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            out.update(latestVersion=1, defaultVersion=1)
        elif typ in ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString"):
            out["result"] = f"mock-generated-{name}"
        elif typ == "random:index/randomId:RandomId":
            out.update(hex="0123456789abcdef"[:2 * int(inputs.get("byteLength") or 8)], b64Std="ASNFZ4mrze8=",
                       b64Url="ASNFZ4mrze8", dec="81985529216486895")
        elif typ == "random:index/randomBytes:RandomBytes":
            length = int(inputs.get("length") or 1)
            out.update(hex="ab" * length, base64=f"mock-base64-{length}-bytes")
        elif typ == "kubernetes:helm.sh/v3:Release":
            out["status"] = {"name": inputs.get("name", name), "namespace": inputs.get("namespace", "default"),
                             "status": "deployed", "version": 1}
        elif typ == EKS_CLUSTER:
            cname = inputs.get("name") or f"mock-{name}"
            endpoint = f"https://MOCK{cname.upper().replace('-', '')}.gr7.{self.region}.eks.amazonaws.com"
            kubeconfig = {"apiVersion": "v1", "kind": "Config",
                          "clusters": [{"name": cname, "cluster": {"server": endpoint,
                                                                   "certificate-authority-data": "bW9jaw=="}}],
                          "contexts": [{"name": cname, "context": {"cluster": cname, "user": cname}}],
                          "current-context": cname,
                          "users": [{"name": cname, "user": {"exec": {
                              "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                              "args": ["eks", "get-token", "--cluster-name", cname]}}}]}
            state = {"name": cname, "arn": _arn("eks", f"cluster/{cname}", self.region), "endpoint": endpoint,
                     "version": inputs.get("version"), "certificateAuthority": {"data": "bW9jaw=="},
                     "vpcConfig": {"clusterSecurityGroupId": f"sg-mock-{cname}"}}
            out.update(kubeconfig=kubeconfig, kubeconfigJson=json.dumps(kubeconfig),
                       eksCluster=self._fake_child(typ, name, EKS_CONTROL_PLANE, cname, state),
                       clusterSecurityGroupId=f"sg-mock-{cname}")
        return rid, out

    def call(self, args: pulumi.runtime.MockCallArgs):
        token, a = args.token, dict(args.args)
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{c}" for c in "abcdef"]
            return {"names": names, "zoneIds": [f"usw2-az{i + 1}" for i in range(len(names))], "id": self.region}
        if token == "aws:index/getRegion:getRegion":
            return {"region": self.region, "name": self.region, "id": self.region,
                    "endpoint": f"ec2.{self.region}.amazonaws.com"}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/mock", "userId": "MOCK", "id": ACCOUNT}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:eks/getAddonVersion:getAddonVersion":
            return {"version": f"mock-default-for-{a.get('kubernetesVersion')}", "addonName": a.get("addonName"),
                    "id": a.get("addonName")}
        return {}


# ------------------------------------------------------------------------------------- run

@dataclass
class Resource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    protect: bool
    dependencies: list[str]
    inputs: dict[str, Any]      # secrets redacted
    provider: str | None = None
    # The resource options that shape deploy and destroy, as the engine receives them (see `options`).
    options: dict[str, Any] = field(default_factory=dict)


def options(req: Any) -> dict[str, Any]:
    """The options of a RegisterResourceRequest that shape `pulumi up` and `pulumi destroy`:
    customTimeouts (create/update/delete, only those set), deleteBeforeReplace and retainOnDelete
    (None when the program left them unset), ignoreChanges, replaceOnChanges, deletedWith,
    dependsOn: the explicit dependencies, i.e. `dependencies` less those the SDK derived from
    inputs (`propertyDependencies`; pulumi/runtime/resource.py prepare_resource unions the two),
    and inputDependencies: which input waits for which resources (what orders the deploy too)."""
    timeouts = req.customTimeouts if req.HasField("customTimeouts") else None
    from_inputs = {u for deps in req.propertyDependencies.values() for u in deps.urns}
    return {
        "customTimeouts": {k: v for k in ("create", "update", "delete") if (v := getattr(timeouts, k, ""))},
        "deleteBeforeReplace": bool(req.deleteBeforeReplace) if req.deleteBeforeReplaceDefined else None,
        "retainOnDelete": bool(req.retainOnDelete) if req.HasField("retainOnDelete") else None,
        "ignoreChanges": list(req.ignoreChanges),
        "replaceOnChanges": list(req.replaceOnChanges),
        "deletedWith": req.deletedWith or None,
        "dependsOn": sorted(set(req.dependencies) - from_inputs),
        "inputDependencies": {k: sorted(set(v.urns)) for k, v in sorted(req.propertyDependencies.items()) if v.urns},
    }


@dataclass
class Plan:
    project: str
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]      # secrets redacted
    monitor: RecordingMonitor
    policies: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    region: str = "us-west-2"    # the stack's aws:region (the mocks answer for it; the cost table prices it)
    objects: list[Any] = field(default_factory=list)   # plan.objects.K8sObject: declared and rendered

    def by_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.type == typ]


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def reset(config: dict[str, str], secret_keys: list[str], stack: str, region: str) -> PlanMocks:
    """A clean Pulumi runtime for one program: settings, config and mocks are process-global."""
    # For every resource, the SDK walks the Python stack and turns each frame into a file URI
    # (pulumi/runtime/resource.py `_get_stack_trace`, sent as RegisterResourceRequest.stackTrace and
    # .sourcePosition, where the engine's diagnostics point): ~25 frames a resource, a tenth of the
    # program's run. Nothing in the plan reads either field, so under the plan they stay empty.
    sdk_resource._get_stack_trace = _no_stack_trace
    settings.reset_options()
    pulumi.runtime.set_all_config(config, secret_keys)
    mocks = PlanMocks(region)
    mocks.monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=mocks.monitor)
    return mocks


def execute(body: Callable[[], None], *, stack: str, config: dict[str, str], secret_keys: list[str] | None = None,
            region: str = "us-west-2") -> Plan:
    """Run `body` (a Pulumi program) under the plan's mocks with `config`; return what it declared.
    The offline plan runs `__main__.py` through this; unit tests run one component through it."""
    mocks = reset(config, secret_keys or [], stack, region)
    exported: dict[str, Any] = {}

    async def collect() -> None:
        for key, value in settings.get_root_resource().outputs.items():
            out = pulumi.Output.from_input(value)
            value = await out.future(with_unknowns=True)
            secret = await out.is_secret()
            exported[key] = SECRET_TEXT if secret else value

    def program():
        body()
        # Await every export: an apply that raises must fail the plan, not pass silently.
        return pulumi.Output.from_input(asyncio.ensure_future(collect()))

    pulumi.runtime.test(program)()
    assert mocks.monitor is not None
    resources = []
    for req, urn in mocks.monitor.requests:
        inputs = request_inputs(req.object)
        parent = req.parent or None
        if parent and parent.split("::")[-2].endswith("pulumi:pulumi:Stack"):
            parent = None
        resources.append(Resource(
            urn=urn, type=req.type, name=req.name, parent=parent, custom=bool(req.custom),
            protect=bool(req.protect), dependencies=sorted(set(req.dependencies)), inputs=inputs,
            provider=req.provider or None, options=options(req)))
    return Plan(PROJECT, stack, resources, redact(strip_references(exported)), mocks.monitor, region=region)


def run_program(stack: StackFile) -> Plan:
    """The offline plan: run __main__.py under mocks with the stack file's config."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return execute(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"),
                   stack=stack.name, config=program_config(stack), secret_keys=stack.secret_keys,
                   region=str(stack.config.get("aws:region", "us-west-2")))
