"""Schema admission: would the API server accept each object's shape?

- Built-in kinds: the OpenAPI schemas of the cluster's Kubernetes version, strict (unknown fields
  rejected, as `kubectl apply --validate=strict` and server-side field validation `Strict` do), from
  the `kubernetes-validate` package's schema set. Validators are built once per (version, kind): the
  package's own `validate()` re-reads its 2 MB definitions file on every call.
- Custom resources: the `openAPIV3Schema` of the CRD the platform itself installs (declared or
  rendered by a chart), so the schema always matches the installed CRD version. The conversion from
  the Kubernetes structural dialect to JSON Schema follows the apiserver's rules
  (k8s.io/apiextensions-apiserver pkg/apiserver/schema: `nullable`, `x-kubernetes-int-or-string`,
  `x-kubernetes-preserve-unknown-fields`, pruning of unknown fields -> rejected here, as with Strict
  field validation). CEL rules (`x-kubernetes-validations`) are not evaluated.
A custom resource whose CRD the platform does not install is a finding: the API server would answer
"no matches for kind"."""

from __future__ import annotations

import copy
import json
import re
import sys
from functools import cache
from importlib import metadata
from importlib import resources as importlib_resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from plan.cache import Memo, digest
from plan.objects import K8sObject

_STRICT_DIR = "kubernetes-json-schema/v{version}-local-strict"


@cache
def _schema_dir(version: str) -> str:
    """The newest schema set of kubernetes-validate not newer than `version` (e.g. 1.34)."""
    base = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    have = sorted((tuple(int(x) for x in p.name[1:].split("-")[0].split(".")[:2]), p.name.split("-")[0][1:])
                  for p in base.iterdir() if p.name.endswith("-local-strict"))
    want = tuple(int(x) for x in version.split(".")[:2])
    usable = [name for key, name in have if key <= want]
    if not usable:
        raise ValueError(f"no Kubernetes schemas for {version}")
    return _STRICT_DIR.format(version=usable[-1])


@cache
def _definitions(version: str) -> Resource:
    path = importlib_resources.files("kubernetes_validate").joinpath(f"{_schema_dir(version)}/_definitions.json")
    return Resource.from_contents(json.loads(path.read_text()))


@cache
def builtin_validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    """The strict validator of a built-in kind, or None when Kubernetes `version` has no such kind."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = importlib_resources.files("kubernetes_validate").joinpath(f"{_schema_dir(version)}/{kind.lower()}-{api}.json")
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ (_definitions(version) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def structural_to_json_schema(node: Any) -> Any:
    """A CRD's openAPIV3Schema (Kubernetes structural dialect) -> JSON Schema draft 2020-12."""
    if isinstance(node, list):
        return [structural_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: structural_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, (dict, list)):
            out[key] = structural_to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [structural_to_json_schema(v) for v in value]
        elif key == "x-kubernetes-validations":
            continue   # CEL: not evaluated offline
        else:
            out[key] = copy.deepcopy(value)
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out and "oneOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for bound_flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound_flag), bool):   # OpenAPI 3.0 boolean form -> 2020-12 numeric form
            flag = out.pop(bound_flag)
            if flag and bound in out:
                out[bound_flag] = out.pop(bound)
    if "pattern" in out:
        # Go RE2 allows inline flags after '^' ('^(?i)x'); Python wants them first.
        match = re.match(r"^\^(\(\?[aiLmsux]+\))(.*)$", out["pattern"], re.S)
        if match:
            out["pattern"] = match.group(1) + "^" + match.group(2)
        try:
            re.compile(out["pattern"])
        except re.error:
            out.pop("pattern")   # an RE2-only construct: not enforceable with Python's re
    # Pruning: the apiserver drops unknown fields of a structural schema; Strict field validation
    # (kubectl --validate=strict, server-side apply from Pulumi) turns that into an error.
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
            and out.get("type", "object") in ("object", ["object", "null"])):
        out["additionalProperties"] = False
    return out


def crd_schemas(objects: list[K8sObject]) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """(apiVersion, kind) -> (its JSON Schema, its digest) for every served version of every CRD among
    `objects`; the schema is converted (structural_to_json_schema) on first use."""
    out = {}
    for o in objects:
        if o.kind != "CustomResourceDefinition":
            continue
        spec = o.manifest.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            raw = ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
            out[(f"{group}/{v['name']}", kind)] = (raw, digest(("crd", raw)))
    return out


def crd_validator(api_version: str, kind: str, raw: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """The validator of one served version of a CRD, from its openAPIV3Schema."""
    schema = structural_to_json_schema(raw)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"const": api_version}
    props["kind"] = {"const": kind}
    props["metadata"] = {"type": "object"}
    return jsonschema.Draft202012Validator(schema)


def _message(err: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "(root)"
    return f"{where}: {err.message[:300]}"


# An object's verdict depends only on the object and its schema (a built-in kind's: the
# kubernetes-validate schema set of the version; a custom one's: its CRD's openAPIV3Schema): kept
# across plans, as validating every object with jsonschema is most of admission's time.
_VERDICTS = Memo("schema", code=(sys.modules[__name__],),
                 versions=(metadata.version("jsonschema"), metadata.version("kubernetes-validate")))


def check(objects: list[K8sObject], kube_version: str) -> list[tuple[K8sObject, str]]:
    """(object, problem) for every object the API server would reject by schema."""
    custom = crd_schemas(objects)
    validators: dict[tuple[str, str], jsonschema.Draft202012Validator | None] = {}

    def validator(key: tuple[str, str]) -> jsonschema.Draft202012Validator | None:
        if key not in validators:
            validators[key] = crd_validator(*key, custom[key][0]) if key in custom else builtin_validator(kube_version, *key)
        return validators[key]

    def verdict(o: K8sObject, key: tuple[str, str]) -> str:
        err = jsonschema.exceptions.best_match(validator(key).iter_errors(o.manifest))  # type: ignore[union-attr]
        return "" if err is None else _message(err)

    problems = []
    for o in objects:
        key = (o.api_version, o.kind)
        if key not in custom and builtin_validator(kube_version, *key) is None:
            problems.append((o, f"no matches for kind \"{o.kind}\" in version \"{o.api_version}\": neither Kubernetes "
                                f"{kube_version} nor a CRD the platform installs serves it"))
            continue
        schema_id = custom[key][1] if key in custom else ("builtin", _schema_dir(kube_version), *key)
        found = _VERDICTS.text((schema_id, o.manifest), lambda o=o, key=key: verdict(o, key))
        if found:
            problems.append((o, found))
    return problems
