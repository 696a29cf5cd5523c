"""A radius that follows the learning rate, as in GSAM (Zhuang et al., ICLR 2022, Section 5):
``rho_t = rho_min + (rho_max - rho_min) (lr_t - lr_min) / (lr_max - lr_min)``.

A schedule of the radius is a controller of its own, so it combines with every perturbation rule.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from .base import RadiusController, check_positive, state_dtype


class LRProportionalRadius(RadiusController):
    """``rho`` moves with the base optimizer's learning rate between ``rho_min`` and ``rho_max``."""

    learns = False

    def __init__(self, rho_max: float, rho_min: float, lr_max: float, lr_min: float = 0.0):
        self.rho_max, self.rho_min = check_positive("rho", rho_max), float(rho_min)
        if not 0 <= self.rho_min <= self.rho_max:
            raise ValueError(f"rho_min must be in [0, rho] = [0, {rho_max}], got {rho_min!r}")
        self.lr_max = check_positive("learning_rate", lr_max)
        if not 0 <= lr_min < lr_max:
            raise ValueError(f"lr_min must be in [0, learning_rate), got {lr_min!r}")
        self.lr_min = float(lr_min)
        self._rho = self.rho_max

    def observe_learning_rate(self, lr: float) -> None:
        fraction = (lr - self.lr_min) / (self.lr_max - self.lr_min)
        self._rho = self.rho_min + (self.rho_max - self.rho_min) * min(max(fraction, 0.0), 1.0)

    def rho_tensor(self, device: torch.device) -> Tensor:
        return torch.tensor(self._rho, dtype=state_dtype(device), device=device)

    @property
    def rho(self) -> float:
        return self._rho

    def state_dict(self) -> Dict[str, Any]:
        return {"rho": self._rho}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._rho = float(state["rho"])

    def __repr__(self) -> str:
        return f"LRProportionalRadius(rho=[{self.rho_min}, {self.rho_max}], lr=[{self.lr_min}, {self.lr_max}])"
