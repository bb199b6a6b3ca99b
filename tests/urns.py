"""Resource names are a contract: every URN a stack declares, in tests/golden/urns-<stack>.txt.

A changed URN is a new resource to Pulumi: `pulumi up` creates the new one and deletes the old (a
database, a bucket, a cluster). tests/test_urns.py compares each stack's plan with its golden file;
`make golden` (python -m tests.urns dev prod) writes them after a deliberate rename."""

from __future__ import annotations

import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def golden_path(stack: str) -> Path:
    return GOLDEN / f"urns-{stack}.txt"


def urns_of(plan) -> list[str]:
    return sorted({r.urn for r in plan.resources})


def main(stacks: list[str]) -> int:
    from plan.engine import read_stack, run_program

    GOLDEN.mkdir(exist_ok=True)
    for stack in stacks or ["dev", "prod"]:
        urns = urns_of(run_program(read_stack(stack)))
        golden_path(stack).write_text("".join(u + "\n" for u in urns))
        print(f"{golden_path(stack)}: {len(urns)} URNs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
