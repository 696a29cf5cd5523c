"""The SAM family by name: the ``--optim`` names, their labels, their options, and one builder.

A method is a perturbation rule (:data:`lets_hf.perturbation.PERTURBATIONS`) with a radius
controller (:data:`lets_hf.radius.RADII`): ``<rule>`` takes a fixed radius (or, with
``rho_schedule lr``, one that follows the learning rate), ``lets_<rule>`` the radius learned by LETS.
Every front end (``LETSArguments``, ``vision/train.py``, the run labels of ``glue/`` and
``translation/``) reads the names, options and labels here, and builds with :func:`build_method`,
so a rule registered once is everywhere. No transformers here: the scripts without the Trainer use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .options import Option, build_from_options, merge_options
from .perturbation import PERTURBATIONS, PerturbationRule, build_perturbation, variant_options
from .radius import RADII, RHO_SCHEDULE, RHO_SCHEDULES, LETSRadius, RadiusController

LEARNED_PREFIX = "lets_"
FIXED_RADIUS_OPTIMIZERS = sorted(PERTURBATIONS)
LEARNED_RADIUS_OPTIMIZERS = sorted(LEARNED_PREFIX + name for name in PERTURBATIONS)
SAM_FAMILY = FIXED_RADIUS_OPTIMIZERS + LEARNED_RADIUS_OPTIMIZERS


class SAMFamily(NamedTuple):
    """A SAM-family method: its perturbation rule's name and whether its radius is learned (``lets_<rule>``)."""

    rule: str
    learned: bool


def parse_sam_family(optim: str) -> SAMFamily | None:
    """``"lets_asam" -> SAMFamily("asam", learned=True)``, ``"sam" -> SAMFamily("sam", learned=False)``; None for a
    stock (ERM) name."""
    learned = optim.startswith(LEARNED_PREFIX)
    rule = optim[len(LEARNED_PREFIX) :] if learned else optim
    return SAMFamily(rule, learned) if rule in PERTURBATIONS else None


def method_label(optim: str) -> str:
    """The name of the method ``optim`` selects, as the papers write it: ``lets_looksam -> LETS-LookSAM``,
    ``gsam -> GSAM``; every other name (a stock optimizer) is ``ERM``."""
    family = parse_sam_family(str(getattr(optim, "value", optim)))
    if family is None:
        return "ERM"
    rule, learned = family
    return ("LETS-" if learned else "") + PERTURBATIONS[rule].label


def method_options() -> dict[str, Option]:
    """Every option of every controller and rule, by name: the radius's first, then ``rho_schedule``, then the
    variants' (``asam_xi``, ...). ``LETSArguments``' fields and vision's flags are made from these."""
    radius_options = merge_options(RADII.values())
    return {**radius_options, RHO_SCHEDULE.name: RHO_SCHEDULE, **variant_options()}


def options_read(optim: str, rho_schedule: str | None = None) -> set[str]:
    """The names of the options that ``optim`` reads: its rule's and its controller's (a fixed radius's under
    ``rho_schedule``, constant by default); none for a stock name (ERM)."""
    family = parse_sam_family(optim)
    if family is None:
        return set()
    rule, learned = family
    radius = LETSRadius if learned else RADII[rho_schedule or RHO_SCHEDULE.default]
    names = {option.name for option in (*PERTURBATIONS[rule].options, *radius.options)}
    return names if learned else names | {RHO_SCHEDULE.name}


def describe_optims(names: list[str]) -> str:
    """``--optim`` names in words: the whole SAM family, every ``lets_*`` or every fixed-radius name in a few words,
    any other list as itself."""
    for group, words in (
        (SAM_FAMILY, "any SAM-family optim"),
        (LEARNED_RADIUS_OPTIMIZERS, f"{LEARNED_PREFIX}* (a learned radius)"),
        (FIXED_RADIUS_OPTIMIZERS, "sam, asam, ... (a fixed radius)"),
    ):
        if sorted(names) == sorted(group):
            return words
    return ", ".join(names)


def option_readers(option: str) -> str:
    """Which ``--optim`` names read ``option``, in words: ``"asam, lets_asam"``, ``"lets_* (a learned radius)"``,
    ``"lets_* (a learned radius); sam, asam, ... (a fixed radius) with --rho_schedule lr"``."""
    default = [name for name in SAM_FAMILY if option in options_read(name)]
    parts = [describe_optims(default)] if default else []
    for schedule in RHO_SCHEDULES:
        more = [name for name in SAM_FAMILY if option in options_read(name, schedule) and name not in default]
        if more:
            parts.append(f"{describe_optims(more)} with --rho_schedule {schedule}")
    return "; ".join(parts)


def ignored_options_message(
    optim: str, ignored: Mapping[str, str], values: Mapping[str, Any], flag: str = "--optim"
) -> str:
    """The warning about the options ``ignored`` (``{name: option_readers(name)}``) that ``optim`` does not read:
    one line per option with its value (from ``values``) and the names that read it."""
    family = parse_sam_family(optim)
    kind = "plain ERM" if family is None else ("a learned rho" if family[1] else "a fixed rho")
    lines = [f"{flag} {optim} ({kind}) ignores {'this option' if len(ignored) == 1 else 'these options'}:"]
    lines += [f"  --{name} {values[name]}: read by {readers}" for name, readers in ignored.items()]
    return "\n".join(lines)


def build_radius(
    learned: bool,
    values: Mapping[str, Any],
    total_steps: int | None = None,
    learning_rate: float | None = None,
    base_optimizer: type | None = None,
) -> RadiusController:
    """The controller: LETS's when ``learned``, else the one ``values["rho_schedule"]`` names (constant by default).
    ``total_steps`` (optimizer steps) feeds the horizon-aware rate; ``learning_rate`` (the base optimizer's peak)
    the schedule that follows it; ``base_optimizer`` (its class) the learned radius's ``lets_preset auto``."""
    if learned:
        radius = LETSRadius
    else:
        schedule = values.get(RHO_SCHEDULE.name) or RHO_SCHEDULE.default
        if schedule not in RHO_SCHEDULE.choices:
            raise ValueError(f"rho_schedule must be one of {list(RHO_SCHEDULE.choices)}, got {schedule!r}")
        radius = RADII[schedule]
    return build_from_options(
        radius, values, total_steps=total_steps, lr_max=learning_rate, base_optimizer=base_optimizer
    )


def build_method(
    optim: str,
    values: Mapping[str, Any],
    seed: int = 0,
    total_steps: int | None = None,
    learning_rate: float | None = None,
    base_optimizer: type | None = None,
) -> tuple[PerturbationRule, RadiusController]:
    """The rule and the controller of the SAM-family name ``optim`` from option ``values`` (a mapping or an
    arguments object's ``vars``; None or absent means the default). ``seed`` reaches the rules that draw,
    ``base_optimizer`` (its class) the learned radius's ``lets_preset auto``."""
    family = parse_sam_family(optim)
    if family is None:
        raise ValueError(f"optim must be one of the SAM family {SAM_FAMILY}, got {optim!r}")
    rule, learned = family
    return (
        build_perturbation(rule, values, seed=seed, total_steps=total_steps),
        build_radius(
            learned, values, total_steps=total_steps, learning_rate=learning_rate, base_optimizer=base_optimizer
        ),
    )
