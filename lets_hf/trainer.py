"""``LETSTrainer``: a drop-in ``transformers.Trainer`` that trains with SAM/ASAM and a learned radius.

Swap ``Trainer`` for :class:`LETSTrainer` (``Seq2SeqTrainer`` for :class:`LETSSeq2SeqTrainer`) and
``TrainingArguments`` for :class:`~lets_hf.arguments.LETSArguments`; ``--optim lets_sam`` then runs
one LETS step (Wang et al., ECCV 2024) per optimizer step. This module only orchestrates; the
math is :class:`~lets_hf.optimizer.LETSOptimizer`'s. Per optimizer step, with the micro-batches
of one gradient-accumulation cycle:

1. ascent: the stock ``training_step`` on every micro-batch under ``no_sync`` (per-worker
   gradient, as in the SAM paper; synced under FSDP2 or ``--lets_ascent global``, see
   :mod:`lets_hf.parallel`), so that ``g`` is the whole batch's gradient; then
   ``first_step`` perturbs the weights (BatchNorm statistics move in this clean pass only);
2. descent: the stock ``training_step`` on each micro-batch at the perturbed weights (loss
   scaling, fp16 scaler, DDP sync as usual), BatchNorm statistics frozen; after the last one,
   ``unperturb`` forms ``b`` and restores the weights bit for bit;
3. the Trainer clips ``g_hat`` and calls ``optimizer.step()`` as usual;
4. hyper step, run by the optimizer's own step (a post-hook of ``LETSOptimizer.step``, not a
   callback: the callback list is Trainer's, and removing callbacks cannot switch it off): at
   ``theta_{t+1}``, the validation loss and (for the ``gap2``/``gap`` objectives) the batch's
   loss are differentiated (under ``no_sync`` where the ascent is per worker), and
   ``apply_hypergradient`` updates ``rho`` (averaged over ranks). It does not run when the fp16
   scaler skips the step. With ``lets_val_term="next"`` there is no pass here: the next step's
   ascent pass completes the update.

``rho``, its Adam state and schedule live in the optimizer's state dict, so ``save_steps``
checkpoints carry them (under FSDP2 in ``lets_state-rank{r}.pt`` beside accelerate's sharded optimizer
state) and ``resume_from_checkpoint`` continues exactly, the logged losses and
``train_loss`` included (checkpoints carry the loss tally). ``resume_from_checkpoint=True`` takes
the newest *complete* checkpoint (a save cut short by a kill is passed over, with a warning); an
optimizer state that does not fit the run is refused before training, and a missing one is named
in a warning with what restarts (:mod:`lets_hf.checkpoints`). A finished run resumed takes no
further step.

Public on the trainer: :attr:`~LETSTrainerMixin.rho`, :attr:`~LETSTrainerMixin.rho_start`,
:attr:`~LETSTrainerMixin.lets_gap`, :attr:`~LETSTrainerMixin.lets_hypergradient`. The entries
Trainer logs at ``logging_steps`` carry ``rho``, the gap, the hypergradient and the ascent
gradient norm; the run's first entry also ``rho_start``; ``train()``'s metrics the final ``rho``;
the progress bar shows ``rho`` at every step. No entry or event is added to Trainer's.

Loss scaling is Trainer's, under every ``--optim``: ``model_accepts_loss_kwargs`` as Trainer
sets it, and the ascent and descent passes are the stock ``training_step``, so a causal LM with
gradient accumulation is normalised by ``num_items_in_batch`` as under ERM; the hyper step's
training term is normalised the same way (the validation batch, a batch of its own, by the
model's mean). A model whose ``forward`` takes ``**kwargs`` but ignores ``num_items_in_batch``
(DeBERTa classification) gets what Trainer gives it: its loss multiplied by the processes under
DDP with ``average_tokens_across_devices`` (the scripts set it to False), and not divided by
the accumulation steps (declare ``model.accepts_loss_kwargs = False`` to have it divided).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import Tensor
from transformers import ProgressCallback, Seq2SeqTrainer, Trainer
from transformers.trainer_pt_utils import nested_gather
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from . import checkpoints, parallel
from .batchnorm import frozen_batchnorm_stats
from .optimizer import LETSOptimizer
from .radius import LearnedRadius
from .validation import ValidationBatches

logger = logging.get_logger(__name__)


class LETSTrainerMixin:
    """The LETS orchestration shared by :class:`LETSTrainer` and :class:`LETSSeq2SeqTrainer`.

    Public beyond Trainer's: :attr:`rho` (the current radius), :attr:`rho_start` (the radius the
    run started from), :attr:`lets_gap` and :attr:`lets_hypergradient` (the last hyper step's),
    :attr:`lets_optimizer` (the :class:`~lets_hf.optimizer.LETSOptimizer` under accelerate's wrapper).
    """

    def __init__(self, *args, lets_val_dataset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lets_val_dataset = lets_val_dataset
        self._micro_batches: list[dict[str, Any]] = []
        self._num_items_in_batch = None
        self._ascent_losses: list[Tensor] = []
        self._lets_total_steps: int | None = None
        self._passes = {"forward_backward": 0.0, "steps": 0}
        self._sam_step = self._descend = True
        self._validation: ValidationBatches | None = None
        self._hooked_optimizer: LETSOptimizer | None = None
        self.rho_start: float | None = None
        self._rho_shown_at = float("-inf")  # when the progress bar last read rho
        self._resumed_from: str | None = None
        self._whole_run_loss = False
        self._tally_pending = False
        family = self.lets_family
        if family is None:
            return
        parallel.check_backend(self)
        if getattr(self.args, "esam_gamma", None) not in (None, 1.0) and family[0] == "esam":
            raise ValueError(
                "esam_gamma < 1 (ESAM's data selection) needs per-example losses, which the Trainer's "
                "models do not return; LETSTrainer runs ESAM's weight perturbation with esam_gamma 1"
            )
        if lets_val_dataset is not None and self._validation_from_next_batch:
            raise ValueError("lets_val_term 'next' draws no validation batches: drop lets_val_dataset, or use 'own'")
        if self._uses_validation_batches and self._lets_validation_dataset() is not None:  # bad input fails here;
            self.build_validation_batches()  # no dataset yet is allowed (as Trainer allows it): train() checks it
        self._warn_if_checkpoints_drop_the_radius()

    # -- configuration -------------------------------------------------------------------------
    @property
    def lets_family(self):
        """``(rule, learned)`` for a SAM-family ``--optim``, None for ERM (plain ``TrainingArguments`` too)."""
        return getattr(self.args, "sam_family", None)

    @property
    def _validation_from_next_batch(self) -> bool:
        """``lets_val_term="next"``: the next training batch is the validation batch."""
        return getattr(self.args, "lets_val_term", "own") == "next"

    @property
    def _uses_validation_batches(self) -> bool:
        """A learned radius draws validation batches, unless its validation term is the next training batch."""
        family = self.lets_family
        return family is not None and family[1] and not self._validation_from_next_batch

    @property
    def lets_optimizer(self) -> LETSOptimizer | None:
        """The SAM-family optimizer inside ``self.optimizer`` (None under ERM and before ``train()``)."""
        optimizer = self.optimizer
        while optimizer is not None and not isinstance(optimizer, LETSOptimizer):
            optimizer = getattr(optimizer, "optimizer", None)
        return optimizer

    def get_optimizer_cls_and_kwargs(self, args, model=None):
        if getattr(args, "sam_family", None) is None:
            return super().get_optimizer_cls_and_kwargs(args, model)
        base_cls, base_kwargs = super().get_optimizer_cls_and_kwargs(args.base_optimizer_arguments(), model)
        if not (isinstance(base_cls, type) and issubclass(base_cls, torch.optim.Optimizer)) or {
            "params",
            "model",
            "optimizer_dict",
        } & set(base_kwargs):
            raise ValueError(
                f"lets_base_optim={args.lets_base_optim!r} is not a plain torch optimizer; "
                "use e.g. adamw_torch or sgd as the SAM family's base optimizer"
            )
        radius = args.build_radius(total_steps=self._lets_total_steps)
        learned = isinstance(radius, LearnedRadius)
        stuck = radius.stuck_warning(self._lets_total_steps) if learned and self._lets_total_steps else None
        if stuck:
            logger.warning(stuck)
        perturbation = args.build_perturbation(total_steps=self._lets_total_steps)
        return LETSOptimizer, dict(
            base_optimizer=base_cls,
            perturbation=perturbation,
            radius=radius,
            distributed=args.world_size > 1,
            **base_kwargs,
        )

    def create_optimizer(self, model=None):
        """Trainer's, then (SAM family) the hyper step is attached to the optimizer's step and ``rho_start``
        read: before a checkpoint's state is loaded, so a resumed run reports the run's starting radius."""
        optimizer = super().create_optimizer(model)
        lets = self.lets_optimizer
        if self.lets_family is not None and lets is not None:
            if self._hooked_optimizer is not lets:
                lets.register_step_post_hook(self._after_optimizer_step)
                self._hooked_optimizer = lets
            self.rho_start = lets.rho
        return optimizer

    def _prepare_for_training(self, max_steps, train_dataloader, resume_from_checkpoint):
        self._lets_total_steps = max_steps  # the horizon of rho_travel / rho_decay_total
        if self._uses_validation_batches:  # the datasets are the ones train() runs with
            self._validation = self.build_validation_batches()
        return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)

    def _lets_validation_dataset(self):
        """Where the LETS validation batches come from: ``lets_val_dataset``, else the ``lets_val_source`` set."""
        source = self.args.lets_val_source
        if self.lets_val_dataset is not None and source == "eval":
            raise ValueError("pass either lets_val_dataset or lets_val_source='eval', not both")
        if self.lets_val_dataset is not None:
            return self.lets_val_dataset
        return self.eval_dataset if source == "eval" else self.train_dataset

    def build_validation_batches(self) -> ValidationBatches:
        """The LETS validation batches that ``train()`` draws from: ``lets_val_dataset``, else the dataset
        ``lets_val_source`` names, without the columns the model does not take."""
        source, dataset = self.args.lets_val_source, self._lets_validation_dataset()
        if dataset is None or isinstance(dataset, dict):
            raise ValueError(
                f"lets_val_source={source!r} needs a single {source}_dataset for the LETS validation "
                "batches (or pass lets_val_dataset=)"
            )
        collator = self.data_collator
        if hasattr(dataset, "column_names"):  # a datasets.Dataset: drop what the model does not take
            dataset = self._remove_unused_columns(dataset, description="LETS validation")
            collator = self._get_collator_with_removed_columns(collator, description="LETS validation")
        batch_size = self.args.lets_val_batch_size or self.args.per_device_train_batch_size
        return ValidationBatches(
            dataset,
            batch_size,
            collator,
            seed=self.args.seed,
            rank=self.args.process_index,
            world_size=self.args.world_size,
        )

    # -- checkpoints and resuming -------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint=True`` resumes from the newest complete checkpoint."""
        self._resumed_from = checkpoints.resolve_resume_checkpoint(
            resume_from_checkpoint, self.args.output_dir, with_optimizer=not self.args.save_only_model
        )
        self._whole_run_loss = False
        self._tally_pending = True  # restored as the first epoch starts, after Trainer zeroes its loss sums
        output = super().train(self._resumed_from, *args, **kwargs)
        return self._whole_run_train_loss(output) if self._whole_run_loss else output

    def _save_checkpoint(self, model, trial):
        folder = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        pending = nested_gather(self._tr_loss, self.args.parallel_mode).mean().item()
        if self.args.should_save:  # before the stock files: trainer_state.json, written last, vouches for it
            checkpoints.write_loss_tally(folder, self._total_loss_scalar, pending, self._globalstep_last_logged)
        super()._save_checkpoint(model, trial)

    def _restore_loss_tally(self) -> None:
        """A resumed run carries on with the loss sums of the run it resumes: its logs are the uninterrupted run's."""
        tally = checkpoints.read_loss_tally(self._resumed_from) if self._resumed_from is not None else None
        if tally is not None:
            self._total_loss_scalar = float(tally["total"])
            self._tr_loss = torch.tensor(float(tally["pending"]), device=self.args.device)
            self._globalstep_last_logged = int(tally["last_logged_step"])
            self._whole_run_loss = True

    def _whole_run_train_loss(self, output):
        """The stock ``train_loss`` averages over this segment's steps; with the tally restored, over the whole run."""
        loss = self._total_loss_scalar / max(self.state.global_step, 1)
        output.metrics["train_loss"] = loss
        if self.state.log_history and "train_loss" in self.state.log_history[-1]:
            self.state.log_history[-1]["train_loss"] = loss
        return output._replace(training_loss=loss)

    def _run_epoch(self, *args, **kwargs):
        if self._tally_pending:
            self._tally_pending = False
            self._restore_loss_tally()
        if self.state.global_step >= self.state.max_steps:  # a finished run resumed: no step left to take
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint is not None and not (self.is_deepspeed_enabled or self.is_fsdp_enabled):
            self._check_optimizer_checkpoint(checkpoint)
        if not (self.is_fsdp_enabled and self.lets_family and checkpoint):
            return super()._load_optimizer_and_scheduler(checkpoint)
        with parallel.base_optimizer_exposed(self.optimizer, self.lets_optimizer):  # FSDP2: lets_hf.parallel
            super()._load_optimizer_and_scheduler(checkpoint)
        parallel.load_lets_state(self.lets_optimizer, checkpoint, self.args.process_index)

    def _check_optimizer_checkpoint(self, checkpoint: str) -> None:
        """Before training: warn what restarts without an optimizer state; refuse one the run cannot load."""
        missing = checkpoints.missing_optimizer_files(checkpoint)
        if missing:
            logger.warning("%s has no %s: %s", checkpoint, " or ".join(missing), self._restarting_state(checkpoint))
            return
        optimizer = self.optimizer
        while hasattr(optimizer, "optimizer"):  # accelerate's wrapper
            optimizer = optimizer.optimizer
        mismatch = checkpoints.optimizer_state_mismatch(checkpoints.load_optimizer_state(checkpoint), optimizer)
        if mismatch:
            optim = getattr(self.args.optim, "value", self.args.optim)
            asked = f"--optim {optim}" + (
                f" --lets_base_optim {self.args.lets_base_optim}" if self.lets_family is not None else ""
            )
            raise ValueError(
                f"cannot resume from {os.path.join(checkpoint, checkpoints.OPTIMIZER_NAME)}: {mismatch} "
                f"({asked}). Resume with the optimizer settings the checkpoint was trained with, or "
                f"start a new run from its weights (model_name_or_path={checkpoint}) without "
                "resume_from_checkpoint."
            )

    def _restarting_state(self, checkpoint: str) -> str:
        """In words, what a resume without the optimizer state starts afresh."""
        lost = (
            "the optimizer state (e.g. Adam's moments) starts from zero and the learning-rate schedule from its "
            "first step"
        )
        optimizer = self.lets_optimizer
        if optimizer is not None and isinstance(optimizer.radius, LearnedRadius):
            reached = checkpoints.last_logged(checkpoint, "rho")
            lost += f"; rho restarts at rho_0={optimizer.rho:.4g} with a fresh Adam state" + (
                f" (the checkpoint's run had reached rho={reached:.4g})" if reached is not None else ""
            )
        return lost + ". Resume from a checkpoint saved without save_only_model for an exact resume."

    def _warn_if_checkpoints_drop_the_radius(self) -> None:
        if self.lets_family[1] and self.args.save_only_model and self.args.save_strategy != "no":
            logger.warning(
                "save_only_model=True with --optim %s: checkpoints will hold the weights only, not the "
                "learned rho, its Adam state or the optimizer's; a resumed run restarts rho at rho_0=%g. "
                "Drop save_only_model to resume exactly.",
                self.args.optim,
                self.args.rho,
            )

    # -- one training step ---------------------------------------------------------------------
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._micro_batches, self._num_items_in_batch = batches, num_items
        return batches, num_items

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.lets_family is None:
            return super().training_step(model, inputs, num_items_in_batch)
        index = next((i for i, batch in enumerate(self._micro_batches) if batch is inputs), None)
        if index is None:  # called outside the stock loop: a cycle of one micro-batch
            self._micro_batches, self._num_items_in_batch, index = [inputs], num_items_in_batch, 0
        last = index == len(self._micro_batches) - 1
        if index == 0:
            self._sam_step = self.lets_optimizer.sam_step_planned
            self._ascent_losses = []
            if self._sam_step:
                self._ascend(model, num_items_in_batch)
        if not self._sam_step:  # an ERM step of the variant: the stock pass, with the usual sync
            self._ascent_losses.append(super().training_step(model, inputs, num_items_in_batch))
            self._count_passes(1 / len(self._micro_batches))
            if last:  # the variant's ERM gradient; completes a pending train_term="next" hyper step
                self.lets_optimizer.first_step(
                    inv_grad_scale=self._inv_grad_scale(), train_loss=sum(self._ascent_losses)
                )
        elif self._descend:
            with frozen_batchnorm_stats(model):
                super().training_step(model, inputs, num_items_in_batch)
            self._count_passes(1 / len(self._micro_batches))
            if last:
                self.lets_optimizer.unperturb(
                    inv_grad_scale=self._inv_grad_scale(), loss_closure=self._exact_closure(model)
                )
        self._passes["steps"] += int(last)
        return self._ascent_losses[index]

    def _count_passes(self, batches: float) -> None:
        """Forward+backward passes, in units of one batch, for the ``lets_passes_per_step`` log."""
        self._passes["forward_backward"] += batches

    def _exact_closure(self, model):
        radius = self.lets_optimizer.radius
        if isinstance(radius, LearnedRadius) and radius.hvp.name == "exact":
            self._count_passes(1)
            return lambda: self._batch_loss(model)
        return None

    def _ascend(self, model, num_items_in_batch) -> None:
        """The first pass over the cycle under ``no_sync``, then the perturbation (or the variant's ERM step).

        A non-finite ascent gradient on any rank (an fp16 overflow, a NaN or inf in fp32/bf16) leaves
        the weights unperturbed (``first_step``): no descent pass runs and the step is the stock one
        on ``g``, averaged over ranks (fp16: the scaler skips it on every rank).
        """
        with parallel.sync_scope(self, model, inside_no_sync=len(self._micro_batches) > 1):
            self._ascent_losses = [
                super(LETSTrainerMixin, self).training_step(model, batch, num_items_in_batch)
                for batch in self._micro_batches
            ]
        self._count_passes(1)
        optimizer, inv_grad_scale = self.lets_optimizer, self._inv_grad_scale()
        optimizer.finish_hyper_step(sum(self._ascent_losses), inv_grad_scale)  # train_term="next" only
        optimizer.first_step(zero_grad=True, inv_grad_scale=inv_grad_scale)
        self._descend = optimizer.is_perturbed

    def _loss_scale(self) -> Tensor | None:
        scaler = self.accelerator.scaler
        return None if scaler is None else scaler._scale.double()

    def _inv_grad_scale(self) -> Tensor | None:
        scale = self._loss_scale()
        return None if scale is None else scale.reciprocal()

    def _micro_batch_loss(self, model, inputs, num_items_in_batch=None, accumulated: bool = True) -> Tensor:
        """The loss of one micro-batch, normalised as the stock ``training_step`` normalises it."""
        inputs = self._prepare_inputs(inputs)
        with self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        if self.args.n_gpu > 1:
            loss = loss.mean()
        scaled_for_ga = getattr(self, "loss_is_scaled_for_ga", None)  # Trainer's rule, as in training_step
        if scaled_for_ga is None:
            scaled_for_ga = (
                self.model_accepts_loss_kwargs and num_items_in_batch is not None
            ) or self.compute_loss_func is not None
        if accumulated and not scaled_for_ga:
            loss = loss / len(self._micro_batches)
        return loss

    def _batch_loss(self, model) -> Tensor:
        """``L(B)`` over the cycle's micro-batches (for ``lets_hvp="exact"``)."""
        return sum(self._micro_batch_loss(model, batch, self._num_items_in_batch) for batch in self._micro_batches)

    # -- the hyper step ------------------------------------------------------------------------
    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        """The post-hook of ``LETSOptimizer.step``: the hyper step, then rho in the progress bar."""
        self.lets_hyper_step()
        self._show_rho_in_progress_bar()

    def lets_hyper_step(self) -> None:
        """Update ``rho`` at ``theta_{t+1}`` (run by the optimizer's step, right after the base optimizer's)."""
        optimizer = self.lets_optimizer
        if not optimizer.hyper_step_due:
            return
        model, radius = self.model_wrapped, optimizer.radius
        optimizer.zero_grad()  # None: the validation pass writes fresh gradients instead of adding them to zeros
        with parallel.sync_scope(self, model), frozen_batchnorm_stats(model):
            val_loss = self._micro_batch_loss(model, self._validation.batch(self.state.global_step), accumulated=False)
            parts = (self._micro_batch_loss(model, batch, self._num_items_in_batch) for batch in self._micro_batches)
            train_loss = radius.objective.backward(
                val_loss, parts if radius.hyper_train_pass else (), scale=self._loss_scale()
            )
        self._count_passes(1 + int(train_loss is not None))
        optimizer.apply_hypergradient(val_loss.detach(), train_loss, inv_grad_scale=self._inv_grad_scale())

    # -- the public radius ---------------------------------------------------------------------
    @property
    def rho(self) -> float | None:
        """The current radius (SAM family; None under ERM and before ``train()`` builds the optimizer)."""
        optimizer = self.lets_optimizer
        return None if optimizer is None else optimizer.rho

    @property
    def lets_gap(self) -> float | None:
        """The last hyper step's ``l_v - l_r`` (None before the first, or for ``lets_objective="val"``)."""
        return self._last("last_gap")

    @property
    def lets_hypergradient(self) -> float | None:
        """The last hyper step's ``d objective / d rho`` (None before the first)."""
        return self._last("last_hypergradient")

    def _last(self, name: str) -> float | None:
        value = getattr(self.lets_optimizer, name, None)
        return None if value is None else float(value)

    def _show_rho_in_progress_bar(self, force: bool = False) -> None:
        """``rho=...`` after the stock progress bar's counts (main process, when the bar is shown). Reading rho is
        a host sync, so the bar's value is refreshed at most once a second, and at the end (``force``)."""
        now = time.monotonic()
        if not force and now - self._rho_shown_at < 1.0:
            return
        self._rho_shown_at = now
        for callback in self.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if isinstance(callback, ProgressCallback) and bar is not None:
                bar.set_postfix(rho=f"{self.rho:.4g}", refresh=False)

    # -- checkpoints under FSDP2 ---------------------------------------------------------------
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not (self.is_fsdp_enabled and self.lets_family):
            return super()._save_optimizer_and_scheduler(output_dir)
        with parallel.base_optimizer_exposed(self.optimizer, self.lets_optimizer):
            super()._save_optimizer_and_scheduler(output_dir)
        parallel.save_lets_state(self.lets_optimizer, output_dir, self.args.process_index)

    # -- logging -------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer's entries, with the radius: each training entry gets ``rho`` and the last hyper step's
        values (the run's first also ``rho_start``), the final metrics of ``train()`` the final ``rho``."""
        optimizer = self.lets_optimizer
        if optimizer is not None and "loss" in logs:
            logs.update(self._radius_logs(optimizer))
        elif optimizer is not None and "train_loss" in logs:  # _finalize_training's metrics, returned by train()
            logs["rho"] = optimizer.rho
            self._show_rho_in_progress_bar(force=True)
        super().log(logs, start_time)

    def _radius_logs(self, optimizer: LETSOptimizer) -> dict[str, float]:
        logs = {"rho": optimizer.rho}
        if self.rho_start is not None and not any("rho_start" in row for row in self.state.log_history):
            logs["rho_start"] = self.rho_start  # once per run: a resumed run has it in its restored history
        for key, value in (
            ("lets_gap", self.lets_gap),
            ("lets_hypergradient", self.lets_hypergradient),
            ("lets_ascent_grad_norm", self._last("last_ascent_grad_norm")),
        ):
            if value is not None:
                logs[key] = value
        logs["lets_skipped_ascents"] = optimizer.skipped_ascents  # steps taken as stock: non-finite ascent g
        if self._passes["steps"]:
            logs["lets_passes_per_step"] = self._passes["forward_backward"] / self._passes["steps"]
            self._passes = {"forward_backward": 0.0, "steps": 0}
        return logs


class LETSTrainer(LETSTrainerMixin, Trainer):
    """``transformers.Trainer`` with SAM/ASAM and the LETS radius on ``--optim`` (see the module docstring)."""


class LETSSeq2SeqTrainer(LETSTrainerMixin, Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with SAM/ASAM and the LETS radius on ``--optim``."""
