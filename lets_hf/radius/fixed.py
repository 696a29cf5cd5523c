"""A constant radius: plain SAM (Foret et al., ICLR 2021) or any variant at a fixed ``rho``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import RHO, RadiusController, check_radius, check_state_keys, state_dtype


class FixedRadius(RadiusController):
    """``rho_t = rho`` at every step."""

    name, paper = "constant", "Foret et al., ICLR 2021"
    options = (RHO,)

    def __init__(self, rho: float = 0.05):
        self._rho = check_radius("rho", rho)

    def rho_tensor(self, device: torch.device) -> Tensor:
        return torch.tensor(self._rho, dtype=state_dtype(device), device=device)

    @property
    def rho(self) -> float:
        return self._rho

    def state_dict(self) -> dict[str, Any]:
        return {"rho": self._rho}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``rho``: a finite number in ``(0, RHO_LIMIT]``, the only key."""
        check_state_keys(state, ("rho",), type(self).__name__)
        self._rho = check_radius("checkpointed rho", state["rho"])

    def __repr__(self) -> str:
        return f"FixedRadius(rho={self._rho})"
