"""python -m plan STACK_OR_FILE [--json FILE] [--manifests DIR] [--preflight]

Runs the real program in-process under Pulumi's mock engine with the stack file's config and
reports what `pulumi up` would declare, every object it puts on the cluster (Helm releases rendered
by real Helm) and their admission. Exit 0 planned, 1 a mandatory policy violation, an object the
cluster would reject, a chart that does not render (or a failed pre-flight), 2 invalid stack
config, 3 no Helm binary."""

# ruff: noqa: E402 (the collector is switched off before the imports: see gc.disable() below)
from __future__ import annotations

import gc

# A plan is one short process: the SDKs' classes (imported first), the program's resources and the
# plan's objects are hundreds of thousands of long-lived objects with few reference cycles among
# them, so the cyclic collector only rescans them, ~0.2-0.3 s of the prod plan's CPU, to free next
# to nothing (peak RSS 266 MB with or without it, measured). Reference counting frees the rest.
# (Test workers plan many stacks in one process: they keep a collector, plan.engine.tune_gc; so
# only the CLI turns it off, not an import of this module.)
if __name__ == "__main__":
    gc.disable()

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
        # The stack file's `secure:` keys: a secret key given in plain text is a config error.
        config = validate(raw, stack.name, secret_keys=[k.split(":", 1)[1] for k in stack.secret_keys])
    except ConfigError as err:
        print(f"{stack.path.name}: invalid stack config ({len(err.problems)} problem(s)):", file=sys.stderr)
        for line in err.lines():
            print(f"  {line}", file=sys.stderr)
        return 2

    if args.preflight:
        from plan.preflight import run as run_preflight

        return run_preflight(config, stack)

    # (imported here, after validation and the pre-flight branch: bad input exits 2 without loading them)
    from plan.analysis import analyse
    from plan.engine import run_program
    from plan.render import HelmMissingError, RenderError, helm_version
    from plan.report import summary, to_json, write_manifests

    try:
        helm_version()   # before anything runs: without Helm nothing is planned or written
    except HelmMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    plan = run_program(stack)
    try:
        analyse(plan, config)
    except RenderError as err:   # a chart that cannot render with these values fails `pulumi up` too
        print(f"error: {err}", file=sys.stderr)
        return 1
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
    rejected = plan.extras.get("admission") or []
    if mandatory:
        print(f"\n{len(mandatory)} mandatory policy violation(s): " +
              ", ".join(sorted({f['policy'] for f in mandatory})), file=sys.stderr)
    if rejected:
        # Admission rejections, denied connections and mandatory rehearsal hazards: each fails the deploy.
        print(f"\n{len(rejected)} finding(s) that would fail the deploy or the destroy: " +
              ", ".join(sorted({f['check'] for f in rejected})), file=sys.stderr)
    return 1 if mandatory or rejected else 0


if __name__ == "__main__":
    code = main()
    gc.freeze()   # the process ends here: no final collection pass over every object at exit
    sys.exit(code)
