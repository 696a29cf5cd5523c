"""The hypergradient estimator interface: how one ``h = d objective / d rho`` is estimated around a step.

An estimator owns the buffers, the state and the phase transitions of the hyper step;
:class:`~lets_hf.optimizer.LETSOptimizer` calls it at fixed points of every step and updates ``rho`` with
what it returns (a :class:`Hypergradient`, averaged over ranks). The fixed points, in the order of a step::

    at_ascent         first_step, with g of this step's batch in .grad (and its loss): complete a
                      pending estimate (the next-batch forms), drop one that was due and not taken
    keep_ascent_      first_step, before the perturbation: does this step form b? keep g (hvp "gradient")
    keep_perturbation_  first_step, after it: keep e = rho d (hvp "diag", "exact")
    form_b_           unperturb, g_hat in .grad, weights still perturbed: b = H d, then the rule's derivative
    before_base_step  just before the base optimizer's step (the part of J read before it)
    after_base_step   just after it: b -> J b, with g_hat still in .grad
    at_hyper_passes   apply_hypergradient, a = grad of the objective at theta_{t+1} in .grad

Its :class:`Stage` says what its ``tangent`` buffer (one tensor per parameter, allocated once and reused)
holds between those calls; each fixed point checks the stage it expects and leaves the next one::

    stage      tangent holds                            set by             what the step runs next
    IDLE       nothing of use (no b this step, spent)   at_ascent, ...      -
    KEPT       e = rho d (diag, exact) or g (fd)         keep_ascent_        the perturbed pass
    B          b = d (descent gradient) / d rho          form_b_             the base step
    HYPER_DUE  J b                                       after_base_step     the hyper passes at theta_{t+1}
    NEXT_DUE   J b (and what the hyper passes gave)      the estimator       the next step's ascent pass

``b`` is ``d g_hat / d rho`` (:mod:`lets_hf.radius.hvp`) and ``-eta J b`` is ``d theta_{t+1} / d rho``
(:mod:`lets_hf.radius.descent`), so ``h = -factor * sum_groups eta_group <a_group, (J b)_group>``
(:mod:`lets_hf.radius.objectives`). Which passes an estimator needs it says in
:attr:`~HypergradientEstimator.next_ascent_terms`: the terms of the objective that the next step's
ascent pass supplies instead of a pass of their own. The estimators are registered by name in
:mod:`lets_hf.radius.estimators`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from ... import foreach, sharding
from ...checks import integer

if TYPE_CHECKING:
    from ...distributed import Ranks
    from ..descent import DescentJacobian
    from ..hvp import HessianVectorProduct, LossClosure
    from ..objectives import UpperObjective

TERMS = ("train", "val")  # the terms of the upper objective at theta_{t+1}: l_r and l_v


class Stage(enum.Enum):
    """What an estimator's ``tangent`` holds, and what completes its estimate (module docstring)."""

    IDLE = "idle"
    KEPT = "kept"
    B = "b"
    HYPER_DUE = "hyper_due"
    NEXT_DUE = "next_due"


class Hypergradient(NamedTuple):
    """One estimate on this rank: ``value`` = ``h``, and ``gap`` = ``l_v - l_r`` where it has both losses."""

    value: Tensor
    gap: Tensor | None


class HypergradientEstimator(ABC):
    """One way to estimate ``h`` around a step (module docstring); ``name`` is its registered name.

    Args:
        hvp, descent, objective: the learned radius's ``b = H d``, its ``J`` and its upper objective.
        interval: a hyper step after every ``interval``-th optimizer step only (the others are plain SAM).
    """

    name: str
    paper: str = ""
    next_ascent_terms: frozenset[str] = frozenset()  # the terms the next step's ascent pass supplies
    after_descent = Stage.HYPER_DUE  # the stage after_base_step leaves

    def __init__(
        self, hvp: HessianVectorProduct, descent: DescentJacobian, objective: UpperObjective, interval: int = 1
    ):
        self.hvp, self.descent, self.objective = hvp, descent, objective
        self.interval = integer("lets_interval", interval, 1)
        self.stage = Stage.IDLE
        self.tangent: dict[Tensor, Tensor] = {}
        self.lrs: list[float] = []  # eta per parameter group, of the base step that made J b

    # -- the passes it needs ----------------------------------------------------------------------
    @property
    def validation_pass(self) -> bool:
        """Whether the hyper step runs a validation pass at ``theta_{t+1}``."""
        return "val" not in self.next_ascent_terms

    @property
    def training_pass(self) -> bool:
        """Whether the hyper step runs a training pass of its own at ``theta_{t+1}``."""
        return self.objective.needs_train_loss and "train" not in self.next_ascent_terms

    # -- the fixed points of a step, in its order ---------------------------------------------------
    def at_ascent(self, param_groups: list[dict], train_loss: Tensor | None, inv_grad_scale: Tensor | None):
        """``first_step``: complete a pending estimate (returned) with this batch's ``g`` in ``.grad``, or drop one
        that was due and not taken. The default drops it."""
        self.stage = Stage.IDLE
        return None

    def keep_ascent_(self, step_number: int, params: list[Tensor], grads: list[Tensor], ranks: Ranks) -> None:
        """Before the perturbation, ``g`` in ``grads``: step ``step_number`` (1-based) forms ``b`` if the interval
        allows; ``g`` is kept for ``b = (g_hat - g) / rho``, averaged over ranks as ``g_hat`` will be."""
        if step_number % self.interval:
            return
        self.stage = Stage.KEPT
        if self.hvp.keeps == "gradient":
            tangent = self._tangent(params)
            foreach.copy_(tangent, grads)
            ranks.average_(tangent)

    def keep_perturbation_(self, params: list[Tensor], perturbation: list[Tensor]) -> None:
        """After the perturbation ``e`` was formed: kept where ``b`` is made from it."""
        if self.stage is Stage.KEPT and self.hvp.keeps == "perturbation":
            foreach.copy_(self._tangent(params), perturbation)

    def form_b_(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        rho: Tensor,
        inv_grad_scale: Tensor | None,
        loss_closure: LossClosure | None,
        descent_derivative_: Callable[[list[Tensor]], None],
    ) -> None:
        """``unperturb``, ``g_hat`` in ``grads``: ``b = H d``, then the rule's derivative of its descent gradient."""
        if self.stage is not Stage.KEPT:
            return
        scale = rho.new_ones(()) if inv_grad_scale is None else inv_grad_scale.to(rho)
        b = self._tangent(params)
        self.hvp.product_(b, params=params, grads=grads, rho=rho, inv_grad_scale=scale, loss_closure=loss_closure)
        descent_derivative_(b)
        self.stage = Stage.B

    def before_base_step(self, base_optimizer: torch.optim.Optimizer) -> None:
        if self.stage is Stage.B:
            self.lrs = [group["lr"] for group in base_optimizer.param_groups]
            self.descent.before_step(self.tangent, base_optimizer)

    def after_base_step(self, base_optimizer: torch.optim.Optimizer) -> None:
        """``b -> J b`` with ``g_hat`` still in ``.grad``; then :attr:`after_descent`. A hyper step that was due
        and not taken before this step is dropped."""
        if self.stage is Stage.B:
            self.descent.apply_(self.tangent, base_optimizer)
            self.stage = self.after_descent
        elif self.stage is Stage.HYPER_DUE:
            self.stage = Stage.IDLE

    @abstractmethod
    def at_hyper_passes(
        self, param_groups: list[dict], val_loss: Tensor, train_loss: Tensor | None, inv_grad_scale: Tensor | None
    ) -> Hypergradient | None:
        """``apply_hypergradient``, ``a`` in ``.grad`` (its products may overwrite it): the estimate, or None
        (nothing due, or one that the next ascent pass completes)."""

    # -- state -------------------------------------------------------------------------------------
    def buffers(self) -> dict[str, dict[Tensor, Tensor]]:
        """The buffers it holds, by role (read them, do not write them)."""
        return {"tangent": self.tangent}

    def state_dict(self, params: list[Tensor]) -> dict[str, Any]:
        """What a resumed run needs to continue bit for bit (tensors by their parameter's index in ``params``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], params: list[Tensor]) -> None:
        if state:
            raise ValueError(
                f"the checkpoint holds a pending hyper step ({sorted(state)}) that the {self.name!r} estimator does "
                "not take: resume with the lets_train_term / lets_val_term it was saved with"
            )
        self.stage = Stage.IDLE

    # -- shared arithmetic -------------------------------------------------------------------------
    def weighted_dot(
        self, param_groups: Sequence[dict], inv_grad_scale: Tensor | None, into_tangent: bool = False
    ) -> Tensor | None:
        """``sum_groups eta_group <grad_group, (J b)_group>`` over parameters with both; the products overwrite the
        gradients, or the tangent with ``into_tangent`` (the one no longer needed: no model-sized temporary)."""
        total = None
        for group, lr in zip(param_groups, self.lrs):
            pairs = [(p.grad, self.tangent[p]) for p in group["params"] if p.grad is not None and p in self.tangent]
            if pairs:
                grads, tangents = [a for a, _ in pairs], [b for _, b in pairs]
                dead, other = (tangents, grads) if into_tangent else (grads, tangents)
                term = lr * foreach.dot(dead, other, into_a=True)
                total = term if total is None else total + term
        if total is not None and inv_grad_scale is not None:
            total = total * inv_grad_scale.to(total)
        return total

    def estimate(self, total: Tensor, val_loss: Tensor, train_loss: Tensor | None) -> Hypergradient:
        """``h = -factor * total`` for ``total = sum eta <a, J b>``, with the objective's factor of the gap."""
        gap = None if train_loss is None else (val_loss - train_loss).to(total)
        factor = self.objective.factor(gap if gap is not None else total.new_zeros(()))
        return Hypergradient(-factor * total, gap)

    def _tangent(self, params: list[Tensor]) -> list[Tensor]:
        """One buffer per parameter, allocated on first use and reused at every later step."""
        return allocated(self.tangent, params)

    def _indexed(self, store: dict[Tensor, Tensor], params: list[Tensor]) -> dict[int, Tensor]:
        return {i: store[p] for i, p in enumerate(params) if p in store}

    @staticmethod
    def _placed(saved: dict[Any, Tensor], params: list[Tensor]) -> dict[Tensor, Tensor]:
        return {params[int(i)]: sharding.like(value, params[int(i)]) for i, value in saved.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(interval={self.interval})"


def allocated(store: dict[Tensor, Tensor], params: Sequence[Tensor]) -> list[Tensor]:
    """``store``'s buffer of each parameter, allocated like it on first use (no copy) and reused after."""
    for p in params:
        if p not in store:
            store[p] = torch.empty_like(p, memory_format=torch.preserve_format)
    return [store[p] for p in params]
