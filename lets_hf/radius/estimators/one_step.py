"""The paper's one-step hypergradient (Wang et al., ECCV 2024, Algorithm 1): passes of its own at ``theta_{t+1}``.

After a step ``theta_{t+1} = theta_t - eta g_hat(rho)``, the hyper passes run the validation batch (and, for the
gap objectives, the training batch) at ``theta_{t+1}``; ``a``, the gradient of the objective there, meets the
tangent ``J b`` of the same step: ``h = -factor * sum_groups eta_group <a_group, (J b)_group>``. Its stages are the
interface's (:mod:`.base`): ``KEPT -> B -> HYPER_DUE -> IDLE``; nothing outlives the step, so nothing is saved.
"""

from __future__ import annotations

from torch import Tensor

from .base import HypergradientEstimator, Stage


class OneStep(HypergradientEstimator):
    name, paper = "one_step", "Wang et al., ECCV 2024"

    def at_hyper_passes(self, param_groups, val_loss: Tensor, train_loss: Tensor | None, inv_grad_scale):
        if self.stage is not Stage.HYPER_DUE:
            return None
        self.stage = Stage.IDLE
        total = self.weighted_dot(param_groups, inv_grad_scale)
        return None if total is None else self.estimate(total, val_loss, train_loss)
