"""A checkpointing LETSTrainer run, and (as a script) the same run SIGKILLed at a chosen moment.

``python tests/resume_worker.py OUT step:5`` kills the process at the end of step 5;
``OUT write:optimizer.pt@6`` kills it halfway through writing ``checkpoint-6/optimizer.pt`` (the file
is left cut short, as a kill during the write leaves it); ``OUT write:model.safetensors@6`` likewise
for the weights. Used by tests/test_trainer_resume.py.
"""

import os
import pathlib
import signal
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from lets_testing import tiny_deberta, token_dataset  # noqa: E402
from trainer_helpers import lets_args  # noqa: E402

from lets_hf.trainer import LETSTrainer  # noqa: E402

MAX_STEPS, SAVE_STEPS = 8, 2


def resume_trainer(root: pathlib.Path, **overrides) -> LETSTrainer:
    """lets_sam over AdamW with dropout, a warmup and a linear schedule: 8 steps of 96 rows, a checkpoint every 2."""
    settings = dict(
        max_steps=MAX_STEPS,
        save_strategy="steps",
        save_steps=SAVE_STEPS,
        optim="lets_sam",
        lets_base_optim="adamw_torch",
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        warmup_steps=2,
    )
    settings.update(overrides)
    return LETSTrainer(
        model=tiny_deberta(dropout=0.1), args=lets_args(root, **settings), train_dataset=token_dataset(96)
    )


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _cut_short(path: str) -> None:
    """Keep the first half of the file just written, then die: what a kill during the write leaves."""
    data = pathlib.Path(path).read_bytes()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    _die()


def _kill_inside_writes(name: str, step: int) -> None:
    import transformers.modeling_utils

    target = os.path.join(f"checkpoint-{step}", name)
    save, save_file = torch.save, transformers.modeling_utils.safe_save_file

    def torch_save(obj, path, *args, **kwargs):
        save(obj, path, *args, **kwargs)
        if str(path).endswith(target):
            _cut_short(str(path))

    def safetensors_save(tensors, path, *args, **kwargs):
        save_file(tensors, path, *args, **kwargs)
        if str(path).endswith(target):
            _cut_short(str(path))

    torch.save, transformers.modeling_utils.safe_save_file = torch_save, safetensors_save


def main(out: str, kill: str) -> None:
    from transformers import TrainerCallback

    trainer = resume_trainer(pathlib.Path(out))
    where, _, at = kill.partition(":")
    if where == "step":

        class KillAtStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == int(at):
                    _die()

        trainer.add_callback(KillAtStep())
    else:
        name, _, step = at.partition("@")
        _kill_inside_writes(name, int(step))
    trainer.train()


if __name__ == "__main__":
    main(*sys.argv[1:3])
