"""Symmetric label noise on the training set (the paper's Table 4, following the noisy-label setup of
SAM, Foret et al., ICLR 2021, and of Zhang et al., "Understanding deep learning requires rethinking
generalization", ICLR 2017).

Exactly ``round(rate * N)`` training examples, chosen by a seeded permutation, get a label drawn
uniformly from the *other* classes, so the fraction of wrong labels is the rate (not
``rate * (C - 1) / C`` as when the new label may equal the old one). The test set is never touched.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_noise_rate(rate: float) -> float:
    """``rate`` as a float, or ``ValueError`` naming ``--label_noise`` unless ``0 <= rate < 1``."""
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"--label_noise must be a number in [0, 1), got {rate!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"--label_noise must be in [0, 1) (the fraction of flipped training labels), got {rate!r}")
    return rate


def symmetric_noise(labels: Tensor, rate: float, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    """``(noisy_labels, flipped)``: ``round(rate * N)`` labels moved to a uniformly drawn other class."""
    rate = check_noise_rate(rate)
    if num_classes < 2:
        raise ValueError("label noise needs at least two classes")
    generator = torch.Generator().manual_seed(seed)
    count = round(rate * len(labels))
    chosen = torch.randperm(len(labels), generator=generator)[:count]
    shift = torch.randint(1, num_classes, (count,), generator=generator)
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + shift) % num_classes
    flipped = torch.zeros(len(labels), dtype=torch.bool)
    flipped[chosen] = True
    return noisy, flipped
