"""Reading YAML: the one loader for the platform's data files (`platform/*.yaml`), the stack files
and the manifests the plan reads.

libyaml's parser (`CSafeLoader`) when PyYAML was built with it, else the pure-Python one: the same
safe constructor, so the same documents (every file under platform/ loads equal with both,
tests/test_yamlfile.py), about 10x faster -- the pure-Python loader was ~0.1 s of every plan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """One YAML document, safely (`yaml.safe_load`, with libyaml when present)."""
    return yaml.load(text, Loader=SAFE_LOADER)


def load_yaml_all(text: str) -> Iterator[Any]:
    """Every document of a YAML stream, safely."""
    return yaml.load_all(text, Loader=SAFE_LOADER)


def read_yaml(path: Path) -> Any:
    """A UTF-8 YAML file's one document."""
    return load_yaml(path.read_text(encoding="utf-8"))
