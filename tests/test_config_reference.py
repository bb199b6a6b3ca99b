"""docs/config-reference.md is generated from the schema (components/config/reference.py) and current."""

from __future__ import annotations

from components.config import reference
from components.config.stack import PlatformConfig


def test_committed_reference_is_current():
    assert reference.OUTPUT.read_text(encoding="utf-8") == reference.render(), (
        "docs/config-reference.md is out of date: run `make docs` (python -m components.config.reference)")


def test_every_key_is_described():
    undescribed = []
    for name, field in PlatformConfig.model_fields.items():
        key = field.alias or name
        nested, suffix = reference._section_of(field.annotation)
        if nested is None:
            undescribed += [] if field.description else [key]
            continue
        undescribed += [path for path, _type, _default, description in reference.rows(nested, f"{key}{suffix}.")
                        if not description]
    assert not undescribed, f"fields without a description (pydantic Field(description=...)): {undescribed}"


def test_reference_lists_every_section_with_type_and_default():
    text = reference.render()
    for name, field in PlatformConfig.model_fields.items():
        assert f"## `{field.alias or name}`" in text
    assert "| `network.availabilityZones` | integer, 2 to 6 | `3` |" in text
    assert "| `gateway.jwt.issuer` | string | required |" in text
    assert "| `cluster.name` | name or null | none | defaults to agentic-<stack> |" in text


def test_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "config-reference.md"
    stale.write_text("# stale\n")
    monkeypatch.setattr(reference, "OUTPUT", stale)
    assert reference.main(["--check"]) == 1
    stale.write_text(reference.render())
    assert reference.main(["--check"]) == 0
