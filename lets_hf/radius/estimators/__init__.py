"""Hypergradient estimators of the learned radius, one module each, registered here by name.

============ ============================== ===================================================== ============
name         LETSRadius options             passes at ``theta_{t+1}`` per hyper step              paper
============ ============================== ===================================================== ============
one_step     (the default)                  validation, and training for ``gap2`` / ``gap``       Wang et al.
next_train   ``train_term="next"``          validation; training from the next ascent pass        ours
next_val     ``val_term="next"`` (``val``)  none: the next ascent pass is the validation pass     ours
============ ============================== ===================================================== ============

The interface, its fixed points in a step and its stages are in :mod:`.base`. A new estimator is its
module and its name in the ``register(...)`` line below (``docs/design.md``, "Adding a hypergradient
estimator"); ``LETSRadius(estimator="<name>")`` selects it.
"""

from __future__ import annotations

from typing import Any

from ...checks import choice
from .base import Hypergradient, HypergradientEstimator, Stage
from .next_batch import NextTrainTerm, NextValTerm
from .one_step import OneStep

ESTIMATORS: dict[str, type[HypergradientEstimator]] = {}  # name -> estimator class, in order of registration


def register(*estimators: type[HypergradientEstimator]) -> None:
    """Make ``estimators`` known by their ``name`` (to ``LETSRadius(estimator=...)`` and :func:`get_estimator`)."""
    for estimator in estimators:
        if estimator.name in ESTIMATORS:
            raise ValueError(f"a hypergradient estimator named {estimator.name!r} is registered already")
        ESTIMATORS[estimator.name] = estimator


register(OneStep, NextTrainTerm, NextValTerm)


def get_estimator(name: str, **kwargs: Any) -> HypergradientEstimator:
    """The estimator called ``name`` (one of :data:`ESTIMATORS`), built with ``kwargs`` (``hvp``, ``descent``,
    ``objective``, ``interval`` and its own options)."""
    return ESTIMATORS[choice("lets_estimator", name, sorted(ESTIMATORS))](**kwargs)


__all__ = [
    "ESTIMATORS",
    "Hypergradient",
    "HypergradientEstimator",
    "NextTrainTerm",
    "NextValTerm",
    "OneStep",
    "Stage",
    "get_estimator",
    "register",
]
