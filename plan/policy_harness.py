"""Run the policy pack in-process on what a mocked Pulumi program registered -- no CLI, no server.

Interface (used by the offline plan, ``python -m plan``)::

    evaluate(requests, states, environment, policies=None) -> list[dict]

* ``requests``: ``[(RegisterResourceRequest, urn), ...]`` in registration order, as recorded by the
  test kit's ``SafeMonitor`` (resource references already downgraded to URNs; downgrading again is
  harmless). The ``pulumi:pulumi:Stack`` root may be included; it matches no rule.
* ``states``: ``{urn: state_dict}``, the mocked outputs (``monitor.resources[urn].state``). A URN
  missing here falls back to its inputs.
* ``environment``: ``dev`` | ``staging`` | ``prod`` -> ``policies/config.<environment>.json``
  (``ValueError`` for any other name).
* ``policies``: the rules to run (default ``ALL_POLICIES``); config entries for other rules are ignored.
* returns ``[{"policy": name, "level": "mandatory"|"advisory", "urn": urn-or-None, "message": str}]``:
  resource-rule findings carry the analyzed resource's URN, stack-rule findings the URN the rule
  reported (or None). ``message`` is the rule's specific message (its description when it has none).

Each request goes through pulumi-policy's own ``_PolicyAnalyzerServicer`` (``Configure``, ``Analyze``
per resource with its inputs and ``options.protect``, then ``AnalyzeStack`` over the outputs with
parents, dependencies and property dependencies), so deserialization, the unknown-value proxy,
enforcement levels, config and ``not_applicable`` behave as under ``pulumi preview``.
``_PolicyAnalyzerServicer`` is private API: pulumi-policy is pinned (~=1.21.0) for that reason.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
from pulumi_policy.policy import _PolicyAnalyzerServicer

import policies
from plan.cache import Memo, digest
from policies import (
    ALL_POLICIES,
    PACK_ENFORCEMENT_LEVEL,
    PACK_NAME,
    PACK_VERSION,
    load_policy_config,
)
from policies.common import reads

_SIG = "4dabf18193072939515e22adb298388d"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_LEVEL_TO_PROTO = {e: getattr(proto, e.name) for e in EnforcementLevel}
_LEVEL_BY_NAME = {e.value: e for e in EnforcementLevel}


def downgrade(value: Any, prefer_id: bool = False) -> Any:
    """Replace serialized resource references by their URN (or id): what analyzers receive."""
    if isinstance(value, Mapping):
        if value.get(_SIG) == _RESOURCE_SIG:
            return (prefer_id and value.get("id")) or value.get("urn")
        return {k: downgrade(v, prefer_id) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [downgrade(v, prefer_id) for v in value]
    return value


def _struct(value: Mapping) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(json.loads(json.dumps(value, default=str)))
    return s


def _struct_of_json(value: Mapping) -> struct_pb2.Struct:
    """`_struct` of a value that is JSON already (no second round trip through the encoder)."""
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _downgraded(properties: struct_pb2.Struct) -> struct_pb2.Struct:
    """A request's properties with resource references downgraded; the request's own Struct when it
    holds none (the plan's monitor downgrades them before recording: the usual case), as a
    Struct -> dict -> Struct round trip gives back the same Struct."""
    if _RESOURCE_SIG.encode() not in properties.SerializeToString():
        return properties
    return _struct(downgrade(json_format.MessageToDict(properties)))


def _level(value: Any, policy_name: str) -> EnforcementLevel:
    if isinstance(value, EnforcementLevel):
        return value
    try:
        return _LEVEL_BY_NAME[str(value)]
    except KeyError:
        raise ValueError(f"policy config for {policy_name!r}: unknown enforcementLevel {value!r}") from None


def policy_config_request(config: Mapping, policies: Iterable) -> proto.ConfigureAnalyzerRequest:
    """Translate a ``--policy-pack-config`` JSON object into the CLI's ``Configure`` request.

    Like the CLI: an ``all`` key sets the level of every rule; a rule's value is a level string or an
    object with an optional ``enforcementLevel`` and the rule's config properties.
    """
    policies = list(policies)
    pc: dict[str, proto.PolicyConfig] = {}
    all_level = config.get("all")
    if isinstance(all_level, Mapping):
        all_level = all_level.get("enforcementLevel")
    for pol in policies:
        entry = config.get(pol.name)
        if entry is None and all_level is None:
            continue
        props: dict = {}
        level = all_level
        if isinstance(entry, Mapping):
            props = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            level = entry.get("enforcementLevel", level)
        elif entry is not None:
            level = entry
        if level is None:
            level = pol.enforcement_level or PACK_ENFORCEMENT_LEVEL
        item = proto.PolicyConfig(enforcementLevel=_LEVEL_TO_PROTO[_level(level, pol.name)])
        item.properties.update(json.loads(json.dumps(props)))
        pc[pol.name] = item
    return proto.ConfigureAnalyzerRequest(policyConfig=pc)


def _message(diag) -> str:
    text = diag.message
    if diag.description and text.startswith(diag.description):
        text = text[len(diag.description):].lstrip("\n")
    return text or diag.description


def _finding(diag, default_urn: str | None, obj: str | None = None) -> dict:
    return {
        "policy": diag.policyName,
        "level": "advisory" if diag.enforcementLevel == proto.ADVISORY else "mandatory",
        "urn": diag.urn or default_urn,
        "object": obj,   # a rendered object's namespace/Kind/name (its urn is its release's); else None
        "message": _message(diag),
    }


def _analyzer(policies: list, config: Mapping) -> _PolicyAnalyzerServicer:
    """pulumi-policy's own analyzer servicer running `policies`, configured as the CLI would."""
    svc = _PolicyAnalyzerServicer(PACK_NAME, PACK_VERSION, policies, PACK_ENFORCEMENT_LEVEL)
    svc.Configure(policy_config_request(config, policies), None)
    return svc


class _ResourceRules:
    """Per resource type, an analyzer with the resource rules that read that type (all of them but
    the TypedResourcePolicy rules of other types, which report nothing there): the servicer
    deserializes a resource's properties once per rule it runs, so a Deployment is no longer
    unpacked for the S3 and KMS rules. None: no rule reads the type."""

    def __init__(self, policies: Iterable, config: Mapping):
        self.policies = [p for p in policies if isinstance(p, ResourceValidationPolicy)]
        self.config = config
        self._by_type: dict[str, _PolicyAnalyzerServicer | None] = {}
        self._by_rules: dict[tuple[str, ...], _PolicyAnalyzerServicer] = {}

    def of(self, resource_type: str) -> _PolicyAnalyzerServicer | None:
        if resource_type not in self._by_type:
            rules = [p for p in self.policies if reads(p, resource_type)]
            key = tuple(p.name for p in rules)
            if rules and key not in self._by_rules:
                self._by_rules[key] = _analyzer(rules, self.config)
            self._by_type[resource_type] = self._by_rules[key] if rules else None
        return self._by_type[resource_type]


def evaluate(requests: Iterable, states: Mapping[str, Mapping], environment: str,
             policies: list | None = None) -> list[dict]:
    """Run ``policies`` (default ``ALL_POLICIES``) with ``environment``'s config; see the module doc."""
    policies = list(ALL_POLICIES if policies is None else policies)
    config = load_policy_config(environment)
    resource_rules = _ResourceRules(policies, config)
    stack_policies = [p for p in policies if not isinstance(p, ResourceValidationPolicy)]

    questions: list[_Question] = []
    stack_inputs: list[tuple[str, tuple, Callable[[], proto.AnalyzerResource]]] = []
    for request, urn in requests:
        if request.type == "pulumi:pulumi:Stack":
            continue
        properties = _downgraded(request.object)
        opts = proto.AnalyzerResourceOptions(parent=request.parent, protect=request.protect)
        rules = resource_rules.of(request.type)
        if rules is not None:
            analyzed = proto.AnalyzeRequest(type=request.type, properties=properties, urn=urn, name=request.name,
                                            options=opts)
            questions.append(_Question(rules, analyzed.SerializeToString(deterministic=True),
                                       lambda analyzed=analyzed: analyzed, urn, None))
        if stack_policies:
            stack_inputs.append(_stack_input(request, urn, states.get(urn), properties, opts))

    findings = _resource_findings(questions, policies, config)
    if stack_policies:
        findings += _analyze_stack(stack_policies, config, sorted(stack_inputs, key=lambda r: r[0]))
    return findings


def _stack_input(request: Any, urn: str, state: Mapping | None, properties: struct_pb2.Struct,
                 opts: proto.AnalyzerResourceOptions) -> tuple[str, tuple, Callable[[], proto.AnalyzerResource]]:
    """(urn, what the resource's AnalyzerResource is made of, how to make it): the stack rules read
    its outputs (the mocked state, its inputs when it has none), parent, options and dependencies."""
    # Dependencies are sets (the SDK sends them in whatever order it gathered them): sorted.
    deps = sorted(request.dependencies)
    prop_deps = {k: sorted(v.urns) for k, v in sorted(request.propertyDependencies.items())}
    outputs_key = (json.dumps(state, default=str, sort_keys=True) if state is not None
                   else properties.SerializeToString(deterministic=True))

    def build() -> proto.AnalyzerResource:
        outputs = (downgrade(json.loads(json.dumps(state, default=str)), True) if state is not None
                   else json_format.MessageToDict(properties))
        return proto.AnalyzerResource(
            type=request.type, properties=_struct_of_json(outputs or {}), urn=urn, name=request.name,
            parent=request.parent, options=opts, dependencies=deps,
            propertyDependencies={k: proto.AnalyzerPropertyDependencies(urns=v) for k, v in prop_deps.items()})

    return urn, (request.type, urn, request.name, request.parent, request.protect, deps, prop_deps, outputs_key), build


# The pack's own modules: a stack verdict is kept across plans (plan.cache) keyed by their source,
# pulumi-policy's version, the config and everything the request is made of (each resource's state as
# canonical JSON, its parent, options and dependencies; resources in URN order, so a repeat plan asks
# the same question whatever order the program registered them in).
_RULE_MODULES = tuple(importlib.import_module(f"policies.{m.name}") for m in pkgutil.iter_modules(policies.__path__)
                      if m.name != "__main__")   # (that one starts the pack's gRPC server)
_STACK_VERDICTS = Memo("policies", code=(policies, *_RULE_MODULES, sys.modules[__name__]),
                       versions=(metadata.version("pulumi-policy"),))


def _analyze_stack(rules: list, config: Mapping, resources: list[tuple[str, tuple, Callable]]) -> list[dict]:
    """The stack rules' findings over every resource (AnalyzeStack, resources in URN order); the
    pack's rules are memoized, keyed by what the resources are made of (built only on a miss)."""
    def run() -> str:
        request = proto.AnalyzeStackRequest(resources=[build() for _urn, _key, build in resources])
        response = _analyzer(rules, config).AnalyzeStack(request, None)
        return json.dumps([_finding(d, None) for d in response.diagnostics])

    if not all(any(r is p for p in ALL_POLICIES) for r in rules):
        return json.loads(run())   # ad-hoc rules (tests): their code is not in the key
    key = (sorted(r.name for r in rules), config, digest([k for _urn, k, _build in resources]))
    return json.loads(_STACK_VERDICTS.text(key, run))


@dataclass(frozen=True)
class _Question:
    """One resource analyzed by the resource rules of its type."""
    rules: _PolicyAnalyzerServicer
    key: bytes                                  # all the analysis depends on (the request, or its inputs)
    request: Callable[[], proto.AnalyzeRequest]  # built only when the verdict is not stored
    urn: str
    ref: str | None                             # a rendered object's name for the findings' `object`


# The resource rules' verdicts, kept like the stack's (same code and version in the key): one entry
# per plan's question (the rules, the config, every resource's key, sorted: the program registers
# resources in no fixed order) holding each resource's findings by its key, so a repeat plan reads one
# file and reports them in its own order, as a cold plan would.
_RESOURCE_VERDICTS = Memo("policies-resources", code=_STACK_VERDICTS.code, versions=_STACK_VERDICTS.versions)


def _resource_findings(questions: list[_Question], policies: list, config: Mapping) -> list[dict]:
    keys = [hashlib.sha256(q.key + (q.ref or "").encode()).hexdigest() for q in questions]

    def run() -> dict[str, list[dict]]:
        return {key: [_finding(d, q.urn, q.ref) for d in q.rules.Analyze(q.request(), None).diagnostics]
                for key, q in zip(keys, questions, strict=True)}

    if not all(any(r is p for p in ALL_POLICIES) for r in policies):
        by_key = run()   # ad-hoc rules (tests): their code is not in the key
    else:
        by_key = json.loads(_RESOURCE_VERDICTS.text(
            (sorted(p.name for p in policies), config, sorted(set(keys))), lambda: json.dumps(run())))
    return [f for key in keys for f in by_key[key]]


def type_token(api_version: str, kind: str) -> str:
    """The pulumi-kubernetes type token of a Kubernetes object: `apps/v1` Deployment ->
    `kubernetes:apps/v1:Deployment`, `v1` Pod -> `kubernetes:core/v1:Pod`."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def evaluate_objects(objects: Iterable[tuple[Mapping, str, str]], environment: str,
                     policies: list | None = None) -> list[dict]:
    """Run the resource rules over Kubernetes objects that no Pulumi resource declares: the objects a
    Helm release renders. Under `pulumi preview` a `helm.sh/v3:Release` is one opaque resource, so
    CrossGuard never sees its chart's pods; the offline plan renders them and puts each object
    through the same rules, as if it were a typed resource of its kind. `objects`: (manifest, urn to
    report, object name for the finding's `object`); stack rules (which correlate declared
    resources) do not run here."""
    policies = list(ALL_POLICIES if policies is None else policies)
    config = load_policy_config(environment)
    resource_rules = _ResourceRules(policies, config)
    questions: list[_Question] = []
    for manifest, urn, ref in objects:
        typ = type_token(str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
        rules = resource_rules.of(typ)
        if rules is None:
            continue   # no resource rule reads it (CRDs, RBAC, ConfigMaps): skip the costly proxying
        name = str((manifest.get("metadata") or {}).get("name", ""))
        questions.append(_Question(rules, digest((typ, urn, name, manifest)).encode(),
                                   lambda typ=typ, manifest=manifest, urn=urn, name=name: proto.AnalyzeRequest(
                                       type=typ, properties=_struct(manifest), urn=urn, name=name,
                                       options=proto.AnalyzerResourceOptions()), urn, ref))
    return _resource_findings(questions, policies, config)


def has_mandatory(findings: Iterable[Mapping]) -> bool:
    return any(f["level"] == "mandatory" for f in findings)


__all__ = ["ALL_POLICIES", "downgrade", "evaluate", "evaluate_objects", "has_mandatory", "load_policy_config",
           "policy_config_request"]
