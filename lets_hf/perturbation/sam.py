"""SAM: Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently
Improving Generalization", ICLR 2021.

The first-order solution of ``max_{||e|| <= rho} L(theta + e)`` is ``e = rho * g / ||g||``, with
``||g||`` the 2-norm of the whole gradient (all parameters together).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..foreach import global_norm, safe_scale
from .base import PerturbationRule


class SAM(PerturbationRule):
    """``d = g / ||g||``."""

    name, label, paper = "sam", "SAM", "Foret et al., ICLR 2021"

    def perturbation_(self, params: Sequence[Tensor], grads: Sequence[Tensor], rho: Tensor) -> None:
        scale = safe_scale(rho, global_norm(grads))
        torch._foreach_mul_(list(grads), scale.to(grads[0].dtype))
