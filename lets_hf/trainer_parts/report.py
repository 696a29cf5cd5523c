"""The radius in what the Trainer reports: its log entries and the progress bar.

Each training log entry gets ``rho`` and the last hyper step's values (``lets_gap``,
``lets_hypergradient``, ``lets_ascent_grad_norm``), ``lets_skipped_ascents`` and
``lets_passes_per_step``; the run's first entry also ``rho_start``; ``train()``'s final metrics the final
``rho``. The progress bar (Trainer's ``ProgressCallback``, main process) shows ``rho`` after its counts.
No entry or event is added to Trainer's.
"""

from __future__ import annotations

import time

from transformers import ProgressCallback, TrainerCallback

from ..optimizer import LETSOptimizer
from .step import PassCount


def radius_entries(optimizer: LETSOptimizer, history: list[dict], rho_start: float | None, passes: PassCount) -> dict:
    """The radius's entries for a training log entry (``history``: the run's log so far)."""
    entries = {"rho": optimizer.rho}
    if rho_start is not None and not any("rho_start" in row for row in history):
        entries["rho_start"] = rho_start  # once per run: a resumed run has it in its restored history
    for key, name in (
        ("lets_gap", "last_gap"),
        ("lets_hypergradient", "last_hypergradient"),
        ("lets_ascent_grad_norm", "last_ascent_grad_norm"),
    ):
        value = last_value(optimizer, name)
        if value is not None:
            entries[key] = value
    entries["lets_skipped_ascents"] = optimizer.skipped_ascents  # steps taken as stock: non-finite ascent g
    per_step = passes.read_per_step()
    if per_step is not None:
        entries["lets_passes_per_step"] = per_step
    return entries


def last_value(optimizer: LETSOptimizer | None, name: str) -> float | None:
    """The optimizer's last ``last_gap`` / ``last_hypergradient`` / ... as a number (None before the first)."""
    value = getattr(optimizer, name, None)
    return None if value is None else float(value)


class RadiusProgress(TrainerCallback):
    """``rho=...`` after the stock progress bar's counts. Reading rho is a host sync, so the bar's value is
    refreshed at most once a second, and with the final metrics."""

    def __init__(self, trainer):
        self.trainer = trainer
        self._shown_at = float("-inf")

    def on_step_end(self, args, state, control, **kwargs):
        self.show()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "train_loss" in logs:
            self.show(force=True)

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown_at < 1.0:
            return
        self._shown_at = now
        rho = self.trainer.rho
        for callback in self.trainer.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if rho is not None and isinstance(callback, ProgressCallback) and bar is not None:
                bar.set_postfix(rho=f"{rho:.4g}", refresh=False)
