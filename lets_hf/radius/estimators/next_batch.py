"""Hypergradients completed by the next step's ascent pass (ours): the next training batch at ``theta_{t+1}``.

The next step's ascent pass runs at ``theta_{t+1}`` anyway: its gradient ``grad L(B_{t+1}; theta_{t+1})`` and
loss are an unbiased estimate of a term of the objective at ``theta_{t+1}`` on a different batch, and save that
term's pass. The estimate of step ``t`` then lands at the start of step ``t+1`` (the last step's is dropped),
and ``J b`` waits in the tangent until then (stage ``NEXT_DUE``; it is saved in checkpoints, so that a resumed
run completes it bit for bit).

- :class:`NextTrainTerm` (``train_term="next"``, the gap objectives): the validation pass runs at
  ``theta_{t+1}``, ``<grad l_v, J b>`` and ``l_v`` are kept, and the next ascent pass gives
  ``<grad l_r, J b>`` and ``l_r``: ``h = -factor(l_v - l_r) (<grad l_v, J b> - <grad l_r, J b>)``, summed over
  groups with their ``eta``. Stages ``KEPT -> B -> HYPER_DUE -> NEXT_DUE -> IDLE``.
- :class:`NextValTerm` (``val_term="next"``, the ``val`` objective): no hyper pass at all; the next training
  batch is the validation batch, ``h = -<grad L(B_{t+1}; theta_{t+1}), eta J b>``. Stages
  ``KEPT -> B -> NEXT_DUE -> IDLE``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import Tensor

from .base import Hypergradient, HypergradientEstimator, Stage


class NextBatch(HypergradientEstimator):
    """What both forms share: ``J b`` (and the kept validation term) wait for the next ascent pass."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.val_term: tuple[Tensor, Tensor] | None = None  # NextTrainTerm, NEXT_DUE: l_v and <grad l_v, eta J b>

    def at_ascent(self, param_groups, train_loss: Tensor | None, inv_grad_scale) -> Hypergradient | None:
        """The next batch's ``g`` in ``.grad`` and its loss complete the estimate (the products overwrite ``J b``:
        ``g`` is still needed for this step's perturbation)."""
        if self.stage is not Stage.NEXT_DUE:
            return super().at_ascent(param_groups, train_loss, inv_grad_scale)
        if train_loss is None:
            raise ValueError("with train_term or val_term 'next', pass this batch's loss: first_step(train_loss=loss)")
        next_total = self.weighted_dot(param_groups, inv_grad_scale, into_tangent=True)
        val_term, self.val_term, self.stage = self.val_term, None, Stage.IDLE
        return self.completed(next_total, train_loss.detach(), val_term)

    @abstractmethod
    def completed(self, next_total: Tensor, next_loss: Tensor, val_term: tuple[Tensor, Tensor] | None) -> Hypergradient:
        """The estimate from the next batch's ``sum eta <g, J b>`` and loss, and the kept validation term."""

    def state_dict(self, params: list[Tensor]) -> dict[str, Any]:
        if self.stage is not Stage.NEXT_DUE:
            return {}
        state = {"tangent": self._indexed(self.tangent, params), "lrs": list(self.lrs)}
        if self.val_term is not None:
            state["val_loss"], state["val_total"] = self.val_term
        return state

    def load_state_dict(self, state: dict[str, Any], params: list[Tensor]) -> None:
        if not state:
            self.val_term, self.stage = None, Stage.IDLE
            return
        self.tangent = self._placed(state["tangent"], params)
        self.lrs = [float(lr) for lr in state["lrs"]]
        self.val_term = (state["val_loss"], state["val_total"]) if "val_loss" in state else None
        self.stage = Stage.NEXT_DUE


class NextTrainTerm(NextBatch):
    name, paper = "next_train", "ours"
    next_ascent_terms = frozenset({"train"})

    def at_hyper_passes(self, param_groups, val_loss: Tensor, train_loss: Tensor | None, inv_grad_scale):
        """``.grad`` holds ``grad l_v`` only: its term is kept for the next ascent pass."""
        if self.stage is not Stage.HYPER_DUE:
            return None
        total = self.weighted_dot(param_groups, inv_grad_scale)
        self.stage = Stage.IDLE if total is None else Stage.NEXT_DUE
        self.val_term = None if total is None else (val_loss, total)
        return None

    def completed(self, next_total, next_loss, val_term):
        val_loss, val_total = val_term
        return self.estimate(val_total - next_total, val_loss, next_loss)


class NextValTerm(NextBatch):
    name, paper = "next_val", "ours"
    next_ascent_terms = frozenset({"val"})
    after_descent = Stage.NEXT_DUE

    def at_hyper_passes(self, param_groups, val_loss, train_loss, inv_grad_scale):
        return None  # no hyper passes: the next ascent pass is the validation pass

    def completed(self, next_total, next_loss, val_term):
        return self.estimate(next_total, next_loss, None)
