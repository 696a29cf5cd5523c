"""The few collective operations the math needs, and when an optimizer takes them.

No hidden collectives: a :class:`~lets_hf.optimizer.LETSOptimizer` all-reduces only for a distributed
model, one whose ranks must agree (one ``rho``, one decision to skip an ascent, the ascent gradient
averaged after a ``no_sync`` pass). It is distributed when its constructor says so
(``distributed=True``: the Trainer passes it on more than one process), when a parameter is a ``DTensor``
(FSDP2), or once ``step(..., model=)`` is given a ``DistributedDataParallel`` module. Otherwise it takes
no collective, even inside a process group: a rank-local model (a reference, a probe) stepped on one
rank alone does not wait for the others. Sums over the shards of a ``DTensor`` (:mod:`lets_hf.sharding`)
belong to the sharded tensor itself and are taken wherever it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.distributed as dist
from torch import Tensor, nn

from .sharding import is_sharded


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_distributed_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``DistributedDataParallel`` module or has sharded (FSDP2) parameters."""
    ddp = dist.is_available() and isinstance(model, nn.parallel.DistributedDataParallel)
    return ddp or any(is_sharded(p) for p in model.parameters())


@dataclass(frozen=True)
class Ranks:
    """The collectives of one optimizer: over the default process group when ``synchronized``, none otherwise."""

    synchronized: bool

    @property
    def size(self) -> int:
        return world_size() if self.synchronized else 1

    def mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over the ranks (a new tensor), or ``value`` itself with one rank."""
        if self.size == 1:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value / self.size

    def average_(self, grads: Sequence[Tensor]) -> None:
        """Average gradients over the ranks in place (for a step that turned to ERM after a ``no_sync`` pass).

        Sharded (FSDP2) gradients are left alone: FSDP2 has no per-worker gradient (a backward under
        ``no_sync`` leaves ``.grad`` None), every pass is synced and each rank's shard is already the mean.
        """
        size = self.size
        if size == 1:
            return
        for grad in grads:
            if is_sharded(grad):
                continue
            dist.all_reduce(grad)
            grad.div_(size)


LOCAL, SYNCHRONIZED = Ranks(False), Ranks(True)
