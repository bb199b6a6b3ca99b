"""Units: Kubernetes quantities and durations as numbers. The one parser every layer uses."""

from __future__ import annotations

import re
from typing import Any

QUANTITY_UNITS = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
                  "E": 1e18, "Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40, "Pi": 2.0 ** 50,
                  "Ei": 2.0 ** 60}
_QUANTITY = re.compile(r"^([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
GIB = 2 ** 30


def quantity(value: Any) -> float:
    """A Kubernetes resource.Quantity as a number: "500m" -> 0.5, "2Gi" -> 2147483648, 4 -> 4."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return float(match.group(1)) * QUANTITY_UNITS[match.group(2) or ""]


def duration_seconds(text: str) -> int:
    """A Go-style duration of s/m/h parts ("1h30m") in seconds; `Never` and "" are 0."""
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", text))
