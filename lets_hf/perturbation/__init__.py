"""Perturbation rules (the lower level): one module per SAM variant, looked up by name.

=========== ==================================== ===============================================
name        paper                                options (defaults from the paper)
=========== ==================================== ===============================================
sam         Foret et al., ICLR 2021              (none)
asam        Kwon et al., ICML 2021               ``asam_xi`` 0.01
gsam        Zhuang et al., ICLR 2022             ``gsam_alpha`` 0.4
esam        Du et al., ICLR 2022                 ``esam_beta`` 0.5, ``esam_gamma`` 1 (paper 0.5; not in the Trainer),
                                                 ``esam_form`` official
rst         Zhao et al., 2022                    ``rst_p`` 0.5
looksam     Liu et al., CVPR 2022                ``looksam_k`` 5, ``looksam_alpha`` 0.7, ``looksam_split`` whole
ae_sam      Jiang et al., ICLR 2023              ``ae_delta`` 0.9, ``ae_lambda1`` 1, ``ae_lambda2`` -1
ae_looksam  Jiang et al., ICLR 2023              the above, ``looksam_alpha`` and ``looksam_split``
=========== ==================================== ===============================================
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..checks import choice
from .adaptive import AELookSAM, AESAM, AdaptivePolicy
from .asam import ASAM, is_weight_matrix, named_weight_filter
from .base import PerturbationRule
from .esam import ESAM, ESAM_FORMS, sharpness_sensitive_subset
from .gsam import GSAM
from .looksam import LOOKSAM_SPLITS, LookSAM
from .rst import RST
from .sam import SAM

PERTURBATIONS = {rule.name: rule for rule in (SAM, ASAM, GSAM, ESAM, RST, LookSAM, AESAM, AELookSAM)}

# command-line option -> constructor argument, per variant
VARIANT_OPTIONS: Dict[str, Dict[str, str]] = {
    "sam": {},
    "asam": {"asam_xi": "xi"},
    "gsam": {"gsam_alpha": "alpha"},
    "esam": {"esam_beta": "beta", "esam_gamma": "gamma", "esam_form": "form"},
    "rst": {"rst_p": "p"},
    "looksam": {"looksam_k": "k", "looksam_alpha": "alpha", "looksam_split": "split"},
    "ae_sam": {"ae_delta": "delta", "ae_lambda1": "lambda1", "ae_lambda2": "lambda2"},
    "ae_looksam": {"looksam_alpha": "alpha", "looksam_split": "split", "ae_delta": "delta", "ae_lambda1": "lambda1",
                   "ae_lambda2": "lambda2"},
}
# the options that take a name, with the names allowed (the first is the default)
VARIANT_CHOICES: Dict[str, Tuple[str, ...]] = {"esam_form": ESAM_FORMS, "looksam_split": LOOKSAM_SPLITS}
SEEDED = {"esam", "rst"}
HORIZON_AWARE = {"ae_sam", "ae_looksam"}


def get_perturbation(name: str, **kwargs) -> PerturbationRule:
    """The rule called ``name`` (one of :data:`PERTURBATIONS`), built with ``kwargs``."""
    return PERTURBATIONS[choice("perturbation", name, sorted(PERTURBATIONS))](**kwargs)


def build_perturbation(name: str, options: Dict[str, Any], seed: int = 0,
                       total_steps: Optional[int] = None) -> PerturbationRule:
    """The rule ``name`` from command-line ``options`` (``{"asam_xi": 0.01, ...}``; others are ignored)."""
    choice("perturbation", name, sorted(PERTURBATIONS))
    kwargs = {arg: options[option] for option, arg in VARIANT_OPTIONS[name].items() if options.get(option) is not None}
    if name in SEEDED:
        kwargs["seed"] = seed
    if name in HORIZON_AWARE:
        kwargs["total_steps"] = total_steps
    return get_perturbation(name, **kwargs)


__all__ = ["AELookSAM", "AESAM", "ASAM", "AdaptivePolicy", "ESAM", "ESAM_FORMS", "GSAM", "LOOKSAM_SPLITS", "LookSAM",
           "PERTURBATIONS", "PerturbationRule", "RST", "SAM", "VARIANT_CHOICES", "VARIANT_OPTIONS",
           "build_perturbation", "get_perturbation",
           "is_weight_matrix", "named_weight_filter", "sharpness_sensitive_subset"]
