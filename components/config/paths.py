"""The key-path machinery: pydantic locations as stack-file key paths, and every section's own
`problems()` run over a validated (or partly validated) value."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from components.config.base import Problem, Section


def path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def walk_problems(value: Any, prefix: str) -> Iterator[Problem]:
    """Run `problems()` on every Section in a validated value, prefixing the paths."""
    if isinstance(value, Section):
        for rel, message in value.problems():
            yield (f"{prefix}.{rel}" if not rel.startswith("[") else f"{prefix}{rel}") if rel else prefix, message
        for name, field in type(value).model_fields.items():
            yield from walk_problems(getattr(value, name), f"{prefix}.{field.alias or name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from walk_problems(item, f"{prefix}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from walk_problems(item, f"{prefix}.{k}")


def salvage(annotation: Any, value: Any, prefix: str) -> Iterator[Problem]:
    """A section failed to validate: still run the rules of its sub-sections that did validate,
    so a wrong key in one place does not hide a rule broken elsewhere."""
    if not (isinstance(annotation, type) and issubclass(annotation, Section) and isinstance(value, dict)):
        return
    for name, field in annotation.model_fields.items():
        key = field.alias or name
        if key not in value:
            continue
        try:
            sub = TypeAdapter(field.annotation).validate_python(value[key])
        except (ValidationError, TypeError):
            yield from salvage(field.annotation, value[key], f"{prefix}.{key}")
            continue
        yield from walk_problems(sub, f"{prefix}.{key}")


def is_string_field(annotation: Any) -> bool:
    if annotation is str:
        return True
    return typing.get_origin(annotation) is Literal and all(isinstance(a, str) for a in typing.get_args(annotation))
