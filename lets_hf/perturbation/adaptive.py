"""AE-SAM and AE-LookSAM: Jiang, Yang, Zhang, Kwok, "An Adaptive Policy to Employ
Sharpness-Aware Minimization", ICLR 2023.

SAM is worth its second pass where the loss surface is sharp. The squared norm of the stochastic
gradient, ``x_t = ||g_t||^2``, is modelled as Gaussian with exponential moving averages
``mu_t = delta mu_{t-1} + (1 - delta) x_t`` and
``sigma2_t = delta sigma2_{t-1} + (1 - delta) (x_t - mu_t)^2``; the step is a SAM step when
``x_t >= mu_t + c_t sigma_t``, an ERM step otherwise. ``c_t`` moves linearly from ``lambda1`` to
``lambda2`` over the run (so SAM becomes more frequent), as in the paper's schedule; ``delta =
0.9``, ``lambda1 = 1``, ``lambda2 = -1`` are its defaults as read here. The decision needs the
first pass, so a distributed run averages ``x_t`` over ranks (one decision for all) and averages
the gradient of an ERM step. AE-LookSAM applies the policy to LookSAM: its ERM steps reuse the
stored orthogonal component.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

from torch import Tensor

from ..distributed import mean_over_ranks
from ..foreach import global_norm
from .looksam import LookSAM
from .sam import SAM


class AdaptivePolicy:
    """The switching rule: SAM where ``||g||^2`` is large against its running mean and deviation."""

    def __init__(self, delta: float = 0.9, lambda1: float = 1.0, lambda2: float = -1.0,
                 total_steps: Optional[int] = None):
        if not 0 <= delta < 1:
            raise ValueError(f"ae_delta must be in [0, 1), got {delta!r}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
        self.delta, self.lambda1, self.lambda2, self.total_steps = float(delta), float(lambda1), float(lambda2), total_steps
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

    def decide(self, step: int, grads: Sequence[Tensor]) -> bool:
        """From the first pass's gradients (a host sync: the decision picks the next pass)."""
        return self.use_sam(step, float(mean_over_ranks(global_norm(grads) ** 2)))

    def state_dict(self) -> Dict[str, Any]:
        return {"mean": self.mean, "var": self.var}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.mean, self.var = float(state.get("mean", 0.0)), float(state.get("var", 0.0))


class AESAM(SAM):
    name = "ae_sam"

    def __init__(self, **policy: Any):
        self.policy = AdaptivePolicy(**policy)

    def keeps_sam_step(self, step: int, grads: Sequence[Tensor]) -> bool:
        return self.policy.decide(step, grads)

    def state_dict(self, params: List[Tensor]) -> Dict[str, Any]:
        return {"policy": self.policy.state_dict()}

    def load_state_dict(self, state: Dict[str, Any], params: List[Tensor]) -> None:
        self.policy.load_state_dict(state.get("policy", {}))


class AELookSAM(LookSAM):
    name = "ae_looksam"

    def __init__(self, alpha: float = 0.7, **policy: Any):
        super().__init__(k=1, alpha=alpha)
        self.policy = AdaptivePolicy(**policy)

    def plans_sam_step(self, step: int) -> bool:
        return True  # the policy decides after the first pass

    def keeps_sam_step(self, step: int, grads: Sequence[Tensor]) -> bool:
        return self.policy.decide(step, grads)

    def state_dict(self, params: List[Tensor]) -> Dict[str, Any]:
        return {**super().state_dict(params), "policy": self.policy.state_dict()}

    def load_state_dict(self, state: Dict[str, Any], params: List[Tensor]) -> None:
        super().load_state_dict(state, params)
        self.policy.load_state_dict(state.get("policy", {}))
