"""The tiny models and short Trainer runs of the tests and the benchmarks' checks, defined once.

:func:`deberta_config` is every DeBERTa-v2 classifier built offline from a config (the tests' 2-layer,
32-wide one, the GLUE tests' with a trained tokenizer, the benchmarks' sizes); :func:`tiny_run_arguments`
the arguments of a short, quiet, local LETSTrainer run (no checkpoints, no reporting, no progress bar).
"""

from __future__ import annotations

from typing import Any


def deberta_config(
    hidden: int = 128,
    layers: int = 2,
    vocab: int = 1000,
    heads: int | None = None,
    intermediate: int | None = None,
    max_positions: int = 512,
    dropout: float = 0.0,
    num_labels: int = 2,
    **extra: Any,
):
    """A DeBERTa-v2 classification config: ``heads`` default one per 32 of ``hidden``, ``intermediate``
    ``4 * hidden``, no dropout by default (so that every method sees the same function); ``extra`` goes to the
    config as given (``pad_token_id``, ...)."""
    from transformers import DebertaV2Config

    return DebertaV2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads or max(hidden // 32, 1),
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_positions,
        num_labels=num_labels,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **extra,
    )


def tiny_run_arguments(output_dir: str, **overrides: Any) -> dict[str, Any]:
    """``LETSArguments`` keyword arguments of a short run: lets_sam (the paper's preset) over SGD from ``rho=0.1``
    with a moving radius, 4 steps of 8 examples at a constant rate, clipped at 1, a log every step, seed 7, on the
    CPU, nothing saved, reported or drawn; ``overrides`` replace any of them (stock ``TrainingArguments`` take
    those without LETS's)."""
    return {
        "output_dir": output_dir,
        "optim": "lets_sam",
        "lets_base_optim": "sgd",
        "lets_preset": "paper",  # the paper's rule (auto would pick robust_next over SGD)
        "learning_rate": 0.5,
        "rho": 0.1,
        "rho_lr": 0.05,
        "lets_hvp": "finite_difference",
        "per_device_train_batch_size": 8,
        "max_steps": 4,
        "lr_scheduler_type": "constant",
        "max_grad_norm": 1.0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "seed": 7,
        "disable_tqdm": True,
        **overrides,
    }


LETS_ONLY = (
    "optim",
    "lets_base_optim",
    "lets_preset",
    "rho",
    "rho_lr",
    "lets_hvp",
)  # not stock TrainingArguments fields


def stock_run_arguments(output_dir: str, **overrides: Any) -> dict[str, Any]:
    """:func:`tiny_run_arguments` without LETS's fields (``optim`` back to Trainer's default unless given), for the
    stock ``TrainingArguments``."""
    settings = tiny_run_arguments(output_dir)
    return {**{key: value for key, value in settings.items() if key not in LETS_ONLY}, **overrides}
