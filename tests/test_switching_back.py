"""Dropping LETS mid-run: the stock Trainer resumes a LETSTrainer checkpoint with the base optimizer's state.

A SAM-family ``optimizer.pt`` is the base optimizer's state dict with LETS's entry beside it
(:meth:`lets_hf.optimizer.LETSOptimizer.state_dict`), so ``transformers.Trainer`` with ``--optim adamw_torch``
loads AdamW's moments from it (and ignores ``rho``, the one thing lost).
"""

import torch
from lets_testing import tiny_deberta, token_dataset
from trainer_helpers import lets_args
from transformers import Trainer, TrainerCallback, TrainingArguments

from lets_hf.trainer import LETSTrainer


class FirstStepState(TrainerCallback):
    """A copy of the optimizer's state at the start of the first step taken (after any resume)."""

    state = None

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if self.state is None:
            saved = optimizer.state_dict()["state"]
            self.state = {index: {k: v.clone() for k, v in moments.items()} for index, moments in saved.items()}


COMMON = dict(learning_rate=1e-3, per_device_train_batch_size=8, lr_scheduler_type="constant", report_to=[], seed=7)


def test_the_stock_trainer_resumes_a_lets_checkpoint_with_adamws_moments(tmp_path):
    args = lets_args(
        tmp_path, lets_base_optim="adamw_torch", max_steps=2, save_strategy="steps", save_steps=2, **COMMON
    )
    LETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(64)).train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    saved = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    stock = Trainer(
        model=tiny_deberta(),
        args=TrainingArguments(
            output_dir=str(tmp_path / "stock"), optim="adamw_torch", max_steps=4, use_cpu=True, **COMMON
        ),
        train_dataset=token_dataset(64),
    )
    probe = FirstStepState()
    stock.add_callback(probe)
    stock.train(resume_from_checkpoint=str(checkpoint))
    assert stock.state.global_step == 4
    first = probe.state  # AdamW's state at the start of the first resumed step: the checkpoint's moments
    assert first.keys() == saved["state"].keys()
    for index, moments in saved["state"].items():
        assert all(torch.equal(first[index][key], moments[key]) for key in ("exp_avg", "exp_avg_sq", "step")), index
