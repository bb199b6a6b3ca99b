"""CrossGuard policy pack of agentic-platform, as an importable package.

``ALL_POLICIES`` is the rule list; ``__main__.py`` only wraps it in a ``PolicyPack`` (whose constructor
starts a gRPC server and never returns, so it must not run on import). ``load_policy_config`` reads
``policies/config.<environment>.json``, the same file ``pulumi preview --policy-pack-config`` takes.
"""

from __future__ import annotations

import json
from pathlib import Path

from pulumi_policy import EnforcementLevel

from . import aws_rules, eks_rules, k8s_rules, stack_rules

PACK_NAME = "agentic-platform-policies"
PACK_VERSION = "0.1.0"
PACK_ENFORCEMENT_LEVEL = EnforcementLevel.MANDATORY
POLICY_DIR = Path(__file__).resolve().parent
ENVIRONMENTS = ("dev", "staging", "prod")

# eks_rules first: the pack's rule order (and so the order of findings) as when they were in aws_rules.
ALL_POLICIES = [*eks_rules.POLICIES, *aws_rules.POLICIES, *k8s_rules.POLICIES, *stack_rules.POLICIES]
POLICY_NAMES = [p.name for p in ALL_POLICIES]


def config_path(environment: str) -> Path:
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r}; expected one of {', '.join(ENVIRONMENTS)}")
    return POLICY_DIR / f"config.{environment}.json"


def load_policy_config(environment: str) -> dict:
    """The policy-pack config of an environment: ``{policy-name: level | {"enforcementLevel": ..., ...}}``."""
    with config_path(environment).open(encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise TypeError(f"{config_path(environment)}: expected a JSON object")
    return config


__all__ = [
    "ALL_POLICIES",
    "ENVIRONMENTS",
    "PACK_ENFORCEMENT_LEVEL",
    "PACK_NAME",
    "PACK_VERSION",
    "POLICY_NAMES",
    "load_policy_config",
]
