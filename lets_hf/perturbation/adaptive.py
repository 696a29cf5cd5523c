"""AE-SAM and AE-LookSAM: Jiang, Yang, Zhang, Kwok, "An Adaptive Policy to Employ
Sharpness-Aware Minimization", ICLR 2023 (arXiv 2304.14647). No code has been published.

SAM is worth its second pass where the loss surface is sharp, and the paper measures sharpness by
the squared norm of the stochastic gradient, modelled as Gaussian. Its method (Section 3: the
adaptive policy, AE-SAM's algorithm and AE-LookSAM's), line by line, and what implements each:

1. ``x_t = ||grad L(B_t; w_t)||^2``, the squared norm of the first pass's gradient:
   :meth:`AdaptivePolicy.decide` (under DDP the mean over ranks of each rank's ``x_t``, so that
   every rank takes the same decision).
2. ``mu_t = delta mu_{t-1} + (1 - delta) x_t``, the moving average of the mean: the first line of
   :meth:`AdaptivePolicy.use_sam`.
3. ``sigma_t^2 = delta sigma_{t-1}^2 + (1 - delta) (x_t - mu_t)^2``, the moving average of the
   variance, with the ``mu_t`` just updated: its second line. ``delta = 0.9`` (``ae_delta``).
4. ``w_t`` is in a sharp region, and the step is a SAM step, if ``x_t >= mu_t + c_t sigma_t``:
   its third line, read by :meth:`AESAM.keeps_sam_step` after the first pass; otherwise an ERM
   step ``w_{t+1} = w_t - eta g_t`` on the first pass's gradient (one pass).
5. ``c_t``, linear in ``t`` over the ``T`` steps of the run, so that the threshold falls and SAM
   steps become more frequent as training proceeds: :meth:`AdaptivePolicy.threshold_factor`.
6. AE-LookSAM: the same policy chooses between LookSAM's two updates; a SAM step computes and
   stores ``g_v`` (:class:`~lets_hf.perturbation.looksam.LookSAM`), an ERM step descends along
   ``g + alpha (||g|| / ||g_v||) g_v`` with the stored ``g_v``.

Our readings, where the paper leaves a choice: ``mu`` and ``sigma^2`` start at 0; the statistics
take ``x_t`` before the comparison of step ``t`` (2-3 before 4); ``c_t`` runs from ``ae_lambda1``
at the first step to ``ae_lambda2`` at the last, ``c_t = lambda1 + (lambda2 - lambda1) t / (T - 1)``,
with the defaults 1 and -1 (a constant ``ae_lambda1`` when the horizon is unknown). Mind the names:
the transcription in junaidaliop/zij (``docs/math/aesam.md``) writes
``c_t = (t / T) lambda_1 + (1 - t / T) lambda_2``, where ``lambda_1`` is the value at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..checks import integer, number
from ..distributed import LOCAL, Ranks
from ..foreach import global_norm
from ..options import Option, owned_options
from .looksam import LOOKSAM_ALPHA, LOOKSAM_SPLIT, LookSAM
from .sam import SAM


class AdaptivePolicy:
    """The switching rule: SAM where ``||g||^2`` is large against its running mean and deviation."""

    paper = "Jiang et al., ICLR 2023"
    options = (
        Option("ae_delta", float, "AE-SAM / AE-LookSAM: decay of the moving averages", arg="delta"),
        Option("ae_lambda1", float, "AE-SAM / AE-LookSAM: threshold factor at the start", arg="lambda1"),
        Option("ae_lambda2", float, "AE-SAM / AE-LookSAM: threshold factor at the end", arg="lambda2"),
    )

    def __init__(self, delta: float = 0.9, lambda1: float = 1.0, lambda2: float = -1.0, total_steps: int | None = None):
        self.delta = number("ae_delta", delta, "in [0, 1)", lambda x: 0 <= x < 1)
        self.lambda1, self.lambda2 = number("ae_lambda1", lambda1), number("ae_lambda2", lambda2)
        self.total_steps = None if total_steps is None else integer("total_steps", total_steps, 1)
        self.mean, self.var = 0.0, 0.0

    def threshold_factor(self, step: int) -> float:
        """``c_t``: from ``lambda1`` at the first step to ``lambda2`` at the last (constant without a horizon)."""
        if not self.total_steps:
            return self.lambda1
        progress = min(step / max(self.total_steps - 1, 1), 1.0)
        return self.lambda1 + (self.lambda2 - self.lambda1) * progress

    def use_sam(self, step: int, squared_norm: float) -> bool:
        self.mean = self.delta * self.mean + (1 - self.delta) * squared_norm
        self.var = self.delta * self.var + (1 - self.delta) * (squared_norm - self.mean) ** 2
        return squared_norm >= self.mean + self.threshold_factor(step) * math.sqrt(self.var)

    def decide(self, step: int, grads: Sequence[Tensor], ranks: Ranks = LOCAL) -> bool:
        """From the first pass's gradients (a host sync: the decision picks the next pass); ``ranks``: the optimizer's
        collectives (:class:`~lets_hf.distributed.Ranks`), over which ``x_t`` is averaged."""
        return self.use_sam(step, float(ranks.mean(global_norm(grads) ** 2)))

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var = float(state.get("mean", 0.0)), float(state.get("var", 0.0))


POLICY_OPTIONS = owned_options(AdaptivePolicy)  # the policy's options, with AdaptivePolicy's defaults


class AdaptiveSAMStep:
    """What AE-SAM and AE-LookSAM share: the policy (``self.policy``) keeps or drops each planned SAM step, from the
    first pass's gradient, and its statistics are part of the rule's state. Mixed in before the rule it adapts."""

    policy: AdaptivePolicy

    def keeps_sam_step(self, step: int, grads: Sequence[Tensor], ranks: Ranks = LOCAL) -> bool:
        return self.policy.decide(step, grads, ranks)

    def state_dict(self, params: list[Tensor]) -> dict[str, Any]:
        return {**super().state_dict(params), "policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any], params: list[Tensor]) -> None:
        super().load_state_dict(state, params)
        self.policy.load_state_dict(state.get("policy", {}))


class AESAM(AdaptiveSAMStep, SAM):
    name, label, paper = "ae_sam", "AE-SAM", "Jiang et al., ICLR 2023"
    options = POLICY_OPTIONS

    def __init__(self, total_steps: int | None = None, **policy: Any):
        self.policy = AdaptivePolicy(total_steps=total_steps, **policy)


class AELookSAM(AdaptiveSAMStep, LookSAM):
    name, label, paper = "ae_looksam", "AE-LookSAM", "Jiang et al., ICLR 2023"
    options = (LOOKSAM_ALPHA, LOOKSAM_SPLIT, *POLICY_OPTIONS)

    def __init__(self, alpha: float = 0.7, split: str = "whole", total_steps: int | None = None, **policy: Any):
        super().__init__(k=1, alpha=alpha, split=split)
        self.policy = AdaptivePolicy(total_steps=total_steps, **policy)

    def plans_sam_step(self, step: int) -> bool:
        return True  # the policy decides after the first pass
