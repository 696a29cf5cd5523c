"""One SAM/LETS optimizer step across the micro-batches of Trainer's gradient-accumulation cycle, and the hyper step.

Trainer draws a cycle's micro-batches (``get_batch_samples``), then calls ``training_step`` once for each, in
order. :class:`MicroBatchCycle` holds one cycle and counts those calls; :class:`SAMStep` runs call ``i`` of ``n``:

- ``i = 0``: the ascent pass over all ``n`` micro-batches (the stock ``training_step``; under ``no_sync`` for a
  per-worker ascent), then ``first_step``, which also completes a postponed hyper step with the batch's loss;
- every ``i``: the descent pass on micro-batch ``i`` at the perturbed weights, BatchNorm statistics frozen (on a
  variant's ERM step: the stock pass on micro-batch ``i``, and ``first_step`` after the last one);
- ``i = n - 1``: ``unperturb``.

Each call returns micro-batch ``i``'s ascent loss, which Trainer adds to its logged loss. A call outside the
stock loop (no cycle drawn, or the drawn one used up) is a cycle of one micro-batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .. import parallel
from ..batchnorm import frozen_batchnorm_stats
from ..radius import LearnedRadius
from ..validation import ValidationBatches


@dataclass
class PassCount:
    """Forward+backward passes (in units of one batch) and optimizer steps since the count was last read."""

    forward_backward: float = 0.0
    steps: int = 0

    def read_per_step(self) -> float | None:
        """Passes per optimizer step since the last read (None without a step), and a fresh count."""
        if not self.steps:
            return None
        per_step = self.forward_backward / self.steps
        self.forward_backward, self.steps = 0.0, 0
        return per_step


@dataclass
class MicroBatchCycle:
    """The micro-batches of one optimizer step and what the step has done with them so far."""

    batches: list
    num_items_in_batch: Any = None
    calls: int = 0  # training_step calls taken: the next one runs micro-batch ``calls``
    losses: list[Tensor] = field(default_factory=list)  # the ascent (or ERM) pass's loss per micro-batch
    sam_step: bool = True  # the variant plans a SAM step (else an ERM step)
    descend: bool = False  # the weights were perturbed: the descent passes run

    @property
    def used_up(self) -> bool:
        return self.calls >= len(self.batches)


class SAMStep:
    """The step orchestration of ``LETSTrainer``: ``run`` is its ``training_step`` under the SAM family."""

    def __init__(self, trainer, stock_step: Callable[..., Tensor]):
        self.trainer = trainer
        self.stock_step = stock_step  # Trainer.training_step(model, inputs, num_items_in_batch)
        self.cycle: MicroBatchCycle | None = None
        self.passes = PassCount()

    def begin(self, batches: list, num_items_in_batch: Any) -> None:
        """A new cycle, as ``get_batch_samples`` drew it."""
        self.cycle = MicroBatchCycle(list(batches), num_items_in_batch)

    def run(self, model, inputs, num_items_in_batch=None) -> Tensor:
        if self.cycle is None or self.cycle.used_up:  # called outside the stock loop
            self.begin([inputs], num_items_in_batch)
        cycle, optimizer = self.cycle, self.trainer.lets_optimizer
        index, share = cycle.calls, 1 / len(cycle.batches)
        cycle.calls += 1
        if index == 0:
            cycle.sam_step = optimizer.sam_step_planned
            if cycle.sam_step:
                self._ascend(model, cycle)
        if not cycle.sam_step:  # an ERM step of the variant: the stock pass, with the usual sync
            cycle.losses.append(self.stock_step(model, inputs, num_items_in_batch))
            self.passes.forward_backward += share
            if cycle.used_up:  # the variant's ERM gradient; completes a pending "next" hyper step
                optimizer.first_step(inv_grad_scale=self.inv_grad_scale(), train_loss=sum(cycle.losses))
        elif cycle.descend:
            with frozen_batchnorm_stats(model):
                self.stock_step(model, inputs, num_items_in_batch)
            self.passes.forward_backward += share
            if cycle.used_up:
                optimizer.unperturb(inv_grad_scale=self.inv_grad_scale(), loss_closure=self._exact_closure(model))
        self.passes.steps += int(cycle.used_up)
        return cycle.losses[index]

    def _ascend(self, model, cycle: MicroBatchCycle) -> None:
        """The first pass over the cycle, then the perturbation (or the variant's ERM step).

        A non-finite ascent gradient on any rank (an fp16 overflow, a NaN or inf in fp32/bf16) leaves
        the weights unperturbed (``first_step``): no descent pass runs and the step is the stock one
        on ``g``, averaged over ranks (fp16: the scaler skips it on every rank).
        """
        with parallel.sync_scope(self.trainer, model, inside_no_sync=len(cycle.batches) > 1):
            cycle.losses = [self.stock_step(model, batch, cycle.num_items_in_batch) for batch in cycle.batches]
        self.passes.forward_backward += 1
        optimizer = self.trainer.lets_optimizer
        optimizer.first_step(zero_grad=True, inv_grad_scale=self.inv_grad_scale(), train_loss=sum(cycle.losses))
        cycle.descend = optimizer.is_perturbed

    def _exact_closure(self, model):
        radius = self.trainer.lets_optimizer.radius
        if isinstance(radius, LearnedRadius) and radius.hvp.name == "exact":
            self.passes.forward_backward += 1
            return lambda: sum(self.micro_batch_loss(model, batch) for batch in self.cycle.batches)
        return None

    # -- the loss scale (fp16) -----------------------------------------------------------------
    def loss_scale(self) -> Tensor | None:
        """The GradScaler's scale as a tensor (``_scale``: torch's; ``get_scale()`` would read it on the host)."""
        scaler = self.trainer.accelerator.scaler
        return None if scaler is None else scaler._scale.double()

    def inv_grad_scale(self) -> Tensor | None:
        scale = self.loss_scale()
        return None if scale is None else scale.reciprocal()

    # -- the hyper step ------------------------------------------------------------------------
    def micro_batch_loss(self, model, inputs, accumulated: bool = True) -> Tensor:
        """The loss of one micro-batch of the cycle (``accumulated``) or of a batch of its own, normalised as the
        stock ``training_step`` normalises it."""
        trainer = self.trainer
        num_items_in_batch = self.cycle.num_items_in_batch if accumulated else None
        inputs = trainer._prepare_inputs(inputs)
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        if trainer.args.n_gpu > 1:
            loss = loss.mean()
        scaled_for_ga = getattr(trainer, "loss_is_scaled_for_ga", None)  # Trainer's rule, as in training_step
        if scaled_for_ga is None:
            scaled_for_ga = (
                trainer.model_accepts_loss_kwargs and num_items_in_batch is not None
            ) or trainer.compute_loss_func is not None
        if accumulated and not scaled_for_ga:
            loss = loss / len(self.cycle.batches)
        return loss

    def hyper_step(self, model, validation: ValidationBatches | None, step: int) -> None:
        """Update ``rho`` at ``theta_{t+1}`` when a hyper step is due (run by the optimizer's step, right after the
        base optimizer's): the validation loss on batch ``step`` and, for the ``gap2``/``gap`` objectives, the
        cycle's loss are differentiated, then ``apply_hypergradient``."""
        optimizer = self.trainer.lets_optimizer
        if not optimizer.hyper_step_due:
            return
        radius = optimizer.radius
        optimizer.zero_grad()  # None: the validation pass writes fresh gradients instead of adding them to zeros
        with parallel.sync_scope(self.trainer, model), frozen_batchnorm_stats(model):
            val_loss = self.micro_batch_loss(model, validation.batch(step), accumulated=False)
            parts = (self.micro_batch_loss(model, batch) for batch in self.cycle.batches)
            train_loss = radius.objective.backward(
                val_loss, parts if radius.hyper_train_pass else (), scale=self.loss_scale()
            )
        self.passes.forward_backward += 1 + int(train_loss is not None)
        optimizer.apply_hypergradient(val_loss.detach(), train_loss, inv_grad_scale=self.inv_grad_scale())
