"""A finished run resumed takes no step: Trainer's loop would take one more when the run ends mid-epoch."""

from __future__ import annotations

from transformers import TrainerCallback


class FinishedRun(TrainerCallback):
    """``finished`` from the start of ``train()`` when the resumed state has reached ``max_steps``: the trainer then
    draws no batch (``get_batch_samples``), and the end of the epoch saves, evaluates and logs nothing new."""

    def __init__(self):
        self.finished = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.finished = 0 < state.max_steps <= state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.finished:
            control.should_save = control.should_evaluate = control.should_log = False
            control.should_training_stop = True
