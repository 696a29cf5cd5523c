"""Which examples go into which batch: seeded, sharded over ranks, and exactly resumable.

Each pass over a dataset uses a permutation drawn from ``(seed, pass)``; a global batch of
``batch_size`` examples is split into equal slices, one per rank (``batch_size`` is the total
over all devices, as in the paper's Table 10). Every batch also carries a seed of its own for the
device-side augmentation (:mod:`vision.augment`). Nothing depends on a generator's running state,
so a run resumed at an epoch boundary draws exactly the batches an uninterrupted run draws.

LETS's validation batches come from the training set (Wang et al., ECCV 2024, Sec. 5: "the
validation set is sampled from the training set"): :class:`ValidationStream` is a second,
independently shuffled pass over it that cycles forever and remembers how far it got.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lets_hf.seeding import mix_seed

class ShardedBatches:
    """The batches of one pass (``epoch``) over ``dataset`` for this rank.

    Training (``shuffle=True``): a fresh permutation per pass, incomplete last global batch dropped.
    Evaluation (``shuffle=False``): every example exactly once over all ranks (rank ``r`` takes
    examples ``r, r + world_size, ...``), in batches of ``batch_size // world_size``.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, shuffle: bool, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, pin_memory: bool = False):
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

    def index_batches(self, epoch: int) -> List[Tensor]:
        """This rank's example indices for pass ``epoch``, one tensor per batch."""
        if not self.shuffle:
            return list(torch.arange(self.rank, len(self.dataset), self.world_size).split(self.local_batch))
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        order = torch.randperm(len(self.dataset), generator=generator)[:len(self) * self.global_batch]
        return list(order.view(len(self), self.world_size, self.local_batch)[:, self.rank])

    def batch_seed(self, epoch: int, index: int) -> int:
        return mix_seed(self.seed, epoch, index, self.rank)

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Tuple[int, Tensor, Tensor]]:
        """``(index, images, labels)`` for the batches ``start, start + 1, ...`` of pass ``epoch``."""
        batches = [b.tolist() for b in self.index_batches(epoch)[start:]]
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, persistent_workers=False)
        for index, (images, labels) in enumerate(loader, start):
            yield index, images, labels


class ValidationStream:
    """Batches from the training set in an order of their own, cycling forever (LETS's ``V``).

    ``transform(images, seed)`` runs on the batch after it is moved to ``device``.
    """

    def __init__(self, batches: ShardedBatches, transform: Callable[[Tensor, Optional[int]], Tensor],
                 device: torch.device):
        self.batches, self.transform, self.device = batches, transform, device
        self.drawn = 0
        self._iterator: Optional[Iterator[Tuple[int, Tensor, Tensor]]] = None

    def __iter__(self) -> "ValidationStream":
        return self

    def __next__(self) -> Tuple[Tensor, Tensor]:
        cycle, index = divmod(self.drawn, len(self.batches))
        if self._iterator is None or index == 0:
            self._iterator = self.batches.iterate(cycle, start=index)
        _, images, labels = next(self._iterator)
        self.drawn += 1
        images = self.transform(images.to(self.device, non_blocking=True), self.batches.batch_seed(cycle, index))
        return images, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> Dict[str, int]:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.drawn, self._iterator = int(state["drawn"]), None
