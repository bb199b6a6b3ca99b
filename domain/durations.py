"""`platform/durations.yaml`: how long the steps of a deploy take and the await windows the
program sets. One reader for both users: the components' custom timeouts (`timeout_seconds`) and
the rehearsal (plan/rehearsal/facts.py), so an estimate and the timeout it is checked against come
from the same file. Read once per process."""

from __future__ import annotations

from typing import Any

from domain.pins import platform_data


def durations() -> dict[str, Any]:
    """The whole file (cached by `platform_data`)."""
    return platform_data("durations.yaml")


def timeout_seconds(key: str) -> int:
    """An await window of the `timeouts` section, in seconds."""
    return int(durations()["timeouts"][key]["seconds"])


def timeout_window(*keys: str) -> str:
    """The sum of `timeouts` windows as a customTimeouts value in whole minutes ("80m")."""
    return f"{sum(timeout_seconds(k) for k in keys) // 60}m"
