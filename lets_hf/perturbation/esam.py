"""ESAM: Du, Yan, Feng, Zhou, Zhen, Goh, Tan, "Efficient Sharpness-aware Minimization for
Improved Training of Neural Networks", ICLR 2022.

Stochastic weight perturbation (SWP): at each step a random subset of the parameter tensors,
each kept with probability ``beta``, is perturbed, by ``rho / beta`` along the SAM direction so
that the expected perturbation is SAM's; the others keep their clean gradient ``g`` for the
descent. The draw is seeded by ``(seed, step)``, identical on every rank. The official code
turns ``requires_grad`` off for the unselected tensors to skip part of the second backward; that
trips DDP's unused-parameter check, so here every tensor still gets its second gradient and the
unselected ones take ``g`` instead (same update, no backward compute saved).

Sharpness-sensitive data selection (SDS, ratio ``gamma``) keeps, for the second pass, the
examples whose loss rises most under the perturbation (:meth:`ESAM.select_examples`). It needs
per-example losses: ``vision/train.py`` and plain loops have them; ``LETSTrainer`` does not (its
models return a mean loss) and refuses ``gamma < 1``. ``beta = 0.5`` is the paper's default;
``gamma`` defaults to 1 (no selection) so that ESAM runs everywhere, set it to the paper's 0.5
where per-example losses exist.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor

from .base import step_generator
from .sam import SAM


def sharpness_sensitive_subset(clean_losses: Tensor, perturbed_losses: Tensor, gamma: float) -> Tensor:
    """Indices of the ``ceil(gamma * n)`` examples whose loss rose most from ``theta`` to ``theta + e``."""
    if not 0 < gamma <= 1:
        raise ValueError(f"esam_gamma must be in (0, 1], got {gamma!r}")
    rise = perturbed_losses.detach() - clean_losses.detach()
    count = max(1, int(torch.ceil(torch.tensor(gamma * rise.numel())).item()))
    return torch.topk(rise, count).indices


class ESAM(SAM):
    name = "esam"
    needs_ascent_gradient = True

    def __init__(self, beta: float = 0.5, gamma: float = 1.0, seed: int = 0):
        if not 0 < beta <= 1:
            raise ValueError(f"esam_beta must be in (0, 1], got {beta!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"esam_gamma must be in (0, 1], got {gamma!r}")
        self.beta, self.gamma, self.seed = float(beta), float(gamma), int(seed)
        self._step = 0
        self.selected: list = []

    def _select(self, count: int) -> list:
        draws = torch.rand(count, generator=step_generator(self.seed, self._step))
        self._step += 1
        return (draws < self.beta).tolist()

    def perturbation_(self, params: Sequence[Tensor], grads: Sequence[Tensor], rho: Tensor) -> None:
        super().perturbation_(params, grads, rho / self.beta)
        self.selected = self._select(len(grads))
        dropped = [g for g, keep in zip(grads, self.selected) if not keep]
        if dropped:
            torch._foreach_zero_(dropped)

    def select_examples(self, clean_losses: Tensor, perturbed_losses: Tensor) -> Tensor:
        """SDS: the indices of the examples the second pass keeps (all of them with ``gamma = 1``)."""
        return sharpness_sensitive_subset(clean_losses, perturbed_losses, self.gamma)

    def descent_gradient_(self, params: Sequence[Tensor], grads: Sequence[Tensor],
                          ascent_grads: Sequence[Tensor]) -> None:
        pairs = [(g, a) for g, a, keep in zip(grads, ascent_grads, self.selected) if not keep]
        if pairs:
            torch._foreach_copy_([g for g, _ in pairs], [a for _, a in pairs])

    def state_dict(self, params: List[Tensor]) -> Dict[str, Any]:
        return {"step": self._step}

    def load_state_dict(self, state: Dict[str, Any], params: List[Tensor]) -> None:
        self._step = int(state.get("step", 0))

    def __repr__(self) -> str:
        return f"ESAM(beta={self.beta}, gamma={self.gamma})"
