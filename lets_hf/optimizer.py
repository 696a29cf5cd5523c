"""The plain-PyTorch API: a SAM-family optimizer wrapper with a learnable radius.

One LETS step (Wang et al., ECCV 2024, Algorithm 1), for a train batch ``B`` and a validation
batch ``V``::

    loss_fn(model(B)).backward()           # g = grad L(B; theta_t)
    optimizer.first_step(zero_grad=True)   # theta_t + rho_t d, with d the rule's ascent direction
    if optimizer.is_perturbed:             # False on a variant's ERM step or a non-finite g: .grad keeps g
        loss_fn(model(B)).backward()       # g_hat = grad L(B; theta_t + rho_t d)
    optimizer.second_step(zero_grad=True)  # restore theta_t exactly, base step: theta_{t+1}
    optimizer.hyper_step(loss_fn(model(V)), loss_fn(model(B)))   # rho_{t+1}

``second_step`` is ``unperturb()`` then ``step()``; frameworks that call ``step()`` themselves
(the Hugging Face Trainer, GradScaler) call ``unperturb()`` before it. With a
:class:`~lets_hf.radius.FixedRadius` (a float ``radius``) there is no hyper step and this is plain
SAM / ASAM. Under DDP, run the first pass and the hyper step's forward passes under
``model.no_sync()``; the hypergradient is averaged over ranks so that every rank holds one ``rho``.
Under FSDP2 (``fully_shard``) run every pass synced (a backward under ``no_sync`` leaves ``.grad``
None there): the ascent then uses the global gradient, and norms and dot products are taken over
all shards (:mod:`lets_hf.sharding`); ``lets_hvp="exact"`` is not available.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, Union

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import foreach, sharding
from .distributed import average_gradients_, mean_over_ranks
from .perturbation import PerturbationRule, get_perturbation
from .radius import FixedRadius, RadiusController
from .radius.base import check_radius


def _as_rule(perturbation: Union[str, PerturbationRule]) -> PerturbationRule:
    if isinstance(perturbation, PerturbationRule):
        return perturbation
    if isinstance(perturbation, str):
        return get_perturbation(perturbation)
    raise ValueError(f"perturbation must be a name or a PerturbationRule, got {perturbation!r}")


def _as_controller(radius: Union[float, RadiusController]) -> RadiusController:
    if isinstance(radius, RadiusController):
        return radius
    if isinstance(radius, numbers.Real) and not isinstance(radius, bool):
        return FixedRadius(check_radius("radius", radius))
    raise ValueError(f"radius must be a number > 0 or a RadiusController, got {radius!r}")


class LETSOptimizer(Optimizer):
    """Wraps a base optimizer class (SGD, AdamW, ...) into SAM / ASAM with a fixed or learned radius.

    Args:
        params: the parameters or parameter groups, as for any torch optimizer.
        base_optimizer: the class of the optimizer that takes the descent step, e.g.
            ``torch.optim.SGD``; ``base_kwargs`` go to it.
        perturbation: ``"sam"``, ``"asam"`` or a :class:`~lets_hf.perturbation.PerturbationRule`.
        radius: a fixed ``rho`` (a number) or a controller, e.g. :class:`~lets_hf.radius.LETSRadius`.
    """

    def __init__(self, params: Iterable, base_optimizer: Type[Optimizer], *,
                 perturbation: Union[str, PerturbationRule] = "sam",
                 radius: Union[float, RadiusController] = 0.05, **base_kwargs: Any):
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise ValueError(f"base_optimizer must be a torch.optim.Optimizer subclass (e.g. torch.optim.SGD), "
                             f"got {base_optimizer!r}")
        self.rule = _as_rule(perturbation)
        self.radius = _as_controller(radius)
        self.base_optimizer = base_optimizer(params, **base_kwargs)
        if self.radius.learns:
            self.radius.descent.check(self.base_optimizer)
        super().__init__(self.base_optimizer.param_groups, self.base_optimizer.defaults)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self._saved: Dict[Tensor, Tensor] = {}
        self._kept: Dict[Tensor, Tensor] = {}
        self._perturbed: List[Tensor] = []
        self._rho_used: Optional[Tensor] = None
        self._ascent: Dict[Tensor, Tensor] = {}
        self._learning = False
        self._hyper_due = False
        self._pending: Optional[Tuple[Tensor, Tensor]] = None
        self.steps = 0
        self.skipped_ascents = 0  # SAM steps taken as stock steps: their ascent gradient was not finite
        self._step_lrs: List[float] = [group["lr"] for group in self.param_groups]
        self.last_hypergradient: Optional[Tensor] = None
        self.last_gap: Optional[Tensor] = None
        self.last_ascent_grad_norm: Optional[Tensor] = None

    # -- the two SAM steps -------------------------------------------------------------------
    @property
    def rho(self) -> float:
        """The current radius (a host sync when it is learned: read it at logging steps)."""
        return self.radius.rho

    @property
    def is_perturbed(self) -> bool:
        return bool(self._perturbed)

    @property
    def hyper_step_due(self) -> bool:
        """Whether the step just taken gets a hyper step (a LETS step the controller's interval allows)."""
        return self._hyper_due

    @property
    def sam_step_planned(self) -> bool:
        """Whether the next step is planned as SAM (two passes: run its first pass under ``no_sync``) or ERM."""
        return self.rule.plans_sam_step(self.steps)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False, inv_grad_scale: Optional[Tensor] = None,
                   train_loss: Optional[Tensor] = None) -> None:
        """Save ``theta_t`` and move to ``theta_t + rho_t d``, with ``g`` read from ``.grad``.

        ``d`` does not depend on the gradient's scale; ``inv_grad_scale`` (fp16) unscales what is
        logged and the pending hyper step. With ``train_term="next"``, ``train_loss`` (this batch's
        loss, whose gradient is in ``.grad``) completes the previous step's hyper step first.
        Variants may make this an ERM step instead: then the weights stay, ``.grad`` becomes the
        descent gradient, :attr:`is_perturbed` is False and the second pass is skipped.

        A non-finite ascent gradient (a NaN or inf in ``g`` or in its norm, on any rank; an fp16
        overflow too) has no direction to climb: the weights stay unperturbed, ``rho`` and its
        state are not touched, :attr:`is_perturbed` is False and :attr:`skipped_ascents` counts
        it. ``.grad`` keeps ``g`` (averaged over ranks, as a stock step's), ``zero_grad`` is
        ignored, and the caller skips the second pass: ``second_step()`` is then the base
        optimizer's stock step on this batch's gradient, with whatever that does with a non-finite
        value (GradScaler skips it; fp32/bf16 steps with it, as training without SAM would). The
        check reads one flag on the host (the same decision gates the second pass; the stock
        Trainer already reads the loss on the host every step for ``logging_nan_inf_filter``), and
        under DDP all-reduces the norm (one scalar) so that every rank decides alike.
        """
        if self._perturbed:
            raise RuntimeError("first_step() called twice without second_step() / unperturb()")
        if self._pending is not None:
            self.finish_hyper_step(train_loss, inv_grad_scale)
        self._hyper_due = False
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        norm = foreach.global_norm(grads)
        self.last_ascent_grad_norm = norm if inv_grad_scale is None else norm * inv_grad_scale.to(norm)
        self._learning = False
        if not self.rule.plans_sam_step(self.steps):
            self.rule.erm_gradient_(params, grads)
            return
        if not bool(torch.isfinite(mean_over_ranks(norm))):  # one decision for all ranks: NaN/inf on any
            average_gradients_(grads)  # the first pass ran under no_sync
            self.skipped_ascents += 1
            return
        if not self.rule.keeps_sam_step(self.steps, grads):
            average_gradients_(grads)  # the first pass ran under no_sync
            self.rule.erm_gradient_(params, grads)
            return
        self._perturb(params, grads)
        if zero_grad:
            self.zero_grad()

    def _perturb(self, params: List[Tensor], grads: List[Tensor]) -> None:
        self.radius.observe_learning_rate(self.param_groups[0]["lr"])
        rho = self.radius.rho_tensor(params[0].device)
        self._learning = self.radius.learns and self.radius.hyper_step_due(self.steps + 1)
        keeps = self.radius.hvp.keeps if self._learning else None
        if keeps == "gradient":  # g for b = (g_hat - g) / rho, averaged over ranks as g_hat will be
            kept = self._buffers(self._kept, params)
            foreach.copy_(kept, grads)
            average_gradients_(kept)
        if self.rule.needs_ascent_gradient:
            foreach.copy_(self._buffers(self._ascent, params), grads)
        foreach.copy_(self._buffers(self._saved, params), params)
        self.rule.perturbation_(params, grads, rho)
        if keeps == "perturbation":
            foreach.copy_(self._buffers(self._kept, params), grads)
        torch._foreach_add_(params, grads)
        self._perturbed, self._rho_used = params, rho

    @torch.no_grad()
    def unperturb(self, inv_grad_scale: Optional[Tensor] = None,
                  loss_closure: Optional[Callable[[], Tensor]] = None) -> None:
        """With ``g_hat`` in ``.grad``: form ``b = H d`` (on LETS steps), then restore ``theta_t`` bit for bit.

        ``inv_grad_scale`` undoes a loss scale carried by the gradients (fp16); ``loss_closure``
        returns the training loss at the current weights, for ``lets_hvp="exact"``.
        """
        params = self._perturbed
        if not params:
            return
        if self._learning:
            rho = self._rho_used
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            scale = rho.new_ones(()) if inv_grad_scale is None else inv_grad_scale.to(rho)
            b = self._buffers(self._kept, params)
            self.radius.hvp.product_(b, params=params, grads=grads, rho=rho, inv_grad_scale=scale,
                                     loss_closure=loss_closure)
            ascent = self._buffers(self._ascent, params) if self.rule.needs_ascent_gradient else []
            self.rule.descent_derivative_(params, b, grads, ascent)  # b: the derivative of the rule's descent
        foreach.copy_(params, self._buffers(self._saved, params))
        if self._learning:  # theta_t's copy is dead until the next ascent: its memory serves the hyper passes
            self._saved.clear()
        if self.rule.needs_ascent_gradient:
            self.rule.descent_gradient_(params, [p.grad for p in params], self._buffers(self._ascent, params))
        self._perturbed = []

    def second_step(self, zero_grad: bool = False, loss_closure: Optional[Callable[[], Tensor]] = None) -> None:
        """Restore ``theta_t`` and take the base optimizer's step with ``g_hat``: ``theta_{t+1}``."""
        self.unperturb(loss_closure=loss_closure)
        self.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Optional[Callable[[], Tensor]] = None):
        """The base optimizer's step on the gradients in ``.grad`` (after :meth:`unperturb`); on LETS
        steps ``b`` then becomes ``J b``, the step's derivative (:mod:`lets_hf.radius.descent`)."""
        if self._perturbed:
            raise RuntimeError("step() called on perturbed weights: call unperturb() (or second_step()) first")
        self._step_lrs = [group["lr"] for group in self.param_groups]
        if self._learning:
            self.radius.descent.before_step(self._kept, self.base_optimizer)
        loss = self.base_optimizer.step(closure)
        if self._learning:
            self.radius.descent.apply_(self._kept, self.base_optimizer)  # b -> J b, with g_hat still in .grad
        self.steps += 1
        self._hyper_due, self._learning = self._learning, False
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's; ``set_to_none=False`` zeroes the existing gradient buffers in place (no allocation)."""
        if set_to_none:
            self.base_optimizer.zero_grad(set_to_none=True)
            return
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)

    # -- the hyper step ----------------------------------------------------------------------
    def hyper_step(self, val_loss: Tensor, train_loss: Optional[Tensor] = None) -> Optional[Tensor]:
        """Update ``rho`` from ``l_v = L(V; theta_{t+1})`` and ``l_r = L(B; theta_{t+1})``.

        Returns the hypergradient ``h = d objective / d rho`` (a 0-dim tensor), or None when no
        update happened now (fixed radius, a step the interval skips, or ``train_term="next"``,
        which needs no ``train_loss`` here and completes at the next ``first_step``). Check
        :attr:`hyper_step_due` before computing the losses to save their passes. Gradients are
        left as None (zero).
        """
        if not self.hyper_step_due:
            return None
        from_next_step = self.radius.train_term_from_next_step
        differentiated = val_loss if from_next_step else self.radius.objective.differentiated(val_loss, train_loss)
        self.zero_grad()  # None: the backward writes fresh gradients instead of adding them to zeros
        differentiated.backward()
        train = None if from_next_step or train_loss is None else train_loss.detach()
        return self.apply_hypergradient(val_loss.detach(), train)

    @torch.no_grad()
    def apply_hypergradient(self, val_loss: Tensor, train_loss: Optional[Tensor] = None,
                            inv_grad_scale: Optional[Tensor] = None) -> Optional[Tensor]:
        """Update ``rho`` with ``a`` (the gradient of the upper objective at ``theta_{t+1}``) in ``.grad``.

        ``h = -factor * sum_groups eta_group <a_group, b_group>``: with one learning rate this is
        the paper's ``-eta_t (l_v - l_r) <a, b>`` (``gap2``); per-group rates follow the same chain
        rule. With ``train_term="next"``, ``.grad`` holds ``grad l_v`` only and the update waits
        for the next step's ascent pass (:meth:`finish_hyper_step`).
        """
        self._hyper_due = False
        total = self._weighted_dot_with_b(inv_grad_scale)
        self.zero_grad()
        if total is None:
            return None
        if self.radius.train_term_from_next_step:
            self._pending = (val_loss, total)
            return None
        return self._update_radius(total, val_loss, train_loss)

    @torch.no_grad()
    def finish_hyper_step(self, train_loss: Optional[Tensor], inv_grad_scale: Optional[Tensor] = None) -> Optional[Tensor]:
        """``train_term="next"``: with ``grad L(B_{t+1}; theta_{t+1})`` in ``.grad`` and its loss, update ``rho``."""
        if self._pending is None:
            return None
        if train_loss is None:
            raise ValueError("with train_term='next', pass this batch's loss: first_step(train_loss=loss)")
        val_loss, val_total = self._pending
        self._pending = None
        val_minus_train = val_total - self._weighted_dot_with_b(inv_grad_scale, overwrite_b=True)
        return self._update_radius(val_minus_train, val_loss, train_loss.detach())

    def _weighted_dot_with_b(self, inv_grad_scale: Optional[Tensor], overwrite_b: bool = False) -> Optional[Tensor]:
        """``sum_groups eta_group <grad_group, b_group>`` over parameters that have both; the products overwrite
        the gradients, or ``b`` with ``overwrite_b`` (the one the caller no longer needs: no model-sized temporary)."""
        total = None
        for group, lr in zip(self.param_groups, self._step_lrs):
            pairs = [(p.grad, self._kept[p]) for p in group["params"] if p.grad is not None and p in self._kept]
            if pairs:
                grads, bs = [a for a, _ in pairs], [b for _, b in pairs]
                dead, other = (bs, grads) if overwrite_b else (grads, bs)
                term = lr * foreach.dot(dead, other, into_a=True)
                total = term if total is None else total + term
        if total is not None and inv_grad_scale is not None:
            total = total * inv_grad_scale.to(total)
        return total

    def _update_radius(self, total: Tensor, val_loss: Tensor, train_loss: Optional[Tensor]) -> Tensor:
        gap = None if train_loss is None else (val_loss - train_loss).to(total)
        factor = self.radius.objective.factor(gap if gap is not None else total.new_zeros(()))
        hypergradient = mean_over_ranks(-factor * total)
        self.radius.update(hypergradient)
        self.last_hypergradient = hypergradient
        self.last_gap = None if gap is None else mean_over_ranks(gap)
        return hypergradient

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """The base optimizer's state (its moments too), the radius controller's and the rule's."""
        state = {"base": self.base_optimizer.state_dict(), "radius": self.radius.state_dict(), "steps": self.steps,
                 "skipped_ascents": self.skipped_ascents, "step_lrs": list(self._step_lrs),
                 "rule": self.rule.state_dict(self._all_params())}
        if self._pending is not None:  # train_term="next": the half-done hyper step and its b
            val_loss, val_total = self._pending
            state["pending"] = {"val_loss": val_loss, "val_total": val_total,
                                "b": {i: self._kept[p] for i, p in enumerate(self._all_params()) if p in self._kept}}
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if not (isinstance(state_dict, dict) and {"base", "radius"} <= set(state_dict)):
            raise ValueError("not a LETSOptimizer state dict: expected the keys 'base' and 'radius'")
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.radius.load_state_dict(state_dict["radius"])
        self.steps = int(state_dict.get("steps", 0))
        self.skipped_ascents = int(state_dict.get("skipped_ascents", 0))
        self._step_lrs = [float(lr) for lr in state_dict.get("step_lrs", self._step_lrs)]
        params = self._all_params()
        self.rule.load_state_dict(state_dict.get("rule", {}), params)
        pending = state_dict.get("pending")
        self._pending = None if pending is None else (pending["val_loss"], pending["val_total"])
        if pending is not None:
            self._kept = {params[int(i)]: sharding.like(b, params[int(i)]) for i, b in pending["b"].items()}

    # -- helpers -----------------------------------------------------------------------------
    def _all_params(self) -> List[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @staticmethod
    def _buffers(store: Dict[Tensor, Tensor], params: List[Tensor]) -> List[Tensor]:
        """One buffer per parameter, allocated on first use and reused at every later step."""
        for p in params:
            if p not in store:
                store[p] = torch.empty_like(p, memory_format=torch.preserve_format)
        return [store[p] for p in params]

    def __repr__(self) -> str:
        return f"LETSOptimizer(rule={self.rule!r}, radius={self.radius!r}, base={type(self.base_optimizer).__name__})"
