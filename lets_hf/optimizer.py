"""The plain-PyTorch API: a SAM-family optimizer wrapper with a learnable radius.

One LETS step (Wang et al., ECCV 2024, Algorithm 1) is one call, for a train batch ``B`` and a
validation batch ``V``; each closure returns its batch's loss *with its graph* (``step`` runs
every backward itself)::

    closure = lambda: loss_fn(model(x), y)             # L(B; current weights)
    val_closure = lambda: loss_fn(model(xv), yv)       # L(V; current weights), a learned radius only
    optimizer.step(closure, val_closure, model=model)  # theta_{t+1} and rho_{t+1}; .grad left None

``step(closure, val_closure)`` runs the whole protocol, in this order:

1. ascent pass: ``closure()`` backward, ``g = grad L(B; theta_t)`` (skipped when ``loss=`` says
   that ``g`` is in ``.grad`` already); with ``train_term="next"`` or ``val_term="next"`` its gradient
   and loss complete the previous step's hyper step;
2. :meth:`~LETSOptimizer.first_step`: ``theta_t + rho_t d``, ``d`` the rule's ascent direction;
3. perturbed pass: ``closure()`` backward, ``g_hat = grad L(B; theta_t + rho_t d)``; skipped on a
   variant's ERM step and on a non-finite ``g`` (then the base step takes ``g``);
4. :meth:`~LETSOptimizer.unperturb`: ``b = H d`` (a LETS step; ``lets_hvp="exact"`` differentiates
   ``closure()`` twice), ``theta_t`` restored bit for bit; ``max_grad_norm`` clips ``g_hat``;
5. the base step: ``theta_{t+1}``; on a LETS step ``b`` becomes ``J b``;
6. hyper passes, when :attr:`~LETSOptimizer.hyper_step_due`: ``val_closure()`` and, where the
   objective takes it now (:attr:`~lets_hf.radius.base.LearnedRadius.hyper_train_pass`),
   ``closure()`` at ``theta_{t+1}``, differentiated by the objective
   (:meth:`~lets_hf.radius.objectives.UpperObjective.backward`); then ``rho_{t+1}``. With
   ``val_term="next"`` there is none (and no ``val_closure``): the next ascent pass is the validation pass.

With ``model=``, the ascent pass (on a planned SAM step) and the hyper passes run under
``model.no_sync()`` where the model has one (DDP: the per-worker ascent gradient of the SAM paper;
the hypergradient is averaged over ranks, so that every rank holds one ``rho``), and BatchNorm
running statistics move in the ascent pass only. Under FSDP2 (``fully_shard``: no ``no_sync``)
every pass is synced: the ascent uses the global gradient, norms and dot products are taken over
all shards (:mod:`lets_hf.sharding`); ``lets_hvp="exact"`` is not available there. With a
:class:`~lets_hf.radius.FixedRadius` (a float ``radius``) there is no hyper step and this is plain
SAM / ASAM.

The same step in parts, for loops that need to act between them (loss scaling, accumulation)::

    loss = loss_fn(model(x), y); loss.backward()           # g
    optimizer.first_step(zero_grad=True, train_loss=loss.detach())
    if optimizer.is_perturbed:                              # False on an ERM step or a non-finite g
        loss_fn(model(x), y).backward()                     # g_hat
    optimizer.second_step(zero_grad=True)                   # unperturb(), then step(): theta_{t+1}
    if optimizer.hyper_step_due:
        optimizer.hyper_step(loss_fn(model(xv), yv), loss_fn(model(x), y))   # rho_{t+1}

``second_step`` is ``unperturb()`` then ``step()``; ``step()`` without a closure is the base
optimizer's step, as frameworks that call it themselves expect (the Hugging Face Trainer,
GradScaler: they call ``unperturb()`` before it).

Phases and buffers. :attr:`~LETSOptimizer.phase` names where a step stands; three buffers of one
tensor per parameter (allocated once, reused at every step; :meth:`~LETSOptimizer.buffer_bytes`)
hold, by role::

    phase           READY --first_step--> PERTURBED --unperturb--> RESTORED --step--> HYPER_DUE --hyper step--> READY
    weights         theta_t               theta_t + e              theta_t            theta_{t+1}
    theta_t         -                     theta_t                  - (freed: LETS)    -
    ascent_gradient -                     g (rules that need it)   -                  -
    tangent         (J b, NEXT_PASS_DUE) e (diag, exact) or       b = H d            J b
                                          g (finite_difference)

``e = rho d`` is the perturbation. ``tangent`` carries rho's derivative through the step: ``b``
is ``d g_hat / d rho`` and ``-eta J b`` is ``d theta_{t+1} / d rho``. With ``train_term="next"``
the hyper step stops half way, in ``NEXT_PASS_DUE`` (``J b`` and ``<grad l_v, J b>`` kept), until
the next ``first_step``'s ``g`` completes it; with ``val_term="next"`` the step goes from RESTORED to
``NEXT_PASS_DUE`` directly (``J b`` kept), and the next ``g`` is the whole validation term. A step
without a hyper step (a fixed radius, a step the interval skips) holds no tangent and goes from
RESTORED to READY; a step taken as ERM (a variant's, or a non-finite ``g``) stays READY through
``first_step``.
"""

from __future__ import annotations

import contextlib
import enum
import numbers
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.profiler import record_function

from . import foreach, sharding
from .batchnorm import frozen_batchnorm_stats
from .checks import positive
from .distributed import average_gradients_, mean_over_ranks
from .perturbation import PerturbationRule, get_perturbation
from .radius import FixedRadius, LearnedRadius, RadiusController
from .radius.base import check_learned_radius, check_radius

Closure = Callable[[], Tensor]
ROLES = ("theta_t", "ascent_gradient", "tangent")  # the buffers, by role (module docstring)


class Phase(enum.Enum):
    """Where a step stands (the module docstring draws the diagram)."""

    READY = "ready"  # theta_t (or theta_{t+1} of the last step): the next step may start
    PERTURBED = "perturbed"  # theta_t + e, after first_step: the perturbed pass, then unperturb
    RESTORED = "restored"  # theta_t again, g_hat in .grad, after unperturb: the base step next
    HYPER_DUE = "hyper_due"  # theta_{t+1} after a LETS step, J b held: the hyper step next
    NEXT_PASS_DUE = "next_pass_due"  # train_term / val_term "next": the hyper step waits for the next batch's g


def _labelled(name: str) -> AbstractContextManager:
    """A ``torch.profiler`` range for one part of :meth:`LETSOptimizer.step`'s protocol."""
    return record_function(f"LETSOptimizer.{name}")


def _backward(loss: Any) -> None:
    """``loss.backward()`` for a closure's loss, with a message for a closure that ran it already."""
    if not (isinstance(loss, Tensor) and loss.requires_grad):
        raise ValueError(
            f"the closure must return its batch's loss as a tensor with its graph (step runs "
            f"backward itself), got {type(loss).__name__}"
        )
    try:
        loss.backward()
    except RuntimeError as error:
        if "second time" not in str(error):
            raise
        raise ValueError(
            "the closure must return the loss without calling backward(): step runs every backward "
            "pass itself (unlike davda54/sam's closure)"
        ) from error


def _as_rule(perturbation: str | PerturbationRule) -> PerturbationRule:
    if isinstance(perturbation, PerturbationRule):
        return perturbation
    if isinstance(perturbation, str):
        return get_perturbation(perturbation)
    raise ValueError(f"perturbation must be a name or a PerturbationRule, got {perturbation!r}")


def _as_controller(radius: float | RadiusController) -> RadiusController:
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
        radius: a fixed ``rho`` (a number) or a controller, e.g. :class:`~lets_hf.radius.LETSRadius`
            (a learned one implements :class:`~lets_hf.radius.base.LearnedRadius`).
    """

    def __init__(
        self,
        params: Iterable,
        base_optimizer: type[Optimizer],
        *,
        perturbation: str | PerturbationRule = "sam",
        radius: float | RadiusController = 0.05,
        **base_kwargs: Any,
    ):
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise ValueError(
                f"base_optimizer must be a torch.optim.Optimizer subclass (e.g. torch.optim.SGD), "
                f"got {base_optimizer!r}"
            )
        self.rule = _as_rule(perturbation)
        self.radius = _as_controller(radius)
        self.base_optimizer = base_optimizer(params, **base_kwargs)
        if isinstance(self.radius, LearnedRadius):
            check_learned_radius(self.radius)
            self.radius.descent.check(self.base_optimizer)
        super().__init__(self.base_optimizer.param_groups, self.base_optimizer.defaults)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.phase = Phase.READY
        # the buffers, by role (module docstring): one tensor per parameter each
        self._theta_t: dict[Tensor, Tensor] = {}
        self._ascent_gradient: dict[Tensor, Tensor] = {}
        self._tangent: dict[Tensor, Tensor] = {}
        # the step's scalars: each is valid in the phases named
        self._moved: list[Tensor] = []  # PERTURBED: the parameters first_step moved
        self._rho_used: Tensor | None = None  # PERTURBED: the rho of that move
        self._lets_step = False  # PERTURBED, RESTORED: this step forms b in the tangent (it gets a hyper step)
        self._val_term: tuple[Tensor, Tensor] | None = None  # NEXT_PASS_DUE: l_v and <grad l_v, J b> (weighted)
        self._step_lrs: list[float] = [group["lr"] for group in self.param_groups]  # the last base step's rates
        self.steps = 0
        self.skipped_ascents = 0  # SAM steps taken as stock steps: their ascent gradient was not finite
        self.last_hypergradient: Tensor | None = None
        self.last_gap: Tensor | None = None
        self.last_ascent_grad_norm: Tensor | None = None

    @property
    def rho(self) -> float:
        """The current radius (a host sync when it is learned: read it at logging steps)."""
        return self.radius.rho

    @property
    def is_perturbed(self) -> bool:
        """Whether the weights are at ``theta_t + e`` (between :meth:`first_step` and :meth:`unperturb`)."""
        return self.phase is Phase.PERTURBED

    @property
    def hyper_step_due(self) -> bool:
        """Whether the step just taken gets a hyper step (a LETS step the controller's interval allows)."""
        return self.phase is Phase.HYPER_DUE

    @property
    def sam_step_planned(self) -> bool:
        """Whether the next step is planned as SAM (two passes: run its first pass under ``no_sync``) or ERM."""
        return self.rule.plans_sam_step(self.steps)

    # -- the whole step ----------------------------------------------------------------------
    def step(
        self,
        closure: Closure | None = None,
        val_closure: Closure | None = None,
        *,
        model: nn.Module | None = None,
        loss: Tensor | None = None,
        max_grad_norm: float | None = None,
    ) -> Any:
        """One whole SAM / LETS step with ``closure``; without it, the base optimizer's step alone.

        ``closure()`` returns the training batch's loss at the current weights with its graph, no
        backward (``step`` runs it at ``theta_t``, ``theta_t + e`` and, for the hyper step, ``theta_{t+1}``);
        ``val_closure()`` a validation batch's loss, likewise (needed with a learned radius). ``model``:
        the model they run, for ``no_sync()`` (DDP) and BatchNorm (module docstring). ``loss``: the
        ascent pass was run by the caller, its gradient is in ``.grad`` and this is its loss.
        ``max_grad_norm`` clips ``g_hat``'s global norm before the base step. Returns the ascent
        pass's loss (detached) and leaves ``.grad`` None. The protocol is in the module docstring.

        ``step()`` without a closure is the base optimizer's step on the gradients in ``.grad``
        (after :meth:`unperturb`); on LETS steps ``b`` then becomes ``J b``
        (:mod:`lets_hf.radius.descent`). It is what frameworks call (HF Trainer, GradScaler).
        """
        if closure is None:
            if val_closure is not None or model is not None or loss is not None or max_grad_norm is not None:
                raise ValueError(
                    "val_closure, model, loss and max_grad_norm belong to step(closure, ...): pass the "
                    "training closure too, or call step() alone for the base optimizer's step"
                )
            return self._base_step()
        return self._whole_step(closure, val_closure, model, loss, max_grad_norm)

    def _whole_step(
        self,
        closure: Closure,
        val_closure: Closure | None,
        model: nn.Module | None,
        loss: Tensor | None,
        max_grad_norm: float | None,
    ) -> Tensor:
        if isinstance(self.radius, LearnedRadius) and not self.radius.val_term_from_next_step and val_closure is None:
            raise ValueError(
                "a learned radius needs val_closure: a function returning a validation batch's loss "
                "(with its graph, no backward), e.g. step(closure, lambda: loss_fn(model(xv), yv))"
            )
        if max_grad_norm is not None:
            positive("max_grad_norm", max_grad_norm)
        if self.phase is Phase.PERTURBED:
            raise RuntimeError("step(closure) called on perturbed weights: call unperturb() (or second_step()) first")
        synced = contextlib.nullcontext
        no_sync = synced if model is None else getattr(model, "no_sync", synced)
        frozen = synced if model is None else (lambda: frozen_batchnorm_stats(model))
        if loss is None:
            with _labelled("ascent_pass"), no_sync() if self.sam_step_planned else synced():
                loss = closure()
                _backward(loss)
        with _labelled("first_step"):
            self.first_step(zero_grad=True, train_loss=loss.detach())
        if self.is_perturbed:
            with _labelled("perturbed_pass"), frozen():
                _backward(closure())
        with _labelled("unperturb"), frozen():
            self.unperturb(loss_closure=closure)
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._all_params(), max_grad_norm)
        with _labelled("base_step"):
            self._base_step()
        self.zero_grad()
        if self.hyper_step_due:
            with _labelled("hyper_passes"), no_sync(), frozen():
                val_loss, train_loss = self._hyper_passes(closure, val_closure)
            with _labelled("apply_hypergradient"):
                self.apply_hypergradient(val_loss.detach(), train_loss)
        return loss.detach()

    def _hyper_passes(self, closure: Closure, val_closure: Closure) -> tuple[Tensor, Tensor | None]:
        """``a`` into ``.grad`` at ``theta_{t+1}`` by the objective's backward: ``l_v``, then ``-l_r`` where the
        objective takes it now (its graph built after ``l_v``'s is freed); returns ``l_v`` and ``l_r``."""
        val_loss = val_closure()
        parts = (closure() for _ in range(1)) if self.radius.hyper_train_pass else ()
        return val_loss, self.radius.objective.backward(val_loss, parts)

    # -- the parts ---------------------------------------------------------------------------
    @torch.no_grad()
    def first_step(
        self, zero_grad: bool = False, inv_grad_scale: Tensor | None = None, train_loss: Tensor | None = None
    ) -> None:
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
        if self.phase is Phase.PERTURBED:
            raise RuntimeError("first_step() called twice without second_step() / unperturb()")
        if self.phase is Phase.NEXT_PASS_DUE:
            self.finish_hyper_step(train_loss, inv_grad_scale)
        self.phase = Phase.READY  # a hyper step that was due and not taken is dropped
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        norm = foreach.global_norm(grads)
        self.last_ascent_grad_norm = norm if inv_grad_scale is None else norm * inv_grad_scale.to(norm)
        self._lets_step = False
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

    def _perturb(self, params: list[Tensor], grads: list[Tensor]) -> None:
        self.radius.observe_learning_rate(self.param_groups[0]["lr"])
        rho = self.radius.rho_tensor(params[0].device)
        self._lets_step = isinstance(self.radius, LearnedRadius) and self.radius.hyper_step_due(self.steps + 1)
        keeps = self.radius.hvp.keeps if self._lets_step else None
        if keeps == "gradient":  # g for b = (g_hat - g) / rho, averaged over ranks as g_hat will be
            tangent = self._buffers(self._tangent, params)
            foreach.copy_(tangent, grads)
            average_gradients_(tangent)
        if self.rule.needs_ascent_gradient:
            foreach.copy_(self._buffers(self._ascent_gradient, params), grads)
        foreach.copy_(self._buffers(self._theta_t, params), params)
        self.rule.perturbation_(params, grads, rho)  # grads <- e
        if keeps == "perturbation":
            foreach.copy_(self._buffers(self._tangent, params), grads)
        torch._foreach_add_(params, grads)
        self._moved, self._rho_used, self.phase = params, rho, Phase.PERTURBED

    @torch.no_grad()
    def unperturb(self, inv_grad_scale: Tensor | None = None, loss_closure: Closure | None = None) -> None:
        """With ``g_hat`` in ``.grad``: form ``b = H d`` (on LETS steps), then restore ``theta_t`` bit for bit.

        ``inv_grad_scale`` undoes a loss scale carried by the gradients (fp16); ``loss_closure``
        returns the training loss at the current weights, for ``lets_hvp="exact"``.
        """
        if self.phase is not Phase.PERTURBED:
            return
        params = self._moved
        if self._lets_step:
            rho = self._rho_used
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            scale = rho.new_ones(()) if inv_grad_scale is None else inv_grad_scale.to(rho)
            b = self._buffers(self._tangent, params)
            self.radius.hvp.product_(
                b, params=params, grads=grads, rho=rho, inv_grad_scale=scale, loss_closure=loss_closure
            )
            ascent = self._buffers(self._ascent_gradient, params) if self.rule.needs_ascent_gradient else []
            self.rule.descent_derivative_(params, b, grads, ascent)  # b: the derivative of the rule's descent
        foreach.copy_(params, self._buffers(self._theta_t, params))
        if self._lets_step:  # theta_t's copy is dead until the next ascent: its memory serves the hyper passes
            self._theta_t.clear()
        if self.rule.needs_ascent_gradient:
            self.rule.descent_gradient_(params, [p.grad for p in params], self._buffers(self._ascent_gradient, params))
        self._moved, self.phase = [], Phase.RESTORED

    def second_step(self, zero_grad: bool = False, loss_closure: Closure | None = None) -> None:
        """Restore ``theta_t`` and take the base optimizer's step with ``g_hat``: ``theta_{t+1}``."""
        self.unperturb(loss_closure=loss_closure)
        self.step()
        if zero_grad:
            self.zero_grad()

    def _base_step(self) -> Any:
        """The base optimizer's step; on a LETS step the tangent goes from ``b`` to ``J b``."""
        if self.phase is Phase.PERTURBED:
            raise RuntimeError("step() called on perturbed weights: call unperturb() (or second_step()) first")
        self._step_lrs = [group["lr"] for group in self.param_groups]
        lets_step = self._lets_step
        if lets_step:
            self.radius.descent.before_step(self._tangent, self.base_optimizer)
        loss = self.base_optimizer.step()
        if lets_step:
            self.radius.descent.apply_(self._tangent, self.base_optimizer)  # b -> J b, with g_hat still in .grad
        self.steps += 1
        self._lets_step = False
        if lets_step:
            self.phase = Phase.NEXT_PASS_DUE if self.radius.val_term_from_next_step else Phase.HYPER_DUE
            self._val_term = None
        elif self.phase is not Phase.NEXT_PASS_DUE:
            self.phase = Phase.READY
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
    def hyper_step(self, val_loss: Tensor, train_loss: Tensor | None = None) -> Tensor | None:
        """Update ``rho`` from ``l_v = L(V; theta_{t+1})`` and ``l_r = L(B; theta_{t+1})``.

        Returns the hypergradient ``h = d objective / d rho`` (a 0-dim tensor), or None when no
        update happened now (fixed radius, a step the interval skips, or ``train_term="next"``,
        which needs no ``train_loss`` here and completes at the next ``first_step``). Check
        :attr:`hyper_step_due` before computing the losses to save their passes. Gradients are
        left as None (zero).
        """
        if not self.hyper_step_due:
            return None
        radius = self.radius
        if radius.hyper_train_pass and train_loss is None:
            raise ValueError(
                f"lets_objective={radius.objective.name!r} needs the training loss at theta_{{t+1}}: "
                "hyper_step(val_loss, train_loss)"
            )
        self.zero_grad()  # None: the backward writes fresh gradients instead of adding them to zeros
        radius.objective.backward(val_loss, [train_loss] if radius.hyper_train_pass else ())
        train = None if radius.train_term_from_next_step or train_loss is None else train_loss.detach()
        return self.apply_hypergradient(val_loss.detach(), train)

    @torch.no_grad()
    def apply_hypergradient(
        self, val_loss: Tensor, train_loss: Tensor | None = None, inv_grad_scale: Tensor | None = None
    ) -> Tensor | None:
        """Update ``rho`` with ``a`` (the gradient of the upper objective at ``theta_{t+1}``) in ``.grad``.

        ``h = -factor * sum_groups eta_group <a_group, b_group>``: with one learning rate this is
        the paper's ``-eta_t (l_v - l_r) <a, b>`` (``gap2``); per-group rates follow the same chain
        rule. With ``train_term="next"``, ``.grad`` holds ``grad l_v`` only and the update waits
        for the next step's ascent pass (:meth:`finish_hyper_step`).
        """
        self.phase = Phase.READY
        total = self._weighted_dot_with_tangent(inv_grad_scale)
        self.zero_grad()
        if total is None:
            return None
        if self.radius.train_term_from_next_step:
            self._val_term, self.phase = (val_loss, total), Phase.NEXT_PASS_DUE
            return None
        return self._update_radius(total, val_loss, train_loss)

    @torch.no_grad()
    def finish_hyper_step(self, train_loss: Tensor | None, inv_grad_scale: Tensor | None = None) -> Tensor | None:
        """With ``grad L(B_{t+1}; theta_{t+1})`` in ``.grad`` and its loss, update ``rho``: as the training term
        (``train_term="next"``, beside the kept ``<grad l_v, J b>``) or as the validation term (``val_term="next"``)."""
        if self.phase is not Phase.NEXT_PASS_DUE:
            return None
        if train_loss is None:
            raise ValueError("with train_term or val_term 'next', pass this batch's loss: first_step(train_loss=loss)")
        next_total = self._weighted_dot_with_tangent(inv_grad_scale, overwrite_tangent=True)
        val_term, self._val_term, self.phase = self._val_term, None, Phase.READY
        if val_term is None:  # val_term="next": the next batch is the validation batch
            return self._update_radius(next_total, train_loss.detach(), None)
        val_loss, val_total = val_term
        return self._update_radius(val_total - next_total, val_loss, train_loss.detach())

    def _weighted_dot_with_tangent(
        self, inv_grad_scale: Tensor | None, overwrite_tangent: bool = False
    ) -> Tensor | None:
        """``sum_groups eta_group <grad_group, (J b)_group>`` over parameters that have both; the products
        overwrite the gradients, or the tangent with ``overwrite_tangent`` (the one the caller no longer needs:
        no model-sized temporary)."""
        total = None
        for group, lr in zip(self.param_groups, self._step_lrs):
            pairs = [(p.grad, self._tangent[p]) for p in group["params"] if p.grad is not None and p in self._tangent]
            if pairs:
                grads, tangents = [a for a, _ in pairs], [b for _, b in pairs]
                dead, other = (tangents, grads) if overwrite_tangent else (grads, tangents)
                term = lr * foreach.dot(dead, other, into_a=True)
                total = term if total is None else total + term
        if total is not None and inv_grad_scale is not None:
            total = total * inv_grad_scale.to(total)
        return total

    def _update_radius(self, total: Tensor, val_loss: Tensor, train_loss: Tensor | None) -> Tensor:
        gap = None if train_loss is None else (val_loss - train_loss).to(total)
        factor = self.radius.objective.factor(gap if gap is not None else total.new_zeros(()))
        hypergradient = mean_over_ranks(-factor * total)
        self.radius.update(hypergradient)
        self.last_hypergradient = hypergradient
        self.last_gap = None if gap is None else mean_over_ranks(gap)
        return hypergradient

    # -- the buffers -------------------------------------------------------------------------
    def buffers(self, role: str) -> dict[Tensor, Tensor]:
        """The buffer of ``role`` (one of :data:`ROLES`), by parameter, as held now: read it, do not write it.
        Its content depends on :attr:`phase` (module docstring); a role not used yet is empty."""
        stores = {"theta_t": self._theta_t, "ascent_gradient": self._ascent_gradient, "tangent": self._tangent}
        if role not in stores:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
        return dict(stores[role])

    def buffer_bytes(self) -> dict[str, int]:
        """Bytes held between steps by each buffer role (the base optimizer's state is not counted)."""
        return {role: sum(t.numel() * t.element_size() for t in self.buffers(role).values()) for role in ROLES}

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (its moments too), the radius controller's and the rule's."""
        state = {
            "base": self.base_optimizer.state_dict(),
            "radius": self.radius.state_dict(),
            "steps": self.steps,
            "skipped_ascents": self.skipped_ascents,
            "step_lrs": list(self._step_lrs),
            "rule": self.rule.state_dict(self._all_params()),
        }
        if self.phase is Phase.NEXT_PASS_DUE:  # train_term / val_term "next": the half-done hyper step, its J b
            pending = {"b": {i: self._tangent[p] for i, p in enumerate(self._all_params()) if p in self._tangent}}
            if self._val_term is not None:
                pending["val_loss"], pending["val_total"] = self._val_term
            state["pending"] = pending
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
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
        if pending is not None:
            self._val_term = (pending["val_loss"], pending["val_total"]) if "val_loss" in pending else None
            self.phase = Phase.NEXT_PASS_DUE
            self._tangent = {params[int(i)]: sharding.like(b, params[int(i)]) for i, b in pending["b"].items()}
        elif self.phase is Phase.NEXT_PASS_DUE:
            self._val_term, self.phase = None, Phase.READY

    # -- helpers -----------------------------------------------------------------------------
    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @staticmethod
    def _buffers(store: dict[Tensor, Tensor], params: list[Tensor]) -> list[Tensor]:
        """One buffer per parameter, allocated on first use and reused at every later step."""
        for p in params:
            if p not in store:
                store[p] = torch.empty_like(p, memory_format=torch.preserve_format)
        return [store[p] for p in params]

    def __repr__(self) -> str:
        return f"LETSOptimizer(rule={self.rule!r}, radius={self.radius!r}, base={type(self.base_optimizer).__name__})"
