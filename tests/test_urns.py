"""Resource names are a contract: the URNs of each stack's plan are exactly tests/golden/urns-<stack>.txt."""

from __future__ import annotations

import difflib

from tests.urns import golden_path, urns_of

ADVICE = """\
The URNs of stack {stack} differ from {golden}.
A changed URN (a renamed resource, a new parent, a changed type) is a new resource to Pulumi: `pulumi up`
creates the new one and DELETES the old one, with its data. If a resource was renamed or moved, keep it
with `opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="<old name>")])` (or parent=/type= in the
Alias), or write an upgrade note in docs/ telling operators what is replaced. Then, deliberately:
`make golden`, and commit the golden file with the change.
{diff}"""


def test_urns_match_the_golden_file(any_plan):
    stack = any_plan.stack
    golden = golden_path(stack)
    assert golden.is_file(), f"{golden} is missing: run `make golden`"
    want = golden.read_text().splitlines()
    got = urns_of(any_plan)
    if got != want:
        diff = "\n".join(difflib.unified_diff(want, got, f"golden {stack}", f"plan {stack}", lineterm="", n=0))
        raise AssertionError(ADVICE.format(stack=stack, golden=golden.relative_to(golden.parents[2]), diff=diff))


def test_golden_files_are_sorted_and_unique():
    for stack in ("dev", "prod"):
        lines = golden_path(stack).read_text().splitlines()
        assert lines == sorted(set(lines)) and all(x.startswith("urn:pulumi:") for x in lines), stack
