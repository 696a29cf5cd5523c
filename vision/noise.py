"""Label noise on a vision dataset's ``.labels`` (the rule: :mod:`experiment_utils.label_noise`)."""

from __future__ import annotations

import copy

from torch.utils.data import Dataset

from experiment_utils.label_noise import symmetric_noise


def with_label_noise(dataset: Dataset, rate: float, num_classes: int, seed: int) -> Dataset:
    """A shallow copy of ``dataset`` whose ``.labels`` carry symmetric noise (``dataset`` is unchanged)."""
    noisy = copy.copy(dataset)
    noisy.labels, _ = symmetric_noise(dataset.labels, rate, num_classes, seed)
    return noisy
