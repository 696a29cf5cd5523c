"""Options of the rules and the controllers, declared once where each is implemented.

A perturbation rule (:mod:`lets_hf.perturbation`) or a radius controller (:mod:`lets_hf.radius`)
lists its command-line options in a class attribute ``options``, a tuple of :class:`Option`::

    class ASAM(PerturbationRule):
        name, label, paper = "asam", "ASAM", "Kwon et al., ICML 2021"
        options = (Option("asam_xi", float, "ASAM's xi in T = |theta| + xi.", arg="xi"),)

        def __init__(self, xi: float = 0.01): ...

An option's default is its constructor argument's default (the paper's value), read from the
signature, so that it is written once; an option whose value comes from elsewhere (a preset of the
learned radius) declares ``default=None``. Everything else is derived from these declarations:
``LETSArguments``' fields (:mod:`lets_hf.arguments`), ``vision/train.py``'s command line, and the
builder of a rule and a controller from option values (:mod:`lets_hf.methods`). A class builds
from options through its classmethod ``from_options`` where it has one (the learned radius
resolves its preset there), else through its constructor.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_FROM_CONSTRUCTOR = object()  # the default of an Option that takes its constructor argument's default


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option of a rule or a controller.

    ``name``: the flag (``--asam_xi``) and the field of ``LETSArguments``; ``type``: float, int or str;
    ``help``: one sentence; ``arg``: the constructor argument it sets (default: ``name``);
    ``choices``: the names allowed, for an option that takes a name; ``paper``: where it comes from
    (default: its owner's ``paper``); ``default``: its constructor argument's unless given (None where
    the argument has no default: an owner that shares the option, or the caller, supplies it).
    """

    name: str
    type: type
    help: str
    arg: str | None = None
    choices: tuple[str, ...] | None = None
    paper: str = ""
    default: Any = _FROM_CONSTRUCTOR

    @property
    def argument(self) -> str:
        return self.arg or self.name

    def described(self) -> str:
        """The help text with its source: ``"ASAM's xi in T = |theta| + xi (Kwon et al., ICML 2021)."``."""
        text = self.help.rstrip(".")
        return f"{text} ({self.paper})." if self.paper else f"{text}."


def factory(owner: type) -> Callable[..., Any]:
    """What builds ``owner`` from option values: its ``from_options`` classmethod, else its constructor."""
    return getattr(owner, "from_options", owner)


def owned_options(owner: type) -> tuple[Option, ...]:
    """``owner.options`` with each default read from the constructor and each source from ``owner.paper``."""
    parameters = {**inspect.signature(owner).parameters, **inspect.signature(factory(owner)).parameters}
    resolved = []
    for option in getattr(owner, "options", ()):
        default = option.default
        if default is _FROM_CONSTRUCTOR:
            parameter = parameters.get(option.argument)
            if parameter is None or parameter.kind is inspect.Parameter.VAR_KEYWORD:
                raise TypeError(
                    f"{owner.__name__} declares the option {option.name!r} for the argument "
                    f"{option.argument!r}, which it does not take by name"
                )
            default = None if parameter.default is inspect.Parameter.empty else parameter.default
        resolved.append(dataclasses.replace(option, default=default, paper=option.paper or getattr(owner, "paper", "")))
    return tuple(resolved)


def merge_options(owners: Iterable[type]) -> dict[str, Option]:
    """Every option of ``owners`` by name, in order of appearance. Owners may share an option (LookSAM and
    AE-LookSAM share ``looksam_alpha``) if they declare it alike (the constructor argument may differ)."""
    merged: dict[str, Option] = {}
    for owner in owners:
        for option in owned_options(owner):
            known = merged.get(option.name)
            if known is None or known.default is None:
                merged[option.name] = option if known is None else dataclasses.replace(known, default=option.default)
            if known is not None and _differences(known, option):
                raise ValueError(
                    f"the option {option.name!r} of {owner.__name__} is declared otherwise elsewhere "
                    f"({', '.join(_differences(known, option))} differ): declare it once and share it"
                )
    return merged


def _differences(a: Option, b: Option) -> tuple[str, ...]:
    """What two declarations of one option disagree on: not ``arg`` nor ``paper`` (each owner maps and cites it
    its way), nor a default one of them lacks (an argument without a default: the other owner's applies)."""
    differing = [name for name in ("type", "help", "choices") if getattr(a, name) != getattr(b, name)]
    if None not in (a.default, b.default) and a.default != b.default:
        differing.append("default")
    return tuple(differing)


def build_from_options(owner: type, values: Mapping[str, Any], **context: Any) -> Any:
    """``owner`` built from ``values`` (``{"asam_xi": 0.01, ...}``; None or absent means its default) and the
    ``context`` its factory takes (``seed``, ``total_steps``, ``lr_max``: offered to all, passed where accepted)."""
    build = factory(owner)
    kwargs = {o.argument: values[o.name] for o in owner.options if values.get(o.name) is not None}
    accepted = inspect.signature(build).parameters
    kwargs.update({key: value for key, value in context.items() if key in accepted})
    return build(**kwargs)
