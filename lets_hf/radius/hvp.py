"""The Hessian-vector product ``b = H d`` of LETS (Algorithm 1, step 11 of Wang et al., ECCV 2024).

``H`` is the Hessian of the training loss at the perturbed point ``theta_t + rho d`` and ``d`` the
unit ascent direction that moved the weights. ``b`` is the derivative of the SAM gradient
``g_hat(rho) = grad L(theta_t + rho d)`` with respect to ``rho``. Three ways to get it:

- ``diag`` (the paper's): ``H ~= diag(g_hat^2)`` (the Fisher/Gauss-Newton diagonal), so
  ``b = g_hat * g_hat * d``. Free, but its size is unrelated to the true curvature: on small
  models it is 100 to 10,000 times smaller than the exact product.
- ``finite_difference``: ``b = (g_hat - g) / rho``, the secant between the two gradients SAM
  already has. Free, and close to ``exact`` in sign and size. Under DDP ``g_hat`` is averaged
  over ranks while ``g`` (the per-worker ascent gradient) is not; the kept copy of ``g`` is
  averaged too (one all-reduce), so that both come from the same synchronisation scope.
- ``exact``: a double backward through the loss at the perturbed point (one extra pass; for
  tests and small models). Not under FSDP2: it all-gathers the sharded parameters outside
  autograd, so the double backward would not reach them (``b`` would silently be 0).

Each mode keeps one buffer per parameter between the ascent step and the restore: the
perturbation ``e = rho d`` (``diag``, ``exact``) or the ascent gradient ``g``
(``finite_difference``). ``product_`` overwrites that buffer with ``b``. Gradients may carry a
loss scale (fp16); ``inv_grad_scale`` undoes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import foreach, sharding
from ..checks import choice

LossClosure = Callable[[], Tensor]


class HessianVectorProduct(ABC):
    """One way to form ``b = H d``; ``keeps`` says which buffer it needs from the ascent step."""

    name: str
    keeps: str  # "perturbation" or "gradient"

    @abstractmethod
    def product_(
        self,
        kept: Sequence[Tensor],
        *,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        rho: Tensor,
        inv_grad_scale: Tensor,
        loss_closure: LossClosure | None = None,
    ) -> None:
        """Overwrite ``kept`` with ``b``; ``grads`` hold ``g_hat`` and the weights are still perturbed."""


class DiagonalHVP(HessianVectorProduct):
    """``b = g_hat * g_hat * d = g_hat^2 * e / rho``."""

    name, keeps = "diag", "perturbation"

    def product_(self, kept, *, params, grads, rho, inv_grad_scale, loss_closure=None):
        kept = list(kept)
        torch._foreach_mul_(kept, list(grads))
        torch._foreach_mul_(kept, list(grads))
        torch._foreach_mul_(kept, (inv_grad_scale * inv_grad_scale / rho).to(kept[0].dtype))


class FiniteDifferenceHVP(HessianVectorProduct):
    """``b = (g_hat - g) / rho``."""

    name, keeps = "finite_difference", "gradient"

    def product_(self, kept, *, params, grads, rho, inv_grad_scale, loss_closure=None):
        kept = list(kept)
        torch._foreach_sub_(kept, list(grads))  # g - g_hat
        torch._foreach_mul_(kept, (-inv_grad_scale / rho).to(kept[0].dtype))


class ExactHVP(HessianVectorProduct):
    """``b = H e / rho`` by double backward of ``loss_closure()`` at the perturbed weights."""

    name, keeps = "exact", "perturbation"

    def product_(self, kept, *, params, grads, rho, inv_grad_scale, loss_closure=None):
        if sharding.contains_sharded(params):
            raise ValueError(
                "lets_hvp='exact' does not work on sharded (FSDP2) parameters: FSDP2 gathers them "
                "outside autograd, so no double backward reaches them. Use 'finite_difference'"
            )
        if loss_closure is None:
            raise ValueError(
                "lets_hvp='exact' needs loss_closure: a function returning the training loss "
                "at the current (perturbed) weights"
            )
        kept = list(kept)
        with torch.enable_grad():
            loss = loss_closure()
            first = torch.autograd.grad(loss, list(params), create_graph=True, allow_unused=True)
            pairs = [(f, v) for f, v in zip(first, kept) if f is not None]
            second = torch.autograd.grad(
                [f for f, _ in pairs], list(params), grad_outputs=[v for _, v in pairs], allow_unused=True
            )
        products = [torch.zeros_like(v) if s is None else s for s, v in zip(second, kept)]
        foreach.copy_(kept, products)
        torch._foreach_div_(kept, rho.to(kept[0].dtype))


HVP_MODES = {m.name: m for m in (DiagonalHVP, FiniteDifferenceHVP, ExactHVP)}


def get_hvp(name: str) -> HessianVectorProduct:
    """The mode called ``name``: one of ``diag``, ``finite_difference``, ``exact``."""
    return HVP_MODES[choice("lets_hvp", name, sorted(HVP_MODES))]()
