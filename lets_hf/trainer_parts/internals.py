"""The private names of ``transformers.Trainer`` that ``LETSTrainer`` uses, why, and a check at construction.

Everything else goes through Trainer's public extension points: ``create_optimizer`` (the run length is
``state.max_steps`` by then), ``get_optimizer_cls_and_kwargs``, ``get_batch_samples``, ``training_step``,
``log`` and callbacks (the loss tally, with ``ExportableState``; the progress bar). What has no public hook is
listed in :data:`PRIVATE_NAMES`; a transformers release may rename any of them, so :func:`check_internals` runs
when a SAM-family trainer is built and names what is missing, with the installed version and the tested one,
instead of an ``AttributeError`` in the middle of training.
"""

from __future__ import annotations

import transformers
from transformers import ProgressCallback, Trainer

TESTED_TRANSFORMERS = "5.25"  # the transformers version(s) these names were checked against

# (owner, name, why): Trainer's methods that LETSTrainer overrides or calls, and one attribute it reads.
PRIVATE_NAMES = (
    (Trainer, "_save_optimizer_and_scheduler", "FSDP2: the LETS state saved beside accelerate's sharded base state"),
    (Trainer, "_load_optimizer_and_scheduler", "FSDP2: the LETS state loaded beside accelerate's sharded base state"),
    (Trainer, "_prepare_inputs", "the hyper step's own forward passes move a batch to the device as training_step"),
    (Trainer, "_remove_unused_columns", "validation batches drop the columns the model does not take"),
    (Trainer, "_get_collator_with_removed_columns", "validation batches are collated as training batches"),
    (ProgressCallback(), "training_bar", "rho shown after the progress bar's counts"),  # an instance's attribute
)


def missing_internals(names=PRIVATE_NAMES) -> list[str]:
    """The entries of ``names`` the installed transformers lacks, as ``Owner.name (why)``."""
    return [f"{_name(owner)}.{name} ({why})" for owner, name, why in names if not hasattr(owner, name)]


def _name(owner) -> str:
    return owner.__name__ if isinstance(owner, type) else type(owner).__name__


def check_internals(names=PRIVATE_NAMES) -> None:
    """RuntimeError naming each private Trainer name that the installed transformers lacks."""
    missing = missing_internals(names)
    if missing:
        raise RuntimeError(
            f"LETSTrainer needs Trainer internals that transformers {transformers.__version__} does not have: "
            f"{'; '.join(missing)}. LETSTrainer is tested with transformers {TESTED_TRANSFORMERS}: install that "
            "version, or report this with the version you use."
        )
