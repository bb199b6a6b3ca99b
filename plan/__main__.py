"""python -m plan STACK_OR_FILE [--json FILE] [--manifests DIR] [--preflight]

Runs the real program in-process under Pulumi's mock engine with the stack file's config and
reports what `pulumi up` would declare. Exit 0 planned, 1 mandatory policy violation (or failed
pre-flight), 2 invalid stack config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plan.engine import StackFileError, program_config, read_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plan", description=__doc__.split("\n\n")[1])
    parser.add_argument("stack", metavar="STACK_OR_FILE", help="stack name (reads Pulumi.<stack>.yaml) or a stack file")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the plan as JSON")
    parser.add_argument("--manifests", type=Path, metavar="DIR", help="write every Kubernetes object and Helm release")
    parser.add_argument("--preflight", action="store_true",
                        help="check GPU capacity (offerings and vCPU quotas) with your AWS credentials; no plan")
    args = parser.parse_args(argv)

    try:
        stack = read_stack(args.stack)
    except StackFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    # Validate before anything is declared: bad input creates nothing.
    from components.config import NAMESPACE, ConfigError, validate

    raw = {k.split(":", 1)[1]: v for k, v in program_config(stack).items() if k.startswith(NAMESPACE + ":")}
    try:
        config = validate(raw, stack.name)
    except ConfigError as err:
        print(f"{stack.path.name}: invalid stack config ({len(err.problems)} problem(s)):", file=sys.stderr)
        for line in err.lines():
            print(f"  {line}", file=sys.stderr)
        return 2

    if args.preflight:
        from plan.preflight import run as run_preflight

        return run_preflight(config, stack)

    from plan.analysis import analyse
    from plan.engine import run_program
    from plan.report import summary, to_json, write_manifests

    plan = run_program(stack)
    analyse(plan, config)
    print(summary(plan))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(plan), indent=1, default=str))
        print(f"\nwrote {args.json}")
    if args.manifests:
        written = Path(args.manifests)
        files = write_manifests(plan, written)
        print(f"wrote {len(files)} manifests under {written}")
    mandatory = [f for f in plan.policies if f["level"] == "mandatory"]
    if mandatory:
        print(f"\n{len(mandatory)} mandatory policy violation(s): " +
              ", ".join(sorted({f['policy'] for f in mandatory})), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
