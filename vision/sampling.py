"""Which examples go into which batch: seeded, sharded over ranks, and exactly resumable.

Each pass over a dataset uses a permutation drawn from ``(seed, pass)``; a global batch of
``batch_size`` examples is split into equal slices, one per rank (``batch_size`` is the total
over all devices, as in the paper's Table 10). Every batch also carries a seed of its own for the
device-side augmentation (:mod:`vision.augment`). Nothing depends on a generator's running state,
so a run resumed at an epoch boundary draws exactly the batches an uninterrupted run draws.

LETS's validation batches come from the training set (Wang et al., ECCV 2024, Sec. 5: "the
validation set is sampled from the training set"): :class:`ValidationStream` draws them with the
library's sampler, :class:`lets_hf.validation.ValidationBatches` (the one the Trainer uses: its own
seeded stream, a fresh permutation per pass, batch ``k`` a pure function of ``(seed, k, rank)``),
loads them with this module's workers and remembers how many it drew. Every seed comes from
:mod:`lets_hf.seeding`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from lets_hf.seeding import VALIDATION_STREAM, generator, mix_seed
from lets_hf.validation import ValidationBatches


class ShardedBatches:
    """The batches of one pass (``epoch``) over ``dataset`` for this rank.

    Training (``shuffle=True``): a fresh permutation per pass, incomplete last global batch dropped.
    Evaluation (``shuffle=False``): every example exactly once over all ranks (rank ``r`` takes
    examples ``r, r + world_size, ...``), in batches of ``batch_size // world_size``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        *,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        if batch_size % world_size:
            raise ValueError(f"--batch_size ({batch_size}) must be divisible by the number of processes ({world_size})")
        self.dataset, self.seed, self.shuffle = dataset, seed, shuffle
        self.global_batch, self.local_batch = batch_size, batch_size // world_size
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        if shuffle and len(dataset) < batch_size:
            raise ValueError(f"--batch_size ({batch_size}) is larger than the training set ({len(dataset)} examples)")

    def __len__(self) -> int:
        if self.shuffle:
            return len(self.dataset) // self.global_batch
        return -(-len(range(self.rank, len(self.dataset), self.world_size)) // self.local_batch)

    def index_batches(self, epoch: int) -> list[Tensor]:
        """This rank's example indices for pass ``epoch``, one tensor per batch."""
        if not self.shuffle:
            return list(torch.arange(self.rank, len(self.dataset), self.world_size).split(self.local_batch))
        order = torch.randperm(len(self.dataset), generator=generator(self.seed, epoch))[
            : len(self) * self.global_batch
        ]
        return list(order.view(len(self), self.world_size, self.local_batch)[:, self.rank])

    def batch_seed(self, epoch: int, index: int) -> int:
        return mix_seed(self.seed, epoch, index, self.rank)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[tuple[int, Tensor, Tensor]]:
        """``(index, images, labels)`` for the batches ``start, start + 1, ...`` of pass ``epoch``."""
        batches = [b.tolist() for b in self.index_batches(epoch)[start:]]
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )
        for index, (images, labels) in enumerate(loader, start):
            yield index, images, labels


class ValidationStream:
    """Batches from the training set in an order of their own, cycling forever (LETS's ``V``).

    Batch ``k`` holds the examples of ``ValidationBatches(dataset, batch_size / world_size, seed=seed,
    rank=rank, world_size=world_size).indices(k)``; ``transform(images, seed)`` runs on it after it is
    moved to ``device``, with the seed ``mix_seed(VALIDATION_STREAM, seed, k, rank)``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        transform: Callable[[Tensor, int | None], Tensor],
        device: torch.device,
        *,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        self.batches = ValidationBatches(
            dataset, batch_size // world_size, default_collate, seed=seed, rank=rank, world_size=world_size
        )
        self.transform, self.device = transform, device
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.drawn = 0
        self._iterator: Iterator[tuple[Tensor, Tensor]] | None = None

    def __iter__(self) -> ValidationStream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        if self._iterator is None:
            indices = (self.batches.indices(k) for k in itertools.count(self.drawn))
            self._iterator = iter(
                DataLoader(
                    self.batches.dataset,
                    batch_sampler=indices,
                    num_workers=self.num_workers,
                    pin_memory=self.pin_memory,
                )
            )
        images, labels = next(self._iterator)
        seed = mix_seed(VALIDATION_STREAM, self.batches.seed, self.drawn, self.batches.rank)
        self.drawn += 1
        images = self.transform(images.to(self.device, non_blocking=True), seed)
        return images, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, int]:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.drawn, self._iterator = int(state["drawn"]), None
