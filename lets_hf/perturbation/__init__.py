"""Perturbation rules (the lower level): one module per SAM variant, registered here by name.

=========== ============= ==================================== ===============================================
name        label         paper                                options (each module's ``options``)
=========== ============= ==================================== ===============================================
sam         SAM           Foret et al., ICLR 2021              (none)
asam        ASAM          Kwon et al., ICML 2021               ``asam_xi``
gsam        GSAM          Zhuang et al., ICLR 2022             ``gsam_alpha``
esam        ESAM          Du et al., ICLR 2022                 ``esam_beta``, ``esam_gamma``, ``esam_form``
rst         RST           Zhao et al., 2022                    ``rst_p``
looksam     LookSAM       Liu et al., CVPR 2022                ``looksam_k``, ``looksam_alpha``, ``looksam_split``
ae_sam      AE-SAM        Jiang et al., ICLR 2023              ``ae_delta``, ``ae_lambda1``, ``ae_lambda2``
ae_looksam  AE-LookSAM    Jiang et al., ICLR 2023              the above, ``looksam_alpha`` and ``looksam_split``
=========== ============= ==================================== ===============================================

A rule declares its options once, in its module (:class:`~lets_hf.options.Option`; the defaults are its
constructor's, the paper's); :func:`register` makes it known to every front end. A new variant is its
module and its name in the ``register(...)`` line below (``docs/design.md``, "Adding a variant").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..checks import choice
from ..options import Option, build_from_options, merge_options
from .adaptive import AESAM, AdaptivePolicy, AELookSAM
from .asam import ASAM, is_weight_matrix, named_weight_filter
from .base import PerturbationRule
from .esam import ESAM, ESAM_FORMS, sharpness_sensitive_subset
from .gsam import GSAM
from .looksam import LOOKSAM_SPLITS, LookSAM
from .rst import RST
from .sam import SAM

PERTURBATIONS: dict[str, type[PerturbationRule]] = {}  # name -> rule class, in order of registration


def register(*rules: type[PerturbationRule]) -> None:
    """Make ``rules`` known by their ``name`` (to ``--optim``, ``LETSArguments``, vision's command line, the labels
    and :func:`build_perturbation`); their options must agree with the options of the same name already known."""
    for rule in rules:
        if rule.name in PERTURBATIONS:
            raise ValueError(f"a perturbation rule named {rule.name!r} is registered already")
        merge_options([*PERTURBATIONS.values(), rule])  # raises on an option declared otherwise elsewhere
        PERTURBATIONS[rule.name] = rule


register(SAM, ASAM, GSAM, ESAM, RST, LookSAM, AESAM, AELookSAM)


def variant_options() -> dict[str, Option]:
    """Every registered rule's options by name (``asam_xi``, ``gsam_alpha``, ...), with their defaults."""
    return merge_options(PERTURBATIONS.values())


def get_perturbation(name: str, **kwargs) -> PerturbationRule:
    """The rule called ``name`` (one of :data:`PERTURBATIONS`), built with ``kwargs``."""
    return PERTURBATIONS[choice("perturbation", name, sorted(PERTURBATIONS))](**kwargs)


def build_perturbation(
    name: str, options: Mapping[str, Any], seed: int = 0, total_steps: int | None = None
) -> PerturbationRule:
    """The rule ``name`` from command-line ``options`` (``{"asam_xi": 0.01, ...}``; others are ignored, None means
    the default); ``seed`` reaches the rules that draw (ESAM, RST), ``total_steps`` those with a schedule (AE-SAM)."""
    rule = PERTURBATIONS[choice("perturbation", name, sorted(PERTURBATIONS))]
    return build_from_options(rule, options, seed=seed, total_steps=total_steps)


__all__ = [
    "AELookSAM",
    "AESAM",
    "ASAM",
    "AdaptivePolicy",
    "ESAM",
    "ESAM_FORMS",
    "GSAM",
    "LOOKSAM_SPLITS",
    "LookSAM",
    "PERTURBATIONS",
    "PerturbationRule",
    "RST",
    "SAM",
    "build_perturbation",
    "get_perturbation",
    "register",
    "variant_options",
    "is_weight_matrix",
    "named_weight_filter",
    "sharpness_sensitive_subset",
]
