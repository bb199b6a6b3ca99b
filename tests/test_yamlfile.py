"""The one YAML loader (domain/yamlfile.py): libyaml's parser where PyYAML has it, the same documents
as the pure-Python safe loader for every data file the program and the plan read with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from domain.yamlfile import SAFE_LOADER, load_yaml, load_yaml_all, read_yaml

PLATFORM = Path(__file__).resolve().parent.parent / "platform"
DATA_FILES = sorted([*PLATFORM.glob("*.yaml"), PLATFORM / "charts" / "lock.yaml"])


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: str(p.relative_to(PLATFORM)))
def test_a_data_file_reads_as_the_pure_python_safe_loader_reads_it(path):
    assert read_yaml(path) == yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)


def test_libyaml_is_used_when_pyyaml_has_it():
    assert SAFE_LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def test_it_is_a_safe_loader():
    with pytest.raises(yaml.constructor.ConstructorError):
        load_yaml("!!python/object/apply:os.system ['true']")
    assert list(load_yaml_all("a: 1\n---\n- b\n")) == [{"a": 1}, ["b"]]
