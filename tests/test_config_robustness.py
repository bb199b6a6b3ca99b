"""Bad input of every shape gets a ConfigError, never a crash: each section of the prod stack file,
and each key one level below, is replaced by values of the wrong type or shape."""

from __future__ import annotations

import copy
import json

import pytest

from components.config import ConfigError, validate
from tests.conftest import stack_doc

WRONG = (42, "x", [], {}, [{}], None, True, -1, [42], {"x": 1})


def raw_of(config: dict) -> dict[str, str]:
    return {k.split(":", 1)[1]: "[secret]" if isinstance(v, dict) and "secure" in v else
            v if isinstance(v, str) else json.dumps(v)
            for k, v in config.items() if k.startswith("agentic-platform:")}


def mutations():
    base = stack_doc("prod")["config"]
    for key, value in base.items():
        if not key.startswith("agentic-platform:") or (isinstance(value, dict) and "secure" in value):
            continue
        for wrong in WRONG:
            yield key, None, wrong
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for sub, _ in children:
            for wrong in WRONG:
                yield key, sub, wrong


def test_wrong_shapes_are_config_errors_with_key_paths():
    base = stack_doc("prod")["config"]
    checked = 0
    for key, sub, wrong in mutations():
        config = copy.deepcopy(base)
        if sub is None:
            config[key] = wrong
        else:
            config[key][sub] = wrong
        try:
            validate(raw_of(config), "prod")
        except ConfigError as err:
            lines = err.lines()
            assert lines and all(line.startswith("agentic-platform:") for line in lines), lines
        except Exception as exc:  # noqa: BLE001 - any other exception is the failure under test
            pytest.fail(f"{key}{'' if sub is None else f'[{sub!r}]'} = {wrong!r}: {type(exc).__name__}: {exc}")
        checked += 1
    assert checked > 500
