"""Validation of notebook parameters right after papermill injects them.

papermill's ``-p`` guesses types (``nan`` — the ISO 639-3 code of Min Nan — becomes a float,
``1e3`` a float, ``null`` None). Each notebook calls these checks in the cell after its
``parameters`` cell, so a wrong value fails at once with a message that names the fix.

The runner's helpers live here too: :func:`comma_list` (``-p languages en,fr`` is a list for
every list parameter) and :func:`raw_hint` (the fix for papermill's float ``nan``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


class ParameterError(ValueError):
    """A notebook parameter has the wrong type or value."""


def is_float_nan(value: Any) -> bool:
    """Whether ``value`` is (or is a list holding) a float NaN — papermill's ``-p NAME nan``."""
    if isinstance(value, (list, tuple)):
        return any(is_float_nan(v) for v in value)
    return isinstance(value, float) and math.isnan(value)


def raw_hint(name: str) -> str:
    """The fix for a text value that papermill's ``-p`` turned into the number nan."""
    return (f"papermill's -p reads nan as a number; pass text as a raw string with "
            f"-r NAME VALUE, e.g. -r {name} nan")


def is_list_default(default: Any) -> bool:
    """Whether a parameter whose default is ``default`` takes a list (a list, or ``"all"``)."""
    return isinstance(default, (list, tuple)) or default == "all"


def comma_list(value: Any, *, item: Callable[[str], Any] = str) -> Any:
    """``"en,fr"`` → ``["en", "fr"]`` (each piece through ``item``); other values unchanged.

    A YAML list (``"[en, fr]"``), ``"all"`` and a value without a comma pass through.
    """
    if not isinstance(value, str) or "," not in value or value.lstrip().startswith("["):
        return value
    return [item(v.strip()) for v in value.split(",") if v.strip()]


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        hint = f"; {raw_hint(name)}" if is_float_nan(value) and "nan" in allowed else ""
        raise ParameterError(f"{name} must be one of {list(allowed)}, got {value!r}{hint}")
    return value


def check_number(name: str, value: Any, *, kind: type = float, low: float | None = None,
                 high: float | None = None, allow_none: bool = False) -> Any:
    """A number of ``kind`` (int or float) within ``[low, high]`` (or None if allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        noun = {"int": "an integer", "float": "a number"}.get(kind.__name__, kind.__name__)
        raise ParameterError(f"{name} must be {noun}, got {value!r}")
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
