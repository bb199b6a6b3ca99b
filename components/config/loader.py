"""The loader: raw `agentic-platform:*` strings -> a validated `PlatformConfig`, or one `ConfigError`
with every problem; and the stack's secrets as Pulumi secret Outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from components.config.base import NAMESPACE, ConfigError, Problem
from components.config.paths import is_string_field, path, salvage, walk_problems
from components.config.rules import CROSS_CHECKS
from components.config.stack import SECRET_KEYS, SECRET_REQUIRED, PlatformConfig
from components.names import max_cluster_name_length


def validate(raw: dict[str, str], stack: str, secret_keys: Iterable[str] | None = None) -> PlatformConfig:
    """Validate the raw `agentic-platform:*` values (strings, as Pulumi hands them over).

    `raw` maps the key below the namespace (e.g. "network") to its string value. `secret_keys`
    are the keys (below the namespace) the stack holds encrypted (`secure:`); when given, a key of
    SECRET_KEYS present in plain text is an error. Raises ConfigError with every problem found."""
    fields = {f.alias or n: f for n, f in PlatformConfig.model_fields.items()}
    problems = list(_key_problems(raw, set(fields), secret_keys))
    values: dict[str, Any] = {}
    for alias, field in fields.items():
        if alias not in raw:
            if field.is_required():
                problems.append((alias, "is required"))
            continue
        value, found = _section(alias, field, raw[alias])
        problems.extend(found)
        if value is not _INVALID:
            values[alias] = value
    if problems:
        raise ConfigError(problems)
    cfg = _with_cluster_name(PlatformConfig.model_validate(values), stack)
    for check in CROSS_CHECKS:
        problems.extend(check(cfg))
    for key, required in SECRET_REQUIRED.items():
        if required(cfg) and key not in raw:
            problems.append((key, f"is required ({SECRET_KEYS[key]}): pulumi config set --secret {key} <value>"))
    if problems:
        raise ConfigError(problems)
    return cfg


_INVALID = object()


def _key_problems(raw: dict[str, str], sections: set[str], secret_keys: Iterable[str] | None) -> Iterator[Problem]:
    """Unknown keys, and secret keys held in plain text."""
    known = sections | set(SECRET_KEYS)
    for key in sorted(set(raw) - known):
        yield key, f"unknown key; known keys are {', '.join(sorted(known))}"
    if secret_keys is not None:
        encrypted = set(secret_keys)
        for key in sorted(k for k in SECRET_KEYS if k in raw and k not in encrypted):
            yield key, (f"is plain text in the stack file ({SECRET_KEYS[key]}): set it encrypted with "
                        f"`pulumi config set --secret {key} <value>` (the file then holds `secure: ...`)")


def _section(alias: str, field: FieldInfo, text: str) -> tuple[Any, list[Problem]]:
    """One section from its string value: (the validated value, or _INVALID; its problems)."""
    value: Any = text
    if not is_string_field(field.annotation):
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = text
    try:
        parsed = TypeAdapter(field.annotation).validate_python(value)
    except ValidationError as err:
        problems = [(path([alias, *e["loc"]]), _message(e)) for e in err.errors()]
        return _INVALID, problems + list(salvage(field.annotation, value, alias))
    return parsed, list(walk_problems(parsed, alias))


def _message(error: Any) -> str:
    """A pydantic error as the line's message."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "is required"
    if isinstance(error.get("input"), (str, int, float, bool)):
        return f"{error['msg']} (got {error['input']!r})"
    return error["msg"]


def _with_cluster_name(cfg: PlatformConfig, stack: str) -> PlatformConfig:
    """cluster.name defaults to agentic-<stack>, cut to the longest name every derived AWS name fits."""
    if cfg.cluster.name is not None:
        return cfg
    default = f"agentic-{stack}".lower()
    default = re.sub(r"[^a-z0-9-]", "-", default)[:max_cluster_name_length()].rstrip("-")
    return cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"name": default})})


def raw_from_pulumi() -> dict[str, str]:
    """Every `agentic-platform:*` value the Pulumi runtime was given, as strings."""
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = NAMESPACE + ":"
    # Secret keys count by presence only: their (decrypted) values never enter validation.
    return {k[len(prefix):]: ("[secret]" if k[len(prefix):] in SECRET_KEYS else v)
            for k, v in merged.items() if k.startswith(prefix)}


def secret_keys_from_pulumi() -> set[str]:
    """The `agentic-platform:*` keys the Pulumi runtime holds as secrets (`secure:` in the stack
    file), below the namespace. The language host passes them with the config
    (RunRequest.configSecretKeys, or PULUMI_CONFIG_SECRET_KEYS)."""
    prefix = NAMESPACE + ":"
    keys = set(runtime_config.get_config_secret_keys_env())
    keys |= {k for k in {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
             if runtime_config.is_config_secret(k)}
    return {k[len(prefix):] for k in keys if k.startswith(prefix)}


def load_config() -> PlatformConfig:
    """Read and validate the stack's config. Raises ConfigError."""
    return validate(raw_from_pulumi(), pulumi.get_stack(), secret_keys=secret_keys_from_pulumi())


def load_secrets() -> dict[str, Any]:
    """The stack's secret keys as Pulumi secret Outputs (None where unset)."""
    conf = pulumi.Config(NAMESPACE)
    return {key: conf.get_secret(key) for key in SECRET_KEYS}
