"""Perturbation rules (the lower level): one module per SAM variant, looked up by name."""
from __future__ import annotations

from .asam import ASAM, is_weight_matrix, named_weight_filter
from .base import PerturbationRule
from .sam import SAM

PERTURBATIONS = {"sam": SAM, "asam": ASAM}


def get_perturbation(name: str, **kwargs) -> PerturbationRule:
    """The rule called ``name`` (one of :data:`PERTURBATIONS`), built with ``kwargs``."""
    if name not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {sorted(PERTURBATIONS)}, got {name!r}")
    return PERTURBATIONS[name](**kwargs)


__all__ = ["ASAM", "PERTURBATIONS", "PerturbationRule", "SAM", "get_perturbation", "is_weight_matrix",
           "named_weight_filter"]
