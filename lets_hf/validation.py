"""Validation batches for the LETS hyper step.

The paper draws them from the training set (no held-out split); a user may pass a held-out
dataset instead. Batch ``k`` (the k-th hyper step) is a pure function of ``(seed, k, rank)``: the
indices are a slice of a seeded permutation of the dataset, a fresh one per pass over it. No
iterator state exists, so a resumed run draws exactly the batches the uninterrupted run would
have drawn, and each rank of a distributed run draws its own.

The permutations come from a stream of their own, ``mix_seed(VALIDATION_STREAM, seed, pass)``.
The Trainer's sampler (accelerate's ``SeedableRandomSampler``) shuffles pass ``e`` with
``manual_seed(seed + e)`` and shards batches over ranks as done here; a validation stream seeded
with ``seed`` alone would replay the training batches (``V_t = B_t``, so the gap is zero but for
dropout), as an earlier version did for seed 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .seeding import VALIDATION_STREAM, generator


class ValidationBatches:
    """The k-th validation batch of a run, ``batch(k)``, collated by ``collate_fn``."""

    def __init__(
        self,
        dataset: Sequence,
        batch_size: int,
        collate_fn: Callable[[list[Any]], Any],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(dataset) < batch_size * world_size:
            raise ValueError(
                f"the LETS validation dataset has {len(dataset)} examples, fewer than one batch of "
                f"{batch_size} per process x {world_size} processes; lower lets_val_batch_size"
            )
        self.dataset, self.batch_size, self.collate_fn = dataset, batch_size, collate_fn
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.batches_per_pass = len(dataset) // (batch_size * world_size)
        self._order = (None, None)  # (pass, its permutation): drawn once per pass, not per batch

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._order[0] != epoch:
            order = torch.randperm(len(self.dataset), generator=generator(VALIDATION_STREAM, self.seed, epoch))
            self._order = (epoch, order)
        return self._order[1]

    def indices(self, k: int) -> list[int]:
        """The dataset indices of batch ``k`` on this rank."""
        epoch, position = divmod(k, self.batches_per_pass)
        order = self._permutation(epoch)
        start = (position * self.world_size + self.rank) * self.batch_size
        return order[start : start + self.batch_size].tolist()

    def batch(self, k: int) -> Any:
        return self.collate_fn([self.dataset[i] for i in self.indices(k)])
