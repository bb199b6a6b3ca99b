"""Stack variations for the first-deploy tests (tests/test_first_up*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from components.config import NAMESPACE, ConfigError, validate
from plan.engine import ROOT, Plan, program_config, read_stack, run_program
from tests.conftest import write_stack

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EKS = "eks:index:Cluster"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYER = "arn:aws:iam::111122223333:role/PulumiDeployer"



def problems_of(doc: dict[str, Any], tmp_path: Path, name: str = "test", secret_keys: bool = True) -> list[str]:
    """The config problems of a stack document (the way the offline plan validates it)."""
    sf = read_stack(str(write_stack(tmp_path, doc, name)))
    raw = {k.split(":", 1)[1]: v for k, v in program_config(sf).items() if k.startswith(NAMESPACE + ":")}
    try:
        validate(raw, sf.name, secret_keys=[k.split(":", 1)[1] for k in sf.secret_keys] if secret_keys else None)
    except ConfigError as err:
        return err.lines()
    return []


def plan_exit(doc: dict[str, Any], tmp_path: Path, name: str = "test") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plan", str(write_stack(tmp_path, doc, name))], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def plan_doc(doc: dict[str, Any], tmp_path: Path, name: str = "test") -> Plan:
    return run_program(read_stack(str(write_stack(tmp_path, doc, name))))


def cluster(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["config"]["agentic-platform:cluster"]
