"""ESAM: Du, Yan, Feng, Zhou, Zhen, Goh, Tan, "Efficient Sharpness-aware Minimization for
Improved Training of Neural Networks", ICLR 2022; official code: github.com/dydjw9/Efficient_SAM
(``utils/Esam.py``).

Stochastic weight perturbation (SWP, ratio ``beta``). Each parameter tensor is selected with
probability ``beta``; only the selected set ``S`` is perturbed, by ``rho / beta`` along SAM's
direction on ``S``, so that the expected perturbation is SAM's. ``form`` chooses between:

- ``"official"`` (the default): the update of the official code. There, selection works through
  ``requires_grad``: after a step's second backward each tensor is switched off with probability
  ``1 - beta``, so the next step's first backward gives it no gradient, and the ascent is
  ``e = rho / beta * g_S / ||g_S||`` with the norm over the selected tensors only; the second
  backward, with every tensor switched on again, gives every tensor ``g_hat``, and every tensor
  descends with it. Two differences, neither of which changes the update rule: the draw for step
  ``t`` is made at step ``t`` from ``(seed, t)``, identical on every rank (the official code draws
  it at the end of step ``t - 1``, so that its first step perturbs every tensor), and the first
  backward still computes every tensor's gradient and zeroes the unselected ones (no compute is
  saved; skipping them would trip DDP's unused-parameter check). The official norm also adds
  ``1e-7``; here a zero norm gives a zero perturbation instead.
- ``"clean_unselected"``: the form lets_hf used before, kept as an option: the norm is taken over
  every tensor and the unselected tensors descend with their clean gradient ``g``. It is not the
  official update (issue 17 measured 1.3e-2 between the two after 10 steps of an MLP). With LETS,
  the unselected tensors' descent does not depend on rho, so ``b`` is 0 on them.

Sharpness-sensitive data selection (SDS, ratio ``gamma``): the perturbed pass keeps the examples
whose loss rises most from ``theta`` to ``theta + e`` (:meth:`ESAM.select_examples`), and runs on
them alone (that is the saving; BatchNorm layers then normalise with the kept examples' batch
statistics). It keeps ``ceil(gamma n)`` of ``n`` examples, the paper's ``|B+| = gamma |B|``
rounded up; the official code keeps ``int(gamma n) - 1`` (a strict ``>`` against the
``int(gamma n)``-th largest rise). It needs per-example losses: ``vision/train.py`` and plain
loops have them; ``LETSTrainer`` does not (its models return a mean loss) and refuses
``gamma < 1``. ``beta = 0.5`` is the paper's default; ``gamma`` defaults to 1 (no selection) so
that ESAM runs everywhere, set it to the paper's 0.5 where per-example losses exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import choice, number
from ..foreach import copy_
from ..options import Option
from ..seeding import step_generator
from .sam import SAM

ESAM_FORMS = ("official", "clean_unselected")


def sharpness_sensitive_subset(clean_losses: Tensor, perturbed_losses: Tensor, gamma: float) -> Tensor:
    """Indices of the ``ceil(gamma * n)`` examples whose loss rose most from ``theta`` to ``theta + e``."""
    if not 0 < gamma <= 1:
        raise ValueError(f"esam_gamma must be in (0, 1], got {gamma!r}")
    rise = perturbed_losses.detach() - clean_losses.detach()
    count = max(1, math.ceil(gamma * rise.numel()))
    return torch.topk(rise, count).indices


class ESAM(SAM):
    name, label, paper = "esam", "ESAM", "Du et al., ICLR 2022"
    options = (
        Option("esam_beta", float, "ESAM's share of perturbed tensors", arg="beta"),
        Option(
            "esam_gamma",
            float,
            "ESAM's share of examples kept by data selection (the paper's 0.5; 1, no "
            "selection, by default and the only value in LETSTrainer)",
            arg="gamma",
        ),
        Option(
            "esam_form",
            str,
            "ESAM's weight perturbation: official (Du et al.'s code: ascent norm over the "
            "selected tensors, every tensor descends with g_hat) or clean_unselected (norm "
            "over all, the others descend with g)",
            arg="form",
            choices=ESAM_FORMS,
        ),
    )

    def __init__(self, beta: float = 0.5, gamma: float = 1.0, seed: int = 0, form: str = "official"):
        self.beta = number("esam_beta", beta, "in (0, 1]", lambda x: 0 < x <= 1)
        self.gamma = number("esam_gamma", gamma, "in (0, 1]", lambda x: 0 < x <= 1)
        self.seed, self.form = int(seed), choice("esam_form", form, ESAM_FORMS)
        self.needs_ascent_gradient = form == "clean_unselected"
        self._step = 0
        self.selected: list = []

    @property
    def selects_examples(self) -> bool:
        """Whether SDS keeps fewer than all examples (``gamma < 1``): the perturbed pass then needs a selection."""
        return self.gamma < 1

    def _select(self, count: int) -> list:
        draws = torch.rand(count, generator=step_generator(self.seed, self._step))
        self._step += 1
        return (draws < self.beta).tolist()

    def _unselected(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        return [t for t, keep in zip(tensors, self.selected) if not keep]

    def perturbation_(self, params: Sequence[Tensor], grads: Sequence[Tensor], rho: Tensor) -> None:
        self.selected = self._select(len(grads))
        if self.form == "official":  # the unselected tensors get no first gradient: the norm is over S
            self._zero(self._unselected(grads))
            super().perturbation_(params, grads, rho / self.beta)
        else:
            super().perturbation_(params, grads, rho / self.beta)
            self._zero(self._unselected(grads))

    @staticmethod
    def _zero(tensors: list[Tensor]) -> None:
        if tensors:
            torch._foreach_zero_(tensors)

    def select_examples(self, clean_losses: Tensor, perturbed_losses: Tensor) -> Tensor:
        """SDS: the indices of the examples the perturbed pass keeps (all of them with ``gamma = 1``)."""
        return sharpness_sensitive_subset(clean_losses, perturbed_losses, self.gamma)

    def descent_gradient_(
        self, params: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        if self.form == "clean_unselected":
            pairs = list(zip(self._unselected(grads), self._unselected(ascent_grads)))
            if pairs:
                copy_([g for g, _ in pairs], [a for _, a in pairs])

    def descent_derivative_(
        self, params: Sequence[Tensor], b: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        if self.form == "clean_unselected":  # their descent, the clean g, does not depend on rho
            self._zero(self._unselected(b))

    def state_dict(self, params: list[Tensor]) -> dict[str, Any]:
        return {"step": self._step}

    def load_state_dict(self, state: dict[str, Any], params: list[Tensor]) -> None:
        self._step = int(state.get("step", 0))

    def __repr__(self) -> str:
        return f"ESAM(beta={self.beta}, gamma={self.gamma}, form={self.form!r})"
