"""What the tenant gateway tests share (tests/test_tenant_isolation.py, tests/test_agentgateway_limits.py):
`evaluate`, a reader of exactly the CEL expression forms the gateway renders, with agentgateway
v1.4.1's documented semantics (schema/cel-functions.md: `merge` lets the argument's keys win;
`toJson`/`json`; `sha256.encode` a hex digest; an evaluation error does not match a `Require` rule).
It reads the rendered string, so a rendering that let the client's value win (the maps merged the
other way round) or let a claim-less request through fails the tests. And the stack configs they
change (`prod_raw`, `kgw_raw`, `example_config`)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml

from components.config import validate
from plan.engine import ROOT
from tests.conftest import EXAMPLES, kgateway_only_doc

POLICY = "kubernetes:agentgateway.dev/v1alpha1:AgentgatewayPolicy"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
KEY = "5e" * 32


class CelError(Exception):
    pass


class _Error:
    """An evaluation error as a value (CEL: `false && error` is false, anything else with it an error)."""


def evaluate(expr: str, *, body: dict | None = None, claims: dict | None = None) -> Any:
    """Evaluates the expression forms the gateway renders: calls toJson/json/sha256.encode, `.merge`,
    map and list literals, string literals, `+`, `&&`, `in`, `==`, `jwt[...]`, `request.body`."""
    pattern = r'\.merge|"(?:[^"\\]|\\.)*"|&&|==|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[()\[\]{},:+]'
    tokens = re.findall(pattern, expr)
    assert not re.sub(pattern, "", expr).strip(), f"unreadable: {expr}"
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(want: str | None = None) -> str:
        nonlocal pos
        tok = tokens[pos]
        if want is not None and tok != want:
            raise AssertionError(f"expected {want!r}, got {tok!r} in {expr}")
        pos += 1
        return tok

    def args() -> list[Any]:
        take("(")
        out = [conj()]
        while peek() == ",":
            take(",")
            out.append(conj())
        take(")")
        return out

    def atom() -> Any:
        tok = take()
        if tok.startswith('"'):
            value: Any = json.loads(tok)
        elif tok == "toJson":
            value = json.dumps(args()[0])
        elif tok == "json":
            value = json.loads(args()[0])
        elif tok == "sha256.encode":
            value = hashlib.sha256(args()[0].encode()).hexdigest()
        elif tok == "request.body":
            value = json.dumps(body)
        elif tok == "jwt":
            value = claims if claims is not None else {}
        elif tok == "{":
            value = {}
            while peek() != "}":
                k = conj()
                take(":")
                value[k] = conj()
                if peek() == ",":
                    take(",")
            take("}")
        elif tok == "[":
            value = []
            while peek() != "]":
                value.append(conj())
                if peek() == ",":
                    take(",")
            take("]")
        else:
            raise AssertionError(f"unknown token {tok!r} in {expr}")
        while peek() in ("[", ".merge"):
            if take() == "[":
                key = conj()
                take("]")
                value = value[key] if isinstance(value, dict) and key in value else _Error()
            else:
                (other,) = args()
                value = {**value, **other}     # documented: the argument's keys win
        return value

    def binary(left: Any, right: Any, op) -> Any:
        return _Error() if isinstance(left, _Error) or isinstance(right, _Error) else op(left, right)

    def plus() -> Any:
        value = atom()
        while peek() == "+":
            take("+")
            value = binary(value, atom(), lambda a, b: a + b)
        return value

    def comparison() -> Any:
        value = plus()
        if peek() == "in":
            take("in")
            return binary(value, plus(), lambda a, b: a in b)
        if peek() == "==":
            take("==")
            return binary(value, plus(), lambda a, b: a == b)
        return value

    def conj() -> Any:
        value = comparison()
        while peek() == "&&":
            take("&&")
            right = comparison()
            value = False if value is False or right is False else binary(value, right, lambda a, b: a and b)
        return value

    result = conj()
    assert pos == len(tokens), f"trailing tokens in {expr}"
    if isinstance(result, _Error):
        raise CelError(expr)
    return result


def require_matches(expr: str, claims: dict) -> bool:
    """A `Require` rule: it matches only when the expression evaluates to true (an error does not match)."""
    try:
        return evaluate(expr, claims=claims) is True
    except CelError:
        return False


def example_config(name: str = "tenants"):
    doc = yaml.safe_load((EXAMPLES / f"Pulumi.{name}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()
           if k.startswith("agentic-platform:")}
    return validate(raw, name)

def raw_of(doc: dict, **gateway_changes) -> dict[str, str]:
    doc = doc["config"]
    doc["agentic-platform:gateway"] = {**doc["agentic-platform:gateway"], **gateway_changes}
    return {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()
            if k.startswith("agentic-platform:")}


def prod_raw(**gateway_changes) -> dict[str, str]:
    return raw_of(yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text()), **gateway_changes)


def kgw_raw(**gateway_changes) -> dict[str, str]:
    """Prod served by kgateway alone (tests/conftest.py kgateway_only_doc)."""
    return raw_of(kgateway_only_doc(), **gateway_changes)


