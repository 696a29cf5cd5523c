"""Training setups for GLUE, after the paper's Table 11, selectable per task and method.

``preset_defaults("paper", task, optim)`` (``--glue_preset``) returns values that ``run_glue.py`` installs as argument
defaults, so any flag given on the command line still wins. What comes from the paper and what
is this project's choice is marked below; the paper tunes batch size and rho learning rate over
``GRIDS`` per task, which ``glue/README.md`` turns into commands.
"""

from __future__ import annotations

from .errors import GlueInputError

# Table 11 of the paper (DeBERTa-base on GLUE): the optimizer and schedule shared by all tasks.
PAPER_COMMON: dict[str, object] = {
    "adam_epsilon": 1e-6,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "lr_scheduler_type": "linear",
    "max_grad_norm": 1.0,
}

# Table 11's search spaces: the rho learning rate of LETS and the batch size.
GRIDS: dict[str, tuple] = {
    "rho_lr": (1e-4, 5e-4, 1e-3),
    "per_device_train_batch_size": (16, 32, 48, 64),
}

# This project's choices (common DeBERTa-base fine-tuning recipes; batch sizes from the paper's grid).
OUR_COMMON: dict[str, object] = {
    "warmup_steps": 0.1,  # a ratio of the total steps (transformers >= 5 reads values < 1 so)
    "weight_decay": 0.01,
    "logging_steps": 0.01,  # 100 points of the rho and gap trajectories per run
    "save_total_limit": 1,
}
OUR_TASKS: dict[str, dict[str, object]] = {
    "cola": {"learning_rate": 2e-5, "per_device_train_batch_size": 32, "num_train_epochs": 6},
    "sst2": {"learning_rate": 2e-5, "per_device_train_batch_size": 32, "num_train_epochs": 3},
    "mrpc": {"learning_rate": 2e-5, "per_device_train_batch_size": 32, "num_train_epochs": 6},
    "stsb": {"learning_rate": 2e-5, "per_device_train_batch_size": 32, "num_train_epochs": 6},
    "qqp": {"learning_rate": 2e-5, "per_device_train_batch_size": 64, "num_train_epochs": 3},
    "mnli": {"learning_rate": 2e-5, "per_device_train_batch_size": 64, "num_train_epochs": 3},
    "qnli": {"learning_rate": 2e-5, "per_device_train_batch_size": 32, "num_train_epochs": 3},
    "rte": {"learning_rate": 2e-5, "per_device_train_batch_size": 16, "num_train_epochs": 10},
}
# Initial (or fixed) radius per method: SAM's and ASAM's usual defaults (ours, not from Table 11).
# LETS starts from its fixed-radius twin's value; the rest of its rule (objective, Hessian
# product, rho learning rate: Table 11's smallest, 1e-4) comes from ``--lets_preset paper``.
OUR_METHODS: dict[str, dict[str, object]] = {
    "sam": {"rho": 0.05},
    "asam": {"rho": 0.5},
    "lets_sam": {"rho": 0.05},
    "lets_asam": {"rho": 0.5},
}

PRESETS = ("paper", "none")


def preset_defaults(preset: str, task_name: str, optim: str) -> dict[str, object]:
    """Argument defaults for ``preset`` (``paper`` or ``none``), ``task_name`` and ``--optim`` value."""
    if preset not in PRESETS:
        raise GlueInputError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if preset == "none":
        return {}
    return {**PAPER_COMMON, **OUR_COMMON, **OUR_TASKS[task_name], **OUR_METHODS.get(str(optim), {})}
