"""The Pulumi wire format as the plan reads it: resource references and secrets in a request's or a
resource's values, and a request's inputs as plain values (references as URNs, secrets redacted)."""

from __future__ import annotations

from typing import Any

# Wire markers of the Pulumi protocol: a resource reference and a secret value.
SIG = "4dabf18193072939515e22adb298388d"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SECRET_TEXT = "[secret]"


def strip_references(value: Any, prefer_id: bool = False) -> Any:
    """Resource references -> their URN (or id), as an analyzer and the plan JSON see them; whole
    numbers back to ints (the wire's Struct carries every number as a double)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if value.get(SIG) == RESOURCE_SIG:
            return (prefer_id and value.get("id")) or value["urn"]
        return {k: strip_references(v, prefer_id) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_references(v, prefer_id) for v in value]
    return value


def _mask(value: Any) -> Any:
    """Every leaf of a secret value -> "[secret]"; the shape (map keys, list length) stays, so a
    Secret's `stringData` is still an object of the right keys in the manifests."""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items() if k != SIG}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return SECRET_TEXT


def redact(value: Any) -> Any:
    """Secret values -> "[secret]"."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            return _mask(redact(value.get("value")))
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _value(v: Any) -> Any:
    """A protobuf Value as `redact(_strip(...))` of its `json_format.MessageToDict`, in one walk (the
    inputs of every resource go through here: the generic converter was most of the cost)."""
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        out = {k: _value(x) for k, x in v.struct_value.fields.items()}
        sig = out.get(SIG)
        if sig == RESOURCE_SIG:
            return out["urn"]
        if sig == SECRET_SIG:
            return _mask(out.get("value"))
        return out
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() else n
    if kind is None or kind == "null_value":
        return None
    return getattr(v, kind)


def request_inputs(struct: Any) -> dict[str, Any]:
    """A RegisterResourceRequest's inputs: references as URNs, whole numbers as ints, secrets redacted."""
    return {k: _value(x) for k, x in struct.fields.items()}
