"""One fairseq update as a LETS step: what the task runs between fairseq's ascent pass and its logging.

fairseq's ``Trainer.train_step`` runs the task's ``train_step`` on each micro-batch of the update
(``--update-freq``), averages the gradients over the workers, normalises them (``multiply_grads``), measures
their norm and calls the task's ``optimizer_step``. The task's ``train_step`` is fairseq's own, so that pass
is SAM's **ascent pass** on the whole accumulated batch: ``.grad`` holds ``g`` (the gradient fairseq would
step with), and fairseq logs its loss, ``nll_loss`` and ``gnorm`` as usual. :meth:`LETSStep.finish` then
runs the rest with :class:`~lets_hf.LETSOptimizer`'s verbs (the math is theirs):

1. ``first_step``: ``theta_t + rho d`` (on a variant's ERM step, or a non-finite ``g``, no perturbation);
2. the perturbed pass over the same micro-batches, normalised as fairseq normalised ``g``: ``g_hat``;
3. ``unperturb``: ``b`` (LETS steps), ``theta_t`` restored; ``--clip-norm`` clips ``g_hat`` (fairseq's clip);
4. the base step (fairseq's Adam): ``theta_{t+1}``;
5. the hyper step when due: a validation batch's loss (its mean over tokens) and, for the ``gap2`` and
   ``gap`` objectives, the update's training loss at ``theta_{t+1}``, differentiated by the objective;
   ``apply_hypergradient`` updates ``rho``.

Every pass is synced over the workers (DDP), so ``g`` is the whole global batch's gradient (``lets_hf``'s
``--lets_ascent global``): fairseq's Trainer itself syncs the ascent pass and checks that every worker holds
the same gradient norm. ``rho`` and the last hyper step's gap and hypergradient go to fairseq's metrics
(progress lines, ``--log-format json``, ``--tensorboard-logdir``), ``gnorm_hat`` is ``g_hat``'s norm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from fairseq.logging import metrics
from torch import Tensor

from lets_hf.batchnorm import frozen_batchnorm_stats


class LETSStep:
    """The micro-batches of the update under way (from the ascent pass), and the step that finishes it."""

    def __init__(self):
        self.samples: list[tuple[dict, bool]] = []  # (sample, is a dummy batch), as fairseq ran them
        self.losses: list[Tensor] = []  # the ascent pass's summed losses

    def remember(self, sample: dict, ignore_grad: bool, loss: Tensor) -> None:
        self.samples.append((sample, ignore_grad))
        self.losses.append(loss.detach())

    def finish(self, optimizer, model, criterion, clip_norm: float, validation: Callable[[], dict]) -> None:
        """Steps 1-5 of the module docstring; ``validation()`` is the hyper step's batch."""
        lets, multiplier = optimizer.lets, optimizer.gradient_multiplier
        batch_loss = lambda: sum(self._losses(model, criterion, multiplier))  # noqa: E731  (lets_hvp="exact")
        lets.first_step(zero_grad=True, train_loss=torch.stack(self.losses).sum() * multiplier)
        if lets.is_perturbed:
            with frozen_batchnorm_stats(model):
                for last, loss in self._marked(self._losses(model, criterion, 1.0)):
                    with contextlib.nullcontext() if last else _no_sync(model):
                        optimizer.backward(loss)
            optimizer.multiply_grads(multiplier)
        with frozen_batchnorm_stats(model):
            lets.unperturb(loss_closure=batch_loss)
        gnorm_hat = optimizer.clip_descent_gradient(clip_norm)
        if not torch.isfinite(gnorm_hat).all():
            raise FloatingPointError("gradients are Nan/Inf (the perturbed pass's g_hat)")
        optimizer.step()
        if lets.hyper_step_due:
            self._hyper_step(lets, model, criterion, multiplier, validation)
        self.samples, self.losses = [], []
        _log(lets, gnorm_hat)

    def _hyper_step(self, lets, model, criterion, multiplier, validation) -> None:
        radius = lets.radius
        lets.zero_grad()
        with frozen_batchnorm_stats(model):
            val_loss = _mean_loss(model, criterion, validation())
            parts = self._losses(model, criterion, multiplier) if radius.hyper_train_pass else ()
            train_loss = radius.objective.backward(val_loss, parts)
        lets.apply_hypergradient(val_loss.detach(), train_loss)

    def _losses(self, model, criterion, multiplier: float):
        """Each micro-batch's loss at the current weights, times ``multiplier`` (a dummy batch's times 0)."""
        for sample, ignore in self.samples:
            loss = criterion(model, sample)[0] * multiplier
            yield loss * 0 if ignore else loss

    def _marked(self, losses):
        count = len(self.samples)
        return ((i == count - 1, loss) for i, loss in enumerate(losses))


def _mean_loss(model, criterion, sample: dict) -> Tensor:
    """A validation batch's loss, by its mean (over its ``sample_size``: target tokens for translation)."""
    loss, sample_size, _ = criterion(model, sample)
    return loss / max(float(sample_size), 1.0)


def _no_sync(model):
    """DDP's ``no_sync`` for every micro-batch but the last (as fairseq's Trainer runs them)."""
    return model.no_sync() if hasattr(model, "no_sync") else contextlib.nullcontext()


def _log(lets, gnorm_hat: Tensor) -> None:
    """The radius (its last value: weight 0, fairseq's idiom) and the last hyper step's numbers, in fairseq's logs."""
    metrics.log_scalar("rho", lets.rho, weight=0, priority=410, round=6)
    metrics.log_scalar("gnorm_hat", gnorm_hat, priority=405, round=3)
    for name, value, digits in (("lets_gap", lets.last_gap, 6), ("lets_hypergradient", lets.last_hypergradient, None)):
        if value is not None:  # the hypergradient unrounded: it is often 1e-7 or smaller
            metrics.log_scalar(name, float(value), weight=0, priority=420, round=digits)
