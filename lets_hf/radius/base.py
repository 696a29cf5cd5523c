"""The upper level of SAM: where the radius ``rho`` comes from.

A radius controller owns ``rho`` and nothing else; it does not know which perturbation rule uses
it, so every SAM variant combines with every controller. ``rho`` lives in a 0-dim float64 tensor
on the parameters' device, so that using and updating it never waits on the host; the ``rho``
property reads it back (a host sync: call it at logging steps).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict

import torch
from torch import Tensor


def check_positive(name: str, value: float) -> float:
    """``float(value)``, or ``ValueError`` naming ``name`` unless it is a finite number > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def state_dtype(device: torch.device) -> torch.dtype:
    """float64 for the controller's scalars, float32 where the device has no float64 (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


class RadiusController(ABC):
    """Supplies ``rho`` to the optimizer wrapper; ``learns`` says whether a hyper step updates it."""

    learns: bool = False

    @abstractmethod
    def rho_tensor(self, device: torch.device) -> Tensor:
        """The current ``rho`` as a 0-dim tensor on ``device``."""

    @property
    def rho(self) -> float:
        """The current ``rho`` as a Python float (a host sync)."""
        return float(self.rho_tensor(torch.device("cpu")))

    def observe_learning_rate(self, lr: float) -> None:
        """Told the base optimizer's learning rate before each perturbation (for schedules that follow it)."""

    @abstractmethod
    def state_dict(self) -> Dict[str, Any]:
        """Tensors and numbers only, so that ``torch.load(weights_only=True)`` reads it back."""

    @abstractmethod
    def load_state_dict(self, state: Dict[str, Any]) -> None:
        ...
