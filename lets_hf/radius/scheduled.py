"""A radius that follows the learning rate, as in GSAM (Zhuang et al., ICLR 2022, Section 5):
``rho_t = rho_min + (rho_max - rho_min) (lr_t - lr_min) / (lr_max - lr_min)``.

A schedule of the radius is a controller of its own, so it combines with every perturbation rule.
"""

from __future__ import annotations

import dataclasses

from ..checks import number, positive
from .base import RHO, RHO_MIN, check_radius
from .fixed import FixedRadius


class LRProportionalRadius(FixedRadius):
    """``rho`` moves with the base optimizer's learning rate between ``rho_min`` and ``rho_max``.

    From options, ``rho_max`` is ``--rho`` and ``lr_max`` the base optimizer's learning rate (given by the caller).
    """

    name, paper = "lr", "Zhuang et al., ICLR 2022"
    options = (dataclasses.replace(RHO, arg="rho_max"), RHO_MIN)

    def __init__(self, rho_max: float, rho_min: float, lr_max: float, lr_min: float = 0.0):
        super().__init__(rho_max)
        self.rho_max, self.rho_min = self._rho, check_radius("rho_min", rho_min)
        if self.rho_min > self.rho_max:
            raise ValueError(f"rho_min ({rho_min}) must be <= rho ({rho_max})")
        self.lr_max = positive("learning_rate", lr_max)
        self.lr_min = number("lr_min", lr_min, "in [0, learning_rate)", lambda x: 0 <= x < self.lr_max)

    def observe_learning_rate(self, lr: float) -> None:
        fraction = min(max((lr - self.lr_min) / (self.lr_max - self.lr_min), 0.0), 1.0)
        self._rho = self.rho_min + (self.rho_max - self.rho_min) * fraction

    def __repr__(self) -> str:
        return f"LRProportionalRadius(rho=[{self.rho_min}, {self.rho_max}], lr=[{self.lr_min}, {self.lr_max}])"
