"""The exact-resume loss tally: a resumed run logs and reports the losses of the uninterrupted run.

Trainer logs ``loss`` = (the sum of the micro-batch losses since the last log) / (the steps since it) and ends
with ``train_loss`` = (the sum of all) / (the steps), each sum over processes the mean of the ranks' sums.
A resumed run starts both sums at zero at the resumed step, so its first ``loss`` averages fewer steps and its
``train_loss`` sums this segment only. :class:`LossTally` keeps the run's own sums (``total``: of the logged
intervals; ``pending``: since the last log, on the device, added to as Trainer adds, ``logging_nan_inf_filter``
included), carries them in the checkpoint's ``trainer_state.json`` (``ExportableState``) and, in a resumed run,
gives the logs the whole run's values, before any logging callback sees them.
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_pt_utils import nested_gather


class LossTally(TrainerCallback, ExportableState):
    """The run's loss sums; ``resumed`` once restored from a checkpoint's ``trainer_state.json``."""

    def __init__(self):
        self.total = 0.0  # the logged intervals' sums (each the mean over processes)
        self.last_logged = 0  # the step of the last log
        self.saved_pending = 0.0  # the sum since the last log, over processes, as a checkpoint carries it
        self.pending: Tensor | None = None  # this process's sum since the last log, on the device
        self.resumed = False
        self._nan_inf_filter = True

    def state(self) -> dict:
        return {
            "args": {},
            "attributes": {"total": self.total, "last_logged": self.last_logged, "saved_pending": self.saved_pending},
        }

    # -- events ------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__) if state.global_step else None
        attributes = saved.get("attributes", {}) if isinstance(saved, dict) else {}
        self.resumed = {"total", "last_logged", "saved_pending"} <= set(attributes)
        self.total = float(attributes["total"]) if self.resumed else 0.0
        self.last_logged = int(attributes["last_logged"]) if self.resumed else state.global_step
        self.saved_pending = float(attributes["saved_pending"]) if self.resumed else 0.0
        self.pending = torch.tensor(self.saved_pending, device=args.device)
        self._nan_inf_filter = args.logging_nan_inf_filter

    def on_step_end(self, args, state, control, **kwargs):
        self._before_a_save(args, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._before_a_save(args, control)

    def _before_a_save(self, args, control) -> None:
        """The sum since the last log, over processes, where a checkpoint may follow (all ranks gather)."""
        if control.should_save or control.should_evaluate:  # evaluate: save_strategy "best" decides after it
            self.saved_pending = self._over_processes(self.pending, args)

    # -- what the trainer tells it -------------------------------------------------------------------
    def add(self, loss: Tensor, global_step: int) -> None:
        """A micro-batch's loss, as Trainer adds it (a non-finite one as the mean of the interval so far)."""
        if self.pending is None:
            return
        loss = loss.detach().to(self.pending.device)
        if self._nan_inf_filter:
            since = 1 + global_step - self.last_logged
            self.pending = torch.where(torch.isfinite(loss), self.pending + loss, self.pending + self.pending / since)
        else:
            self.pending = self.pending + loss

    def interval_loss(self, args, global_step: int) -> float:
        """The loss of the interval a log closes (Trainer's ``loss``), and a new interval."""
        summed = self._over_processes(self.pending, args)
        loss = summed / (global_step - self.last_logged)
        self.total += summed
        self.pending, self.saved_pending, self.last_logged = torch.zeros_like(self.pending), 0.0, global_step
        return loss

    def train_loss(self, global_step: int) -> float:
        """The whole run's ``train_loss`` (this process's sum since the last log, as Trainer's)."""
        return (self.total + self.pending.item()) / max(global_step, 1)

    @staticmethod
    def _over_processes(value: Tensor, args) -> float:
        return nested_gather(value, args.parallel_mode).mean().item()
