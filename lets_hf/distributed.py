"""The few collective operations the math needs, no-ops outside a distributed run."""

from __future__ import annotations

from collections.abc import Sequence

import torch.distributed as dist
from torch import Tensor

from .sharding import is_sharded


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def mean_over_ranks(value: Tensor) -> Tensor:
    """The mean of ``value`` over all ranks (a new tensor), or ``value`` itself in one process."""
    if world_size() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()


def average_gradients_(grads: Sequence[Tensor]) -> None:
    """Average gradients over ranks in place (for a step that turned to ERM after a ``no_sync`` pass).

    Sharded (FSDP2) gradients are left alone: FSDP2 has no per-worker gradient (a backward under
    ``no_sync`` leaves ``.grad`` None), every pass is synced and each rank's shard is already the mean.
    """
    if world_size() == 1:
        return
    for grad in grads:
        if is_sharded(grad):
            continue
        dist.all_reduce(grad)
        grad.div_(world_size())
