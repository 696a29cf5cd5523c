"""What a checkpoint's optimizer state means for the run, said before training.

A missing optimizer state is named in a warning with what restarts; one the run cannot load (another
optimizer, a learned radius against a fixed one) is refused with what it holds and what the run builds
(:func:`lets_hf.checkpoints.optimizer_state_mismatch`); ``save_only_model`` with a learned radius is warned
about at construction, since its checkpoints cannot resume ``rho``.
"""

from __future__ import annotations

import os

from transformers.utils import logging

from .. import checkpoints
from ..radius import LearnedRadius
from .optimizers import optimizer_chain

logger = logging.get_logger("lets_hf.trainer")


def check_optimizer_checkpoint(trainer, checkpoint: str) -> None:
    """Warn what restarts without an optimizer state; refuse one the run cannot load (ValueError)."""
    missing = checkpoints.missing_optimizer_files(checkpoint)
    if missing:
        logger.warning("%s has no %s: %s", checkpoint, " or ".join(missing), restarting_state(trainer, checkpoint))
        return
    built, saved = optimizer_chain(trainer.optimizer)[-1], checkpoints.load_optimizer_state(checkpoint)
    dropped = checkpoints.dropped_sam_state(saved, built)
    if dropped:
        logger.warning(
            "%s was saved by a SAM-family run; this run (--optim %s) resumes its base optimizer's state (the moments "
            "too) and drops %s: nothing else is lost",
            checkpoint,
            getattr(trainer.args.optim, "value", trainer.args.optim),
            dropped,
        )
        return
    mismatch = checkpoints.optimizer_state_mismatch(saved, built)
    if mismatch:
        args = trainer.args
        asked = f"--optim {getattr(args.optim, 'value', args.optim)}" + (
            f" --lets_base_optim {args.lets_base_optim}" if trainer.lets_family is not None else ""
        )
        raise ValueError(
            f"cannot resume from {os.path.join(checkpoint, checkpoints.OPTIMIZER_NAME)}: {mismatch} "
            f"({asked}). Resume with the optimizer settings the checkpoint was trained with, or "
            f"start a new run from its weights (model_name_or_path={checkpoint}) without "
            "resume_from_checkpoint."
        )


def restarting_state(trainer, checkpoint: str) -> str:
    """In words, what a resume without the optimizer state starts afresh."""
    lost = (
        "the optimizer state (e.g. Adam's moments) starts from zero and the learning-rate schedule from its first step"
    )
    optimizer = trainer.lets_optimizer
    if optimizer is not None and isinstance(optimizer.radius, LearnedRadius):
        reached = checkpoints.last_logged(checkpoint, "rho")
        lost += f"; rho restarts at rho_0={optimizer.rho:.4g} with a fresh Adam state" + (
            f" (the checkpoint's run had reached rho={reached:.4g})" if reached is not None else ""
        )
    return lost + ". Resume from a checkpoint saved without save_only_model for an exact resume."


def warn_if_checkpoints_drop_the_radius(args) -> None:
    if args.sam_family.learned and args.save_only_model and args.save_strategy != "no":
        logger.warning(
            "save_only_model=True with --optim %s: checkpoints will hold the weights only, not the "
            "learned rho, its Adam state or the optimizer's; a resumed run restarts rho at rho_0=%g. "
            "Drop save_only_model to resume exactly.",
            args.optim,
            args.rho,
        )
