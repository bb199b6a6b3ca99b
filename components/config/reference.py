"""The stack config reference, generated from the schema: every key with its type, default and
description, per section, into docs/config-reference.md.

    python -m components.config.reference            # write docs/config-reference.md
    python -m components.config.reference --check    # exit 1 if the committed file is out of date
"""

from __future__ import annotations

import ipaddress
import json
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.config.base import (
    NAMESPACE,
    DnsName,
    Duration,
    FiniteDuration,
    GroupName,
    Quantity,
    RetentionPeriod,
    Section,
)
from components.config.stack import SECRET_KEYS, PlatformConfig

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"
ALIASES = {"name": DnsName, "duration": Duration, "duration (not Never)": FiniteDuration, "quantity": Quantity,
           "RBAC group": GroupName, "retention": RetentionPeriod}


def _key(name: str, field: FieldInfo) -> str:
    return field.alias or name


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type."""
    for label, alias in ALIASES.items():
        if annotation == alias:
            return label
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        return " \\| ".join(type_name(a) for a in inner) + (" or null" if len(inner) < len(args) else "")
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return "object"
    if annotation is ipaddress.IPv4Network:
        return "IPv4 CIDR"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def bounds(field: FieldInfo) -> str:
    """The field's numeric and length limits, e.g. "2 to 6", "not empty"."""
    lim = {k: v for m in field.metadata for k in ("ge", "gt", "le", "lt", "min_length", "max_length")
           if (v := getattr(m, k, None)) is not None}
    unit = " entries" if typing.get_origin(field.annotation) in (list, dict) else " characters"
    parts = []
    if "ge" in lim and "le" in lim:
        parts.append(f"{lim['ge']} to {lim['le']}")
    else:
        parts += [f"at least {lim['ge']}"] if "ge" in lim else []
        parts += [f"at most {lim['le']}"] if "le" in lim else []
    parts += [f"more than {lim['gt']}"] if "gt" in lim else []
    parts += [f"less than {lim['lt']}"] if "lt" in lim else []
    if "min_length" in lim:
        parts.append("not empty" if lim["min_length"] == 1 else f"at least {lim['min_length']}{unit}")
    parts += [f"at most {lim['max_length']}{unit}"] if "max_length" in lim else []
    return ", ".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, ipaddress.IPv4Network):
        return str(value)
    return value


def default_text(field: FieldInfo, nested: type[Section] | None) -> str:
    """The default as the stack file would spell it; "required" without one."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if nested is not None and isinstance(value, Section):
        try:
            if value == nested.model_validate({}):
                return "its keys' defaults"
        except ValueError:
            pass
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{json.dumps(_plain(value), separators=(', ', ': '))}`"


def _section_of(annotation: Any) -> tuple[type[Section] | None, str]:
    """The Section model a field holds (itself, in a list, or optional) and the key suffix ("[]")."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation, ""
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], Section):
        return args[0], "[]"
    if args and origin is not Literal:
        for a in args:
            if a is not type(None):
                found = _section_of(a)
                if found[0] is not None:
                    return found
    return None, ""


def first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def rows(model: type[Section], prefix: str) -> list[tuple[str, str, str, str]]:
    """(key path, type, default, description) of every field of `model`, nested sections after their key."""
    hints = typing.get_type_hints(model, include_extras=True)
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{_key(name, field)}"
        nested, suffix = _section_of(field.annotation)
        description = field.description or (first_paragraph(nested.__doc__) if nested else "")
        typ = type_name(hints.get(name, field.annotation))
        out.append((key, f"{typ}, {bounds(field)}" if bounds(field) else typ, default_text(field, nested), description))
        if nested is not None:
            out += rows(nested, f"{key}{suffix}.")
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text.replace("\n", " ")


def render() -> str:
    lines = ["# Stack config reference", "",
             "<!-- Generated by `python -m components.config.reference` (make docs) from the schema in",
             "     components/config/; do not edit by hand: tests/test_config_reference.py checks it is current. -->", "",
             f"Every key lives under the `{NAMESPACE}:` namespace of `Pulumi.<stack>.yaml`; keys are camelCase and "
             "unknown keys are errors. Key paths below are relative to the section; `[]` marks a list entry.", ""]
    for name, field in PlatformConfig.model_fields.items():
        key = _key(name, field)
        nested, suffix = _section_of(field.annotation)
        lines += [f"## `{key}`", ""]
        about = field.description or (first_paragraph(nested.__doc__) if nested else "")
        if about:
            lines += [about, ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|",
                  f"| `{key}` | {_cell(type_name(field.annotation))} | {default_text(field, nested)} | |"]
        if nested is not None:
            for path, typ, default, description in rows(nested, f"{key}{suffix}."):
                lines.append(f"| `{path}` | {_cell(typ)} | {_cell(default)} | {_cell(description)} |")
        lines.append("")
    lines += ["## Secrets", "", "Set with `pulumi config set --secret <key> <value>`; a secret key in plain text is an error.",
              "", "| key | what |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in SECRET_KEYS.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(OUTPUT.parents[1])} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(OUTPUT.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
