"""The plain-PyTorch API: a SAM-family optimizer wrapper with a learnable radius.

One LETS step (Wang et al., ECCV 2024, Algorithm 1) is one call, for a train batch ``B`` and a
validation batch ``V``; each closure returns its batch's loss *with its graph* (``step`` runs
every backward itself)::

    closure = lambda: loss_fn(model(x), y)             # L(B; current weights)
    val_closure = lambda: loss_fn(model(xv), yv)       # L(V; current weights), a learned radius only
    optimizer.step(closure, val_closure, model=model)  # theta_{t+1} and rho_{t+1}; .grad left None

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

The step, drawn once: :attr:`~LETSOptimizer.phase`, what the weights and the wrapper's two buffers (``theta_t``
and the rule's ``ascent_gradient``, one tensor per parameter each, allocated once and reused) hold, and where the
learned radius's hypergradient estimator is called (:mod:`lets_hf.radius.estimators`, which draws its own buffer
and stages)::

    phase            weights and buffers                      the call            the estimator's fixed points
    READY            theta_t                                  first_step    -->   at_ascent, keep_ascent_,
    PERTURBED        theta_t + e; theta_t and g kept                              keep_perturbation_
                                                              unperturb     -->   form_b_
    RESTORED         theta_t (its copy freed where b formed)  step()        -->   before_base_step, after_base_step
    HYPER_DUE        theta_{t+1}                              hyper_step    -->   at_hyper_passes
    NEXT_PASS_DUE    theta_{t+1}                              first_step    -->   at_ascent (completes it)

After ``step()`` the phase is READY (no hyper step this step), HYPER_DUE (the hyper passes next) or
NEXT_PASS_DUE (the next ascent pass completes the estimate); a hyper step due and not taken is dropped.
In order:

1. ascent pass: ``closure()`` backward, ``g = grad L(B; theta_t)`` (skipped when ``loss=`` says that
   ``g`` is in ``.grad`` already); the estimator may complete the previous step's estimate with it;
2. :meth:`~LETSOptimizer.first_step`: ``theta_t + rho_t d``, ``d`` the rule's ascent direction; a
   variant's ERM step or a non-finite ``g`` stays READY (the base step then takes ``g``);
3. perturbed pass: ``closure()`` backward, ``g_hat = grad L(B; theta_t + rho_t d)``;
4. :meth:`~LETSOptimizer.unperturb`: the estimator forms ``b`` (``lets_hvp="exact"`` differentiates
   ``closure()`` twice), ``theta_t`` is restored bit for bit; ``max_grad_norm`` clips ``g_hat``;
5. the base step: ``theta_{t+1}``; the estimator turns ``b`` into ``J b``;
6. hyper passes, when :attr:`~LETSOptimizer.hyper_step_due`: ``val_closure()`` and, where the
   estimator takes it now (``training_pass``), ``closure()`` at ``theta_{t+1}``, differentiated by the
   objective (:meth:`~lets_hf.radius.objectives.UpperObjective.backward`); then ``rho_{t+1}``. An
   estimator whose terms come from the next ascent pass waits in NEXT_PASS_DUE until step 1 of the next
   step (``val_term="next"``: no hyper pass and no ``val_closure`` at all).

With ``model=``, the ascent pass (on a planned SAM step) and the hyper passes run under
``model.no_sync()`` where the model has one (DDP: the per-worker ascent gradient of the SAM paper;
the hypergradient is averaged over ranks, so that every rank holds one ``rho``), and BatchNorm
running statistics move in the ascent pass only. Under FSDP2 (``fully_shard``: no ``no_sync``)
every pass is synced: the ascent uses the global gradient, norms and dot products are taken over
all shards (:mod:`lets_hf.sharding`); ``lets_hvp="exact"`` is not available there. Collectives are
taken for a distributed model only (:mod:`lets_hf.distributed` says when one is). With a
:class:`~lets_hf.radius.FixedRadius` (a float ``radius``) there is no hyper step and this is plain
SAM / ASAM.

The state dict is the base optimizer's (``torch.optim.AdamW.load_state_dict`` reads it, and so does a
stock Trainer resuming a LETS checkpoint) with LETS's own entry under :data:`LETS_KEY`: the radius's
state (``rho`` and its Adam), the rule's, the estimator's (a pending next-batch estimate), the counters.
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

from . import foreach
from .batchnorm import frozen_batchnorm_stats
from .checks import positive
from .distributed import LOCAL, SYNCHRONIZED, Ranks, is_distributed_model
from .perturbation import PerturbationRule, get_perturbation
from .radius import FixedRadius, LearnedRadius, RadiusController
from .radius.base import check_learned_radius, check_radius
from .radius.estimators import Hypergradient, Stage
from .radius.estimators.base import allocated
from .saved_state import LETS_KEY, check_fits, split_state_dict
from .sharding import contains_sharded

Closure = Callable[[], Tensor]
ROLES = ("theta_t", "ascent_gradient", "tangent")  # the buffers, by role (module docstring; tangent: the estimator's)


class Phase(enum.Enum):
    """Where a step stands (the module docstring draws the diagram)."""

    READY = "ready"  # theta_t (or theta_{t+1} of the last step): the next step may start
    PERTURBED = "perturbed"  # theta_t + e, after first_step: the perturbed pass, then unperturb
    RESTORED = "restored"  # theta_t again, g_hat in .grad, after unperturb: the base step next
    HYPER_DUE = "hyper_due"  # theta_{t+1}, the estimator holds J b: the hyper passes next
    NEXT_PASS_DUE = "next_pass_due"  # the estimator waits for the next batch's g (train_term / val_term "next")


_WAITING = {Stage.HYPER_DUE: Phase.HYPER_DUE, Stage.NEXT_DUE: Phase.NEXT_PASS_DUE}


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
        distributed: whether the model is distributed, so that the ranks must agree (collectives:
            :mod:`lets_hf.distributed`); None: where a parameter is a ``DTensor``, or once ``step(model=)``
            gets a ``DistributedDataParallel`` module.
    """

    def __init__(
        self,
        params: Iterable,
        base_optimizer: type[Optimizer],
        *,
        perturbation: str | PerturbationRule = "sam",
        radius: float | RadiusController = 0.05,
        distributed: bool | None = None,
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
        self.estimator = None
        if isinstance(self.radius, LearnedRadius):
            check_learned_radius(self.radius)
            self.estimator = self.radius.estimator  # the hyper step's buffer, stages and passes
            self.estimator.descent.check(self.base_optimizer)
        super().__init__(self.base_optimizer.param_groups, self.base_optimizer.defaults)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.distributed = contains_sharded(self._all_params()) if distributed is None else bool(distributed)
        self._step_phase = Phase.READY  # READY, PERTURBED or RESTORED: where the weights are
        self._theta_t: dict[Tensor, Tensor] = {}
        self._ascent_gradient: dict[Tensor, Tensor] = {}
        self._moved: list[Tensor] = []  # PERTURBED: the parameters first_step moved
        self._rho_used: Tensor | None = None  # PERTURBED: the rho of that move
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
    def phase(self) -> Phase:
        """Where the step stands: the weights' phase, or, at READY, what the estimator waits for."""
        if self._step_phase is not Phase.READY or self.estimator is None:
            return self._step_phase
        return _WAITING.get(self.estimator.stage, Phase.READY)

    @property
    def is_perturbed(self) -> bool:
        """Whether the weights are at ``theta_t + e`` (between :meth:`first_step` and :meth:`unperturb`)."""
        return self._step_phase is Phase.PERTURBED

    @property
    def hyper_step_due(self) -> bool:
        """Whether the step just taken gets its hyper passes now (the estimator holds ``J b`` for them)."""
        return self.phase is Phase.HYPER_DUE

    @property
    def sam_step_planned(self) -> bool:
        """Whether the next step is planned as SAM (two passes: run its first pass under ``no_sync``) or ERM."""
        return self.rule.plans_sam_step(self.steps)

    @property
    def ranks(self) -> Ranks:
        """The collectives this optimizer takes: over the process group for a distributed model, else none."""
        return SYNCHRONIZED if self.distributed else LOCAL

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
        (after :meth:`unperturb`); on a step that formed ``b`` it then becomes ``J b``
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
        if self.estimator is not None and self.estimator.validation_pass and val_closure is None:
            raise ValueError(
                "a learned radius needs val_closure: a function returning a validation batch's loss "
                "(with its graph, no backward), e.g. step(closure, lambda: loss_fn(model(xv), yv))"
            )
        if max_grad_norm is not None:
            positive("max_grad_norm", max_grad_norm)
        if self.is_perturbed:
            raise RuntimeError("step(closure) called on perturbed weights: call unperturb() (or second_step()) first")
        self.distributed = self.distributed or (model is not None and is_distributed_model(model))
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
        estimator takes it now (its graph built after ``l_v``'s is freed); returns ``l_v`` and ``l_r``."""
        val_loss = val_closure()
        parts = (closure() for _ in range(1)) if self.estimator.training_pass else ()
        return val_loss, self.estimator.objective.backward(val_loss, parts)

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
        for a distributed model all-reduces the norm (one scalar) so that every rank decides alike.
        """
        if self.is_perturbed:
            raise RuntimeError("first_step() called twice without second_step() / unperturb()")
        if self.estimator is not None:  # completes a pending estimate; drops one due and not taken
            self._apply(self.estimator.at_ascent(self.param_groups, train_loss, inv_grad_scale))
        self._step_phase = Phase.READY
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        norm = foreach.global_norm(grads)
        self.last_ascent_grad_norm = norm if inv_grad_scale is None else norm * inv_grad_scale.to(norm)
        if not self.rule.plans_sam_step(self.steps):
            self.rule.erm_gradient_(params, grads)
            return
        if not bool(torch.isfinite(self.ranks.mean(norm))):  # one decision for all ranks: NaN/inf on any
            self.ranks.average_(grads)  # the first pass ran under no_sync
            self.skipped_ascents += 1
            return
        if not self.rule.keeps_sam_step(self.steps, grads, self.ranks):
            self.ranks.average_(grads)  # the first pass ran under no_sync
            self.rule.erm_gradient_(params, grads)
            return
        self._perturb(params, grads)
        if zero_grad:
            self.zero_grad()

    def _perturb(self, params: list[Tensor], grads: list[Tensor]) -> None:
        self.radius.observe_learning_rate(self.param_groups[0]["lr"])
        rho = self.radius.rho_tensor(params[0].device)
        if self.estimator is not None:
            self.estimator.keep_ascent_(self.steps + 1, params, grads, self.ranks)
        if self.rule.needs_ascent_gradient:
            foreach.copy_(allocated(self._ascent_gradient, params), grads)
        foreach.copy_(allocated(self._theta_t, params), params)
        self.rule.perturbation_(params, grads, rho)  # grads <- e
        if self.estimator is not None:
            self.estimator.keep_perturbation_(params, grads)
        torch._foreach_add_(params, grads)
        self._moved, self._rho_used, self._step_phase = params, rho, Phase.PERTURBED

    @torch.no_grad()
    def unperturb(self, inv_grad_scale: Tensor | None = None, loss_closure: Closure | None = None) -> None:
        """With ``g_hat`` in ``.grad``: the estimator forms ``b = H d`` (where it is due), then ``theta_t`` is
        restored bit for bit.

        ``inv_grad_scale`` undoes a loss scale carried by the gradients (fp16); ``loss_closure``
        returns the training loss at the current weights, for ``lets_hvp="exact"``.
        """
        if not self.is_perturbed:
            return
        params = self._moved
        ascent = allocated(self._ascent_gradient, params) if self.rule.needs_ascent_gradient else []
        forms_b = self.estimator is not None and self.estimator.stage is Stage.KEPT
        if forms_b:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            self.estimator.form_b_(
                params,
                grads,
                self._rho_used,
                inv_grad_scale,
                loss_closure,
                lambda b: self.rule.descent_derivative_(params, b, grads, ascent),
            )
        foreach.copy_(params, allocated(self._theta_t, params))
        if forms_b:  # theta_t's copy is dead until the next ascent: its memory serves the hyper passes
            self._theta_t.clear()
        if self.rule.needs_ascent_gradient:
            self.rule.descent_gradient_(params, [p.grad for p in params], ascent)
        self._moved, self._step_phase = [], Phase.RESTORED

    def second_step(self, zero_grad: bool = False, loss_closure: Closure | None = None) -> None:
        """Restore ``theta_t`` and take the base optimizer's step with ``g_hat``: ``theta_{t+1}``."""
        self.unperturb(loss_closure=loss_closure)
        self.step()
        if zero_grad:
            self.zero_grad()

    def _base_step(self) -> Any:
        """The base optimizer's step, with the estimator's two fixed points around it (``b -> J b``)."""
        if self.is_perturbed:
            raise RuntimeError("step() called on perturbed weights: call unperturb() (or second_step()) first")
        if self.estimator is not None:
            self.estimator.before_base_step(self.base_optimizer)
        loss = self.base_optimizer.step()
        if self.estimator is not None:
            self.estimator.after_base_step(self.base_optimizer)
        self.steps += 1
        self._step_phase = Phase.READY
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
        estimator = self.estimator
        if estimator.training_pass and train_loss is None:
            raise ValueError(
                f"lets_objective={estimator.objective.name!r} needs the training loss at theta_{{t+1}}: "
                "hyper_step(val_loss, train_loss)"
            )
        self.zero_grad()  # None: the backward writes fresh gradients instead of adding them to zeros
        estimator.objective.backward(val_loss, [train_loss] if estimator.training_pass else ())
        return self.apply_hypergradient(val_loss.detach(), None if train_loss is None else train_loss.detach())

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
        if self.estimator is None:
            return None
        estimate = self.estimator.at_hyper_passes(self.param_groups, val_loss, train_loss, inv_grad_scale)
        self.zero_grad()
        return self._apply(estimate)

    @torch.no_grad()
    def finish_hyper_step(self, train_loss: Tensor | None, inv_grad_scale: Tensor | None = None) -> Tensor | None:
        """With ``grad L(B_{t+1}; theta_{t+1})`` in ``.grad`` and its loss, update ``rho``: as the training term
        (``train_term="next"``, beside the kept ``<grad l_v, J b>``) or as the validation term (``val_term="next"``)."""
        if self.phase is not Phase.NEXT_PASS_DUE:
            return None
        return self._apply(self.estimator.at_ascent(self.param_groups, train_loss, inv_grad_scale))

    def _apply(self, estimate: Hypergradient | None) -> Tensor | None:
        """``rho``'s update from this rank's estimate, averaged over the ranks (one ``rho`` on all)."""
        if estimate is None:
            return None
        hypergradient = self.ranks.mean(estimate.value)
        self.radius.update(hypergradient)
        self.last_hypergradient = hypergradient
        self.last_gap = None if estimate.gap is None else self.ranks.mean(estimate.gap)
        return hypergradient

    # -- the buffers -------------------------------------------------------------------------
    def buffers(self, role: str) -> dict[Tensor, Tensor]:
        """The buffer of ``role`` (one of :data:`ROLES`), by parameter, as held now: read it, do not write it.
        Its content depends on :attr:`phase` (module docstring); a role not used yet is empty."""
        stores = {"theta_t": self._theta_t, "ascent_gradient": self._ascent_gradient, "tangent": {}}
        stores.update(self.estimator.buffers() if self.estimator is not None else {})
        if role not in stores:
            raise ValueError(f"role must be one of {list(stores)}, got {role!r}")
        return dict(stores[role])

    def buffer_bytes(self) -> dict[str, int]:
        """Bytes held between steps by each buffer role (the base optimizer's state is not counted)."""
        roles = ROLES + tuple(self.estimator.buffers() if self.estimator is not None else ())
        return {
            role: sum(t.numel() * t.element_size() for t in self.buffers(role).values())
            for role in dict.fromkeys(roles)
        }

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict (its moments too), with LETS's entry under :data:`LETS_KEY`: the radius
        controller's state, the rule's, the estimator's and the counters."""
        params = self._all_params()
        lets = {
            "base_optimizer": type(self.base_optimizer).__name__,
            "steps": self.steps,
            "skipped_ascents": self.skipped_ascents,
            "radius": self.radius.state_dict(),
            "rule": self.rule.state_dict(params),
            "estimator": self.estimator.state_dict(params) if self.estimator is not None else {},
        }
        return {**self.base_optimizer.state_dict(), LETS_KEY: lets}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (or the older ``{"base": ..., "radius": ...}`` form) after checking that
        it is a LETS state over the same base optimizer."""
        base, lets = split_state_dict(state_dict)
        check_fits(base, lets, self.base_optimizer)
        self.base_optimizer.load_state_dict(base)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.radius.load_state_dict(lets["radius"])
        self.steps = int(lets.get("steps", 0))
        self.skipped_ascents = int(lets.get("skipped_ascents", 0))
        params = self._all_params()
        self.rule.load_state_dict(lets.get("rule", {}), params)
        if self.estimator is not None:
            self.estimator.load_state_dict(lets.get("estimator", {}), params)

    # -- helpers -----------------------------------------------------------------------------
    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def __repr__(self) -> str:
        return f"LETSOptimizer(rule={self.rule!r}, radius={self.radius!r}, base={type(self.base_optimizer).__name__})"
