"""Checks of what a user passes, where it is passed (before any training starts).

Each raises a ``ValueError`` that names the argument, says what is allowed and shows what was
given; a mistyped name gets the closest allowed one first (``did you mean 'lets_sam'?``), in Python
(:func:`choice`) and on the command line (:class:`SuggestingParser`).

A number is a real number: a string (``"0.05"``) or a bool (``True``) is not one, even
where Python's ``float()`` or ``isinstance(x, int)`` would take it.
"""

from __future__ import annotations

import argparse
import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
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


def closest(value: Any, allowed: Iterable[str]) -> str | None:
    """The name of ``allowed`` closest to ``value`` (a likely typo's intended name), or None if none is close."""
    close = difflib.get_close_matches(value, list(allowed), n=1) if isinstance(value, str) else []
    return close[0] if close else None


def choice(name: str, value: Any, allowed: Sequence[str], listed: str = "") -> str:
    """One of ``allowed``. Otherwise the message is one short line with the closest name first
    (``optim 'lets_sma': did you mean 'lets_sam'?``) and the list of ``allowed`` (or ``listed``) on the next;
    without a close name, one line with the list."""
    if isinstance(value, str) and value in allowed:
        return value
    full = f"{name} must be one of {listed or list(allowed)}, got {value!r}"
    suggestion = closest(value, allowed)
    raise ValueError(f"{name} {value!r}: did you mean {suggestion!r}?\n{full}" if suggestion else full)


def unknown_choice(value: Any, allowed: Sequence[Any], shown: int = 12) -> str:
    """The command-line form of :func:`choice`'s message, for argparse: the closest name first, then the names
    themselves if there are at most ``shown``, else how many there are and where they are listed (``--help``)."""
    names = [str(getattr(name, "value", name)) for name in allowed]
    listed = ", ".join(names) if len(names) <= shown else f"its {len(names)} names (--help lists them)"
    suggestion = closest(str(value), names)
    hint = f"did you mean {suggestion!r}? " if suggestion else ""
    return f"{hint}{value!r} is not one of {listed}"


class SuggestingParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose "invalid choice" error is :func:`unknown_choice`'s one short line (the closest
    name first) instead of argparse's ``invalid choice: ... (choose from <every name>)``."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, unknown_choice(value, list(action.choices)))
