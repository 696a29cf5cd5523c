"""Shared pieces of the Trainer tests: arguments, a trainer with sequential data order, a reference loop, a tiny LM."""

import torch
from torch.utils.data import SequentialSampler
from transformers.data.data_collator import default_data_collator

from experiment_utils.tiny_runs import tiny_run_arguments
from lets_hf import LETSOptimizer
from lets_hf.arguments import LETSArguments
from lets_hf.trainer import LETSTrainer
from lets_hf.validation import ValidationBatches


class SequentialLETSTrainer(LETSTrainer):
    """Batches in dataset order, so a hand-written loop can see the same ones."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def lets_args(tmp_path, **overrides) -> LETSArguments:
    """The tests' short run (:func:`experiment_utils.tiny_runs.tiny_run_arguments`) in ``tmp_path/out``."""
    return LETSArguments(**tiny_run_arguments(str(tmp_path / "out"), **{"lets_val_batch_size": 8, **overrides}))


def preset_overrides(preset: str) -> dict:
    """``lets_args`` overrides that leave ``preset``'s own settings in charge (rate, hvp, validation batches)."""
    from lets_hf.radius import PRESETS

    next_batch = PRESETS[preset].settings.get("val_term") == "next"  # it takes no validation batch size
    return dict(lets_preset=preset, rho_lr=None, lets_hvp=None, **({"lets_val_batch_size": None} if next_batch else {}))


def reference_loop(model, data, args: LETSArguments, steps: int):
    """The plain-PyTorch LETS loop on the same batches: what LETSTrainer must reproduce."""
    base = {
        "sgd": dict(cls=torch.optim.SGD),
        "adamw_torch": dict(
            cls=torch.optim.AdamW,
            betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon,
            weight_decay=args.weight_decay,
        ),
    }[args.lets_base_optim]
    optimizer = LETSOptimizer(
        model.parameters(),
        base.pop("cls"),
        lr=args.learning_rate,
        perturbation=args.build_perturbation(),
        radius=args.build_radius(),
        **base,
    )
    val_batch_size = args.lets_val_batch_size or args.per_device_train_batch_size  # as the Trainer's
    validation = ValidationBatches(data, val_batch_size, default_data_collator, seed=args.seed)
    loss = lambda batch: model(**batch).loss
    bs = args.per_device_train_batch_size * args.gradient_accumulation_steps
    for step in range(steps):
        batch = default_data_collator(data[step * bs : (step + 1) * bs])
        optimizer.step(
            lambda: loss(batch),
            lambda: loss(validation.batch(step)),
            model=model,
            max_grad_norm=args.max_grad_norm or None,
        )  # as Trainer: clip g_hat where max_grad_norm > 0
    return optimizer


def tiny_gpt2(seed: int = 0):
    """A 2-layer, 16-wide GPT-2 causal LM built from a config (no download), without dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=50,
            n_positions=16,
            n_embd=16,
            n_layer=2,
            n_head=2,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )


def lm_dataset(n: int = 32, length: int = 10):
    """Sequences whose labels mask a varying prefix (-100): micro-batches hold different numbers of tokens."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        ids = torch.randint(0, 50, (length,), generator=g)
        labels = ids.clone()
        labels[: (5 * i) % (length - 1)] = -100
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def poison_first_gradient(parameter) -> list:
    """A NaN in ``parameter``'s first gradient only (the ascent pass of step 0); returns the list of its backward
    calls, one entry each."""
    calls = []

    def hook(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == 1 else grad

    parameter.register_hook(hook)
    return calls
