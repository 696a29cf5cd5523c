"""Checks of what a user passes, where it is passed (before any training starts).

Each raises a ``ValueError`` that names the argument, says what is allowed and shows what was
given. A number is a real number: a string (``"0.05"``) or a bool (``True``) is not one, even
where Python's ``float()`` or ``isinstance(x, int)`` would take it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any


def number(
    name: str, value: Any, allowed: str = "a finite number", ok: Callable[[float], bool] = math.isfinite
) -> float:
    """``float(value)`` if ``value`` is a real number for which ``ok`` holds; else ``"{name} must be {allowed}"``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(float(value)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def positive(name: str, value: Any, maximum: float = math.inf) -> float:
    """A finite number in ``(0, maximum]``."""
    bound = "" if maximum == math.inf else f" and <= {maximum:g}"
    return number(name, value, f"a finite number > 0{bound}", lambda x: 0 < x <= maximum and math.isfinite(x))


def non_negative(name: str, value: Any) -> float:
    """A finite number ``>= 0``."""
    return number(name, value, ">= 0 and finite", lambda x: 0 <= x < math.inf)


def integer(name: str, value: Any, minimum: int) -> int:
    """An integer ``>= minimum`` (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def choice(name: str, value: Any, allowed: Sequence[str], listed: str = "") -> str:
    """One of ``allowed``; the message lists them (or ``listed``) and suggests the closest name."""
    if isinstance(value, str) and value in allowed:
        return value
    close = difflib.get_close_matches(value, allowed, n=1) if isinstance(value, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name} must be one of {listed or list(allowed)}, got {value!r}{hint}")
