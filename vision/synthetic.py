"""``--dataset synthetic``: CIFAR-10-shaped images generated in memory, for smoke runs without any download.

Every image is uniform noise in [0, 200) with one band of three rows set to 255, whose position and
colour channel say the class (class ``c``: rows ``3c .. 3c+2`` of channel ``c mod 3``). A network learns
that in a few hundred steps, so a run's losses and rho move as on real data, but the numbers say
nothing about CIFAR. The images are the same for every ``--seed`` (seed 0 of their own generator), as
a real dataset would be; ``--seed`` changes the order, the augmentation and the initial weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_CLASSES = 10
TRAIN_IMAGES, TEST_IMAGES = 1280, 256


def banded_images(count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` uint8 images ``[3, 32, 32]`` of noise with their class's band, and their labels."""
    labels = torch.randint(0, NUM_CLASSES, (count,), generator=generator)
    images = torch.randint(0, 200, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
    for index, label in enumerate(labels.tolist()):
        images[index, label % 3, 3 * label : 3 * label + 3, :] = 255
    return images, labels


def channel_statistics(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale."""
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1).double() / 255
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())


def synthetic_splits() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``(images, labels)`` of the train and test splits (:data:`TRAIN_IMAGES`, :data:`TEST_IMAGES`)."""
    generator = torch.Generator().manual_seed(0)
    return banded_images(TRAIN_IMAGES, generator), banded_images(TEST_IMAGES, generator)
