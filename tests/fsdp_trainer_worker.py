"""One rank of the 2-process FSDP2 Trainer test (run by tests/test_fsdp.py under ``torch.distributed.run``).

Trains a float64 tiny DeBERTa with LETSTrainer under FSDP2 (``fsdp_config={"version": 2}``, sharded
checkpoints): with AdamW, checkpointing at step 2 of 3, then a second trainer resumed from that checkpoint;
and with SGD; and 2 steps under each preset of the learned radius. Writes each run's final weights (gathered
whole) and rho trajectory.
"""

import json
import os
import pathlib
import sys

import torch
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType
from torch.distributed.tensor import DTensor

sys.path.insert(0, os.path.dirname(__file__))
from lets_testing import leave_process_group, tiny_deberta, token_dataset  # noqa: E402
from trainer_helpers import SequentialLETSTrainer, lets_args, preset_overrides  # noqa: E402

from lets_hf.radius import PRESETS  # noqa: E402

FSDP_ARGS = dict(
    fsdp="full_shard",
    fsdp_config={"version": 2, "state_dict_type": "SHARDED_STATE_DICT", "reshard_after_forward": True},
)


def force_fsdp_on_cpu() -> None:
    """accelerate 1.15 switches its state to FSDP only on GPU-like devices: on CPU it silently runs DDP
    (MULTI_CPU) and drops the plugin. Set FSDP after its own initialisation, in AcceleratorState and in
    PartialState's shared state, which later state objects read back (without it no_sync and the
    checkpoint code would take the DDP branch)."""
    original = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = init


def float64_deberta():
    """The tiny DeBERTa in float64 throughout: its default loss casts the logits to float32 (``.float()``), the
    ``single_label_classification`` one does not. Its head ignores ``num_items_in_batch``: it says so, so that
    Trainer divides by the accumulation steps and does not multiply by the number of processes."""
    model = tiny_deberta().double()
    model.config.problem_type = "single_label_classification"
    model.accepts_loss_kwargs = False
    return model


def whole_weights(model) -> torch.Tensor:
    return torch.cat(
        [(p.full_tensor() if isinstance(p, DTensor) else p).detach().flatten() for p in model.parameters()]
    )


# SGD (lets_args' default), whose step is linear in the gradient: the run equal to one process up to reduction order.
SGD_ARGS = dict(gradient_accumulation_steps=2, max_steps=3)
# AdamW, so that the sharded checkpoint carries optimizer moments. Its step lr * g / (|g| + eps) magnifies a
# change of g by up to lr / eps where g is small: eps 1e-6 bounds that at 2e4 (1e-8 would allow 2e6).
ADAMW_ARGS = dict(lets_base_optim="adamw_torch", learning_rate=0.02, adam_epsilon=1e-6, **SGD_ARGS)


def train(out: pathlib.Path, optim: str, settings, resume=None, **saving):
    args = lets_args(
        out, optim=optim, per_device_train_batch_size=4, **{"lets_val_batch_size": 4, **settings}, **saving, **FSDP_ARGS
    )
    trainer = SequentialLETSTrainer(model=float64_deberta(), args=args, train_dataset=token_dataset(64))
    trainer.train(resume_from_checkpoint=resume)
    assert trainer.is_fsdp_enabled and isinstance(next(trainer.model.parameters()), DTensor)
    rhos = [row["rho"] for row in trainer.state.log_history if "rho" in row]
    return trainer, whole_weights(trainer.model), rhos


def main(out: str, optim: str) -> None:
    force_fsdp_on_cpu()
    out = pathlib.Path(out)
    saving = dict(save_strategy="steps", save_steps=2)
    trainer, weights, rhos = train(out / "adamw", optim, ADAMW_ARGS, **saving)
    _, resumed, resumed_rhos = train(
        out / "adamw", optim, ADAMW_ARGS, resume=str(out / "adamw" / "out" / "checkpoint-2"), **saving
    )
    _, sgd, sgd_rhos = train(out / "sgd", optim, SGD_ARGS)
    presets = {  # each preset's own settings, those with a run-length horizon included
        name: train(out / name, optim, dict(max_steps=2, **preset_overrides(name)))[2] for name in sorted(PRESETS)
    }
    rank = trainer.args.process_index
    torch.save({"adamw": weights, "resumed": resumed, "sgd": sgd}, out / f"weights-{rank}.pt")
    (out / f"result-{rank}.json").write_text(
        json.dumps(
            {
                "adamw": rhos,
                "resumed": resumed_rhos,
                "sgd": sgd_rhos,
                "presets": presets,
                "world_size": trainer.args.world_size,
            }
        )
    )
    leave_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
