"""Validation of notebook parameters right after papermill injects them.

papermill's ``-p`` guesses types (``nan`` — the ISO 639-3 code of Min Nan — becomes a float,
``1e3`` a float, ``null`` None). Each notebook calls these checks in the cell after its
``parameters`` cell, so a wrong value fails at once with a message that names the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class ParameterError(ValueError):
    """A notebook parameter has the wrong type or value."""


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_number(name: str, value: Any, *, kind: type = float, low: float | None = None,
                 high: float | None = None, allow_none: bool = False) -> Any:
    """A number of ``kind`` (int or float) within ``[low, high]`` (or None if allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{name} must be a {kind.__name__}, got {value!r}")
    if isinstance(value, float) and math.isnan(value):  # NaN passes every comparison
        if low is not None or high is not None:
            raise ParameterError(f"{name} must be in [{low}, {high}], got nan")
        raise ParameterError(f"{name} must be a number, got nan")
    if kind is int and int(value) != value:
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = kind(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ParameterError(f"{name} must be in [{low}, {high}], got {value!r}")
    return value


def check_str(name: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value
