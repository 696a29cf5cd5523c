"""The upper-level objectives of LETS (Wang et al., ECCV 2024, Eq. 3 and Table 6).

With ``l_v = L(V; theta_{t+1})`` and ``l_r = L(B; theta_{t+1})`` after one step
``theta_{t+1} = theta_t - eta_t g_hat(rho)``, the chain rule gives
``d theta_{t+1} / d rho = -eta_t b`` with ``b = H d``, hence:

====== ============================== ==========================================
name   objective                      hypergradient ``h = d objective / d rho``
====== ============================== ==========================================
gap2   ``1/2 (l_v - l_r)^2`` (paper)  ``-eta_t (l_v - l_r) <grad(l_v - l_r), b>``
gap    ``l_v - l_r``                  ``-eta_t <grad(l_v - l_r), b>``
val    ``l_v``                        ``-eta_t <grad l_v, b>``
====== ============================== ==========================================

``differentiated`` is the scalar whose gradient is ``a``; ``factor`` multiplies ``<a, b>``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from ..checks import choice


@dataclass(frozen=True)
class UpperObjective:
    name: str
    needs_train_loss: bool
    squares_gap: bool

    def differentiated(self, val_loss: Tensor, train_loss: Optional[Tensor]) -> Tensor:
        """``l_v - l_r``, or ``l_v`` for ``val``."""
        if not self.needs_train_loss:
            return val_loss
        if train_loss is None:
            raise ValueError(f"lets_objective={self.name!r} needs the training loss at theta_{{t+1}}")
        return val_loss - train_loss

    def factor(self, gap: Tensor) -> Tensor:
        """What multiplies ``-eta <a, b>``: the gap for ``gap2``, else 1."""
        return gap if self.squares_gap else gap.new_ones(())


OBJECTIVES = {
    "gap2": UpperObjective("gap2", needs_train_loss=True, squares_gap=True),
    "gap": UpperObjective("gap", needs_train_loss=True, squares_gap=False),
    "val": UpperObjective("val", needs_train_loss=False, squares_gap=False),
}


def get_objective(name: str) -> UpperObjective:
    return OBJECTIVES[choice("lets_objective", name, sorted(OBJECTIVES))]
