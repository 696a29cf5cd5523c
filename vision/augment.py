"""CIFAR augmentation on batched tensors, on the device: the standard random crop with 4-pixel zero
padding and horizontal flip (He et al., CVPR 2016; used by SAM and LETS), then normalisation.

Randomness comes from a seed per batch, not from a global generator, so a batch's augmentation is
a function of (run seed, epoch, batch index) and a resumed run draws exactly what an uninterrupted
one would.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class DeviceTransform:
    """uint8 images ``[B, 3, H, W]`` to normalised floats; given a ``seed``, also random crop and flip.

    Args:
        mean, std: per-channel statistics on the [0, 1] scale.
        padding: zero padding of the random crop (0: no crop).
        flip: random horizontal flip.
        size: resize (bilinear) to ``size x size`` after augmenting, e.g. CIFAR to 224 for ViT-S/16.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        padding: int = 4,
        flip: bool = True,
        size: int | None = None,
    ):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255
        self.padding, self.flip, self.size = padding, flip, size

    def __call__(self, images: Tensor, seed: int | None = None) -> Tensor:
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
            if self.padding:
                images = random_crop(images, self.padding, generator)
            if self.flip:
                images = random_flip(images, generator)
        x = (images.float() - self.mean.to(images.device)) / self.std.to(images.device)
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Each image cropped back to its size at a uniform offset of its zero-padded copy."""
    b, c, h, w = images.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(images.device)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = (offsets[0, :, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
