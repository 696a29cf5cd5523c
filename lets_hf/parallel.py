"""How ``LETSTrainer`` runs under accelerate's multi-process back ends: DDP and FSDP2, not DeepSpeed or FSDP1.

Where the ascent gradient ``g`` comes from (``--lets_ascent``):

- ``per_worker`` (DDP's default, the SAM paper's m-sharpness): the first pass runs under
  ``no_sync``; each worker perturbs its replica along its own micro-batches' gradient, the descent
  gradient ``g_hat`` is then averaged as usual. The hyper step's gradients are per worker too and
  the hypergradient is averaged over ranks.
- ``global`` (the only choice under FSDP2, an option under DDP): every pass is synced, so ``g`` is
  the gradient of the whole global batch and a run on N ranks takes the step one process would
  take on the N micro-batches together (up to reduction order). Under FSDP2 there is no
  per-worker gradient: a backward under ``no_sync`` leaves ``.grad`` None, FSDP2 keeps the
  gradient inside and adds it in at the next synced backward. The cost is one more gradient
  all-reduce (DDP) / reduce-scatter (FSDP2) per step and per hyper-step pass.

Under FSDP2 each rank holds one shard of every parameter (``DTensor``); the math takes its norms
and dot products over all shards (:mod:`lets_hf.sharding`), so ``rho`` is the same on every rank.
Not supported: ``lets_hvp="exact"`` under FSDP2 (its double backward does not reach sharded
parameters); FSDP1 (flat parameters); DeepSpeed, whose accelerate backward steps the engine on a
sync step, so SAM's two backward passes would step twice.

Checkpoints under FSDP2: accelerate saves the base optimizer's state (``save_fsdp_optimizer``, full
or sharded as ``fsdp_config["state_dict_type"]`` says); torch's distributed state-dict API keeps
only ``state`` and ``param_groups``, so the rest of the LETS state (``rho`` and its Adam state, the
step counters, the rule's state) goes to one file per rank, ``lets_state-rank{r}.pt``, with this
rank's shards of any per-parameter tensor. Resuming needs the same number of ranks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from .saved_state import LETS_KEY
from .sharding import is_sharded, local
from .trainer_parts.optimizers import optimizer_chain

ASCENTS = ("per_worker", "global")
LETS_STATE_NAME = "lets_state-rank{rank}.pt"


def check_backend(trainer) -> None:
    """ValueError, before training, for a back end or setting that SAM's two passes cannot run on."""
    args = trainer.args
    if trainer.is_deepspeed_enabled:
        raise ValueError(
            f"--optim {args.optim} does not run under DeepSpeed: accelerate's DeepSpeed backward steps "
            "the engine at the end of each accumulation cycle, so SAM's two backward passes would take "
            "two steps. Shard with FSDP2 instead (accelerate launch --use_fsdp --fsdp_version 2, or "
            "fsdp_config={'version': 2}) or replicate with DDP (accelerate launch --multi_gpu)"
        )
    if not trainer.is_fsdp_enabled:
        return
    if getattr(trainer.accelerator.state.fsdp_plugin, "fsdp_version", 1) != 2:
        raise ValueError(
            f"--optim {args.optim} needs FSDP version 2 (fully_shard): FSDP1's flat parameters hide the "
            "tensors SAM perturbs. Use --fsdp_version 2 (accelerate) or fsdp_config={'version': 2}"
        )
    if args.lets_ascent == "per_worker":
        raise ValueError(
            "lets_ascent='per_worker' is not possible under FSDP2 (a backward under no_sync leaves no "
            "gradient); use 'global' (the default there)"
        )
    if args.sam_family.learned and args.probe_radius().hvp.name == "exact":
        raise ValueError(
            "lets_hvp='exact' does not work under FSDP2 (its double backward does not reach sharded "
            "parameters); use 'finite_difference'"
        )


def global_ascent(trainer) -> bool:
    """Whether the ascent and hyper-step passes are synced (``global``): always under FSDP2, by choice under DDP."""
    return trainer.is_fsdp_enabled or trainer.args.lets_ascent == "global"


def sync_scope(trainer, model, inside_no_sync: bool = False):
    """The context of an ascent or hyper-step pass: ``no_sync`` for a per-worker one; for a global one, gradient
    sync on inside (also where the Trainer runs the pass within its own ``no_sync``, as it runs every micro-batch
    of a cycle but the last), and back to no sync after it when ``inside_no_sync``."""
    if not global_ascent(trainer):
        return trainer.accelerator.no_sync(model)
    return _synced(model, restore=not inside_no_sync)


@contextlib.contextmanager
def _synced(model, restore: bool) -> Iterator[None]:
    _set_gradient_sync(model, True)
    try:
        yield
    finally:
        _set_gradient_sync(model, restore)


def _set_gradient_sync(model, sync: bool) -> None:
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(sync)
    elif hasattr(model, "require_backward_grad_sync"):  # DDP
        model.require_backward_grad_sync = sync


@contextlib.contextmanager
def base_optimizer_exposed(optimizer, lets_optimizer) -> Iterator[None]:
    """Let accelerate's FSDP checkpoint code see the base optimizer inside ``optimizer`` (accelerate's wrapper
    around ``lets_optimizer``): torch's distributed state-dict API reads a plain optimizer's ``state`` and
    ``param_groups``, not the LETS wrapper's state dict."""
    chain = optimizer_chain(optimizer)
    holder = chain[chain.index(lets_optimizer) - 1]
    holder.optimizer = lets_optimizer.base_optimizer
    try:
        yield
    finally:
        holder.optimizer = lets_optimizer


def _local_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _local_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_local_tree(item) for item in value)
    if isinstance(value, torch.Tensor) and is_sharded(value):
        return local([value])[0].clone()
    return value


def save_lets_state(lets_optimizer, output_dir: str, rank: int) -> None:
    """This rank's LETS state without the base optimizer's (saved by accelerate), sharded tensors as local shards."""
    state = lets_optimizer.state_dict()[LETS_KEY]
    torch.save(_local_tree(state), os.path.join(output_dir, LETS_STATE_NAME.format(rank=rank)))


def load_lets_state(lets_optimizer, checkpoint: str, rank: int) -> None:
    """Restore what :func:`save_lets_state` wrote, after accelerate restored the base optimizer."""
    path = os.path.join(checkpoint, LETS_STATE_NAME.format(rank=rank))
    if not os.path.isfile(path):
        raise ValueError(
            f"{path} is missing: resume a LETS run under FSDP2 from a checkpoint it saved, with the "
            "same number of processes"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    lets_optimizer.load_state_dict({**lets_optimizer.base_optimizer.state_dict(), LETS_KEY: state})
