"""The offline plan's stack files: by path and by name, secure values as secrets (the CLI itself:
tests/test_cli.py, the slow tier)."""

from __future__ import annotations

from plan.engine import ROOT, read_stack


def test_stack_file_by_path_and_name(tmp_path):
    src = (ROOT / "Pulumi.dev.yaml").read_text()
    (tmp_path / "Pulumi.staging-eu.yaml").write_text(src)
    (tmp_path / "custom.yaml").write_text(src)
    assert read_stack(str(tmp_path / "Pulumi.staging-eu.yaml")).name == "staging-eu"
    assert read_stack(str(tmp_path / "custom.yaml")).name == "custom"
    assert read_stack("dev").name == "dev"


def test_secure_values_reach_the_program_as_secrets(tmp_path):
    sf = read_stack("dev")
    for key in sf.secret_keys:
        assert sf.config[key].startswith("mock-secret-")
