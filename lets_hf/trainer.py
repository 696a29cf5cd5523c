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
   callback: removing callbacks must not switch it off): at
   ``theta_{t+1}``, the validation loss and (for the ``gap2``/``gap`` objectives) the batch's
   loss are differentiated (under ``no_sync`` where the ascent is per worker), and
   ``apply_hypergradient`` updates ``rho`` (averaged over ranks). It does not run when the fp16
   scaler skips the step. With ``lets_val_term="next"`` there is no pass here: the next step's
   ascent pass completes the update.

``rho``, its Adam state and schedule live in the optimizer's state dict, so ``save_steps``
checkpoints carry them (under FSDP2 in ``lets_state-rank{r}.pt`` beside accelerate's sharded optimizer
state) and ``resume_from_checkpoint`` continues exactly, the logged losses and
``train_loss`` included (the loss tally is a callback whose state checkpoints carry, for every ``--optim``).
``resume_from_checkpoint=True`` takes
the newest *complete* checkpoint (a save cut short by a kill is passed over, with a warning); an
optimizer state that does not fit the run is refused before training, and a missing one is named
in a warning with what restarts (:mod:`lets_hf.checkpoints`). A finished run resumed takes no
further step. The jobs are parts of their own (:mod:`lets_hf.trainer_parts`); this class composes them
through Trainer's public extension points, and the few private names it still needs are listed and
checked at construction (:mod:`lets_hf.trainer_parts.internals`).

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

from typing import Any

import torch
from transformers import Seq2SeqTrainer, Trainer
from transformers.utils import logging

from . import checkpoints, parallel
from .optimizer import LETSOptimizer
from .radius import LearnedRadius
from .radius.adam_caveat import adam_family_caveat
from .trainer_parts.finished_run import FinishedRun
from .trainer_parts.fsdp_checkpoints import FSDP2Checkpoints
from .trainer_parts.internals import check_internals
from .trainer_parts.loss_tally import LossTally
from .trainer_parts.optimizers import optimizer_chain
from .trainer_parts.report import RadiusProgress, last_value, radius_entries
from .trainer_parts.resume_checks import check_optimizer_checkpoint, warn_if_checkpoints_drop_the_radius
from .trainer_parts.step import SAMStep
from .trainer_parts.validation_source import validation_batches, validation_dataset

logger = logging.get_logger(__name__)


class LETSTrainerMixin(FSDP2Checkpoints):
    """The LETS orchestration shared by :class:`LETSTrainer` and :class:`LETSSeq2SeqTrainer`.

    Public beyond Trainer's: :attr:`rho` (the current radius), :attr:`rho_start` (the radius the
    run started from), :attr:`lets_gap` and :attr:`lets_hypergradient` (the last hyper step's),
    :attr:`lets_optimizer` (the :class:`~lets_hf.optimizer.LETSOptimizer` under accelerate's wrapper).
    """

    def __init__(self, *args, lets_val_dataset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lets_val_dataset = lets_val_dataset
        self.rho_start: float | None = None
        self._step = SAMStep(self, super().training_step)
        self._validation = None
        self._resumed_from: str | None = None
        self._hooked_optimizer: LETSOptimizer | None = None
        self.add_callback(LossTally())
        self.add_callback(FinishedRun())
        family = self.lets_family
        if family is None:
            return
        check_internals()
        parallel.check_backend(self)
        if family.rule == "esam" and self.args.option_value("esam_gamma") not in (None, 1.0):
            raise ValueError(
                "esam_gamma < 1 (ESAM's data selection) needs per-example losses, which the Trainer's "
                "models do not return; LETSTrainer runs ESAM's weight perturbation with esam_gamma 1"
            )
        if lets_val_dataset is not None and self._validation_from_next_batch:
            raise ValueError("lets_val_term 'next' draws no validation batches: drop lets_val_dataset, or use 'own'")
        if self._uses_validation_batches and validation_dataset(self) is not None:  # bad input fails here;
            self.build_validation_batches()  # no dataset yet is allowed (as Trainer allows it): train() checks it
        warn_if_checkpoints_drop_the_radius(self.args)
        self.add_callback(RadiusProgress(self))

    # -- configuration -------------------------------------------------------------------------
    @property
    def lets_family(self):
        """The :class:`~lets_hf.methods.SAMFamily` of a SAM-family ``--optim``; None for ERM (and plain
        ``TrainingArguments``)."""
        return getattr(self.args, "sam_family", None)

    @property
    def _validation_from_next_batch(self) -> bool:
        """``lets_val_term="next"`` (given or the preset's): the next training batch is the validation batch."""
        return bool(getattr(self.args, "validation_from_next_batch", False))

    @property
    def _uses_validation_batches(self) -> bool:
        """A learned radius draws validation batches, unless its validation term is the next training batch."""
        family = self.lets_family
        return family is not None and family.learned and not self._validation_from_next_batch

    @property
    def lets_optimizer(self) -> LETSOptimizer | None:
        """The SAM-family optimizer inside ``self.optimizer`` (None under ERM and before ``train()``)."""
        return next((o for o in optimizer_chain(self.optimizer) if isinstance(o, LETSOptimizer)), None)

    def _part(self, kind: type):
        """The callback of type ``kind`` among the trainer's (None if removed)."""
        return next((callback for callback in self.callback_handler.callbacks if isinstance(callback, kind)), None)

    @staticmethod
    def get_optimizer_cls_and_kwargs(args, model=None, total_steps: int | None = None) -> tuple[Any, Any]:
        """Trainer's, static as Trainer's; for the SAM family :class:`~lets_hf.optimizer.LETSOptimizer` over the
        base optimizer ``args.lets_base_optim`` names, with a radius and a rule over ``total_steps`` optimizer steps
        (default: ``args.max_steps`` where set; ``create_optimizer`` passes the run's length)."""
        if getattr(args, "sam_family", None) is None:
            return Trainer.get_optimizer_cls_and_kwargs(args, model)
        base_cls, base_kwargs = Trainer.get_optimizer_cls_and_kwargs(args.base_optimizer_arguments(), model)
        if not (isinstance(base_cls, type) and issubclass(base_cls, torch.optim.Optimizer)) or {
            "params",
            "model",
            "optimizer_dict",
        } & set(base_kwargs):
            raise ValueError(
                f"lets_base_optim={args.lets_base_optim!r} is not a plain torch optimizer; "
                "use e.g. adamw_torch or sgd as the SAM family's base optimizer"
            )
        total_steps = total_steps or (args.max_steps if args.max_steps > 0 else None)
        radius, perturbation = args.build_radius(total_steps), args.build_perturbation(total_steps)
        return LETSOptimizer, dict(
            base_optimizer=base_cls,
            perturbation=perturbation,
            radius=radius,
            distributed=args.world_size > 1,
            **base_kwargs,
        )

    def create_optimizer(self, model=None):
        """Trainer's, with the SAM family's optimizer over the run's length (``state.max_steps``). Then the hyper
        step is attached to the optimizer's step and ``rho_start`` read (before a checkpoint's state is loaded, so a
        resumed run reports the run's starting radius), and a checkpoint to resume from is checked against it."""
        if self.lets_family is None or self.optimizer is not None or self.optimizer_cls_and_kwargs is not None:
            optimizer = super().create_optimizer(model)
        else:
            total_steps = self.state.max_steps or None
            self.optimizer_cls_and_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model, total_steps)
            try:
                optimizer = super().create_optimizer(model)
            finally:
                self.optimizer_cls_and_kwargs = None
            self._warn_about_the_learned_radius(total_steps)
        lets = self.lets_optimizer
        if self.lets_family is not None and lets is not None:
            if self._hooked_optimizer is not lets:
                lets.register_step_post_hook(lambda *_: self.lets_hyper_step())
                self._hooked_optimizer = lets
            self.rho_start = lets.rho
        if self._resumed_from is not None and not (self.is_deepspeed_enabled or self.is_fsdp_enabled):
            check_optimizer_checkpoint(self, self._resumed_from)
        return optimizer

    def _warn_about_the_learned_radius(self, total_steps: int | None) -> None:
        """Before training: a radius that cannot move over the run, and (once per process) what was measured of a
        learned radius over an Adam-family base optimizer."""
        lets = self.lets_optimizer
        if not isinstance(lets.radius, LearnedRadius):
            return
        stuck = lets.radius.stuck_warning(total_steps) if total_steps else None
        if stuck:
            logger.warning(stuck)
        caveat = adam_family_caveat(lets.base_optimizer, lets.rule.name)
        if caveat:
            logger.warning_once(caveat)

    # -- a run -----------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint=True`` resumes from the newest complete checkpoint."""
        self._resumed_from = checkpoints.resolve_resume_checkpoint(
            resume_from_checkpoint, self.args.output_dir, with_optimizer=not self.args.save_only_model
        )
        if self._uses_validation_batches:  # the datasets are the ones train() runs with
            self._validation = self.build_validation_batches()
        output = super().train(self._resumed_from, *args, **kwargs)
        tally = self._part(LossTally)
        if tally is not None and tally.resumed:  # the whole run's, as logged
            output = output._replace(training_loss=output.metrics["train_loss"])
        return output

    def build_validation_batches(self):
        """The LETS validation batches that ``train()`` draws from: ``lets_val_dataset``, else the dataset
        ``lets_val_source`` names, without the columns the model does not take."""
        return validation_batches(self)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        finished = self._part(FinishedRun)
        if finished is not None and finished.finished:  # a finished run resumed: no step left to take
            self.control.should_training_stop = True
            return [], None
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._step.begin(batches, num_items)
        return batches, num_items

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.lets_family is None:
            loss = super().training_step(model, inputs, num_items_in_batch)
        else:
            loss = self._step.run(model, inputs, num_items_in_batch)
        tally = self._part(LossTally)
        if tally is not None:
            tally.add(loss, self.state.global_step)
        return loss

    def lets_hyper_step(self) -> None:
        """Update ``rho`` at ``theta_{t+1}`` (run by the optimizer's step, right after the base optimizer's)."""
        self._step.hyper_step(self.model_wrapped, self._validation, self.state.global_step)

    # -- the public radius ---------------------------------------------------------------------
    @property
    def rho(self) -> float | None:
        """The current radius (SAM family; None under ERM and before ``train()`` builds the optimizer)."""
        optimizer = self.lets_optimizer
        return None if optimizer is None else optimizer.rho

    @property
    def lets_gap(self) -> float | None:
        """The last hyper step's ``l_v - l_r`` (None before the first, or for ``lets_objective="val"``)."""
        return last_value(self.lets_optimizer, "last_gap")

    @property
    def lets_hypergradient(self) -> float | None:
        """The last hyper step's ``d objective / d rho`` (None before the first)."""
        return last_value(self.lets_optimizer, "last_hypergradient")

    # -- logging -------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer's entries, completed before any callback or the history sees them: a resumed run's losses are the
        whole run's (:mod:`~lets_hf.trainer_parts.loss_tally`), and each training entry has the radius
        (:mod:`~lets_hf.trainer_parts.report`), the final metrics of ``train()`` the final ``rho``."""
        tally, step = self._part(LossTally), self.state.global_step
        if tally is not None and tally.pending is not None:
            if "loss" in logs and step > tally.last_logged:
                interval = tally.interval_loss(self.args, step)
                logs["loss"] = interval if tally.resumed else logs["loss"]
            if "train_loss" in logs and tally.resumed:
                logs["train_loss"] = tally.train_loss(step)
        optimizer = self.lets_optimizer
        if optimizer is not None and "loss" in logs:
            logs.update(radius_entries(optimizer, self.state.log_history, self.rho_start, self._step.passes))
        elif optimizer is not None and "train_loss" in logs:  # the final metrics, returned by train()
            logs["rho"] = optimizer.rho
        super().log(logs, start_time)


class LETSTrainer(LETSTrainerMixin, Trainer):
    """``transformers.Trainer`` with SAM/ASAM and the LETS radius on ``--optim`` (see the module docstring)."""


class LETSSeq2SeqTrainer(LETSTrainerMixin, Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with SAM/ASAM and the LETS radius on ``--optim``."""
