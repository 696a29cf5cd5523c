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

``backward`` accumulates ``a``, the gradient of ``l_v - l_r`` (``l_v`` for ``val``), into ``.grad``;
``factor`` multiplies ``<a, b>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import Tensor

from ..checks import choice


@dataclass(frozen=True)
class UpperObjective:
    name: str
    needs_train_loss: bool
    squares_gap: bool

    def backward(
        self, val_loss: Tensor, train_losses: Iterable[Tensor] = (), scale: Tensor | None = None
    ) -> Tensor | None:
        """Accumulate ``a = grad(l_v - l_r)`` (``grad l_v`` for ``val``) into ``.grad``, one term at a time.

        ``l_r`` is the sum of ``train_losses`` (the parts of the training batch, e.g. its
        micro-batches): each part is backpropagated as ``-l`` before the next is drawn, so a
        generator keeps one graph alive at a time; none at all where the training term comes from
        elsewhere (``train_term="next"``), and they are not drawn for ``val``. ``scale`` (a loss
        scale) multiplies every term. Returns ``l_r`` detached, or None when no part was drawn.
        """
        scaled = (lambda loss: loss) if scale is None else (lambda loss: loss * scale.to(loss.dtype))
        scaled(val_loss).backward()
        if not self.needs_train_loss:
            return None
        total = None
        for loss in train_losses:
            scaled(-loss).backward()
            total = loss.detach() if total is None else total + loss.detach()
        return total

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
