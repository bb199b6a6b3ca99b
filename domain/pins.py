"""Readers of the platform's pins, `platform/*.yaml`: charts (and their vendored archives) and images.
No ranges and no `latest` there; each file is read once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from domain.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_DIR = ROOT / "platform"


@cache
def platform_data(file: str) -> Any:
    """A YAML data file of `platform/` (chart pins, images, instance facts), read once."""
    return read_yaml(PLATFORM_DIR / file)


def chart_pin(key: str) -> dict[str, str]:
    """`platform/charts.yaml` entry: chart, version and (for classic repositories) repo: the upstream
    the vendored archive was built from (provenance, and where `make charts` bumps it)."""
    pins = platform_data("charts.yaml")
    if key not in pins:
        raise KeyError(f"chart '{key}' is not pinned in platform/charts.yaml")
    return pins[key]


def chart_archive(key: str) -> str:
    """The vendored archive of a pinned chart, relative to the project (Pulumi runs the program in
    the project directory): `pulumi up` installs byte for byte what the plan rendered and checked,
    and needs no chart repository (docs/charts.md)."""
    lock = platform_data("charts/lock.yaml")
    entry = (lock.get("charts") or lock).get(key)
    if not entry:
        raise KeyError(f"chart '{key}' is not vendored: run `make charts CHARTS={key}` (platform/charts/lock.yaml)")
    return f"platform/charts/{entry['archive']}"


def image_pin(key: str) -> dict[str, str]:
    """A pin from platform/images.yaml."""
    pins = platform_data("images.yaml")
    if key not in pins:
        raise KeyError(f"image '{key}' is not pinned in platform/images.yaml")
    return pins[key]
