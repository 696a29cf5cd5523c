"""PyramidNet (Han, Kim, Kim, "Deep Pyramidal Residual Networks", CVPR 2017): PyramidNet-110 with
widening factor alpha = 270 and basic blocks, 28.3M parameters (the paper's Table 4 row).

The channel count grows by ``alpha / (3 N)`` at every block (N = 18 blocks per stage for depth 110);
blocks are BN-conv-BN-ReLU-conv-BN; shortcuts are average-pooled (when downsampling) and zero-padded
to the new channel count. ``width`` is alpha (270 by default).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .init import PreActivationNet


class PyramidBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.stride, self.extra = stride, channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        skip = F.avg_pool2d(x, 2, ceil_mode=True) if self.stride > 1 else x
        return self.body(x) + F.pad(skip, (0, 0, 0, 0, 0, self.extra))


class PyramidNet(PreActivationNet):
    def __init__(self, depth: int, alpha: float, num_classes: int):
        if (depth - 2) % 6:
            raise ValueError(f"PyramidNet (basic blocks) depth must be 6n + 2, got {depth}")
        per_stage = (depth - 2) // 6
        step = alpha / (3 * per_stage)
        stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        blocks, width, in_channels = [], 16.0, 16
        for stage in range(3):
            for i in range(per_stage):
                width += step
                blocks.append(PyramidBlock(in_channels, round(width), 2 if stage > 0 and i == 0 else 1))
                in_channels = round(width)
        super().__init__(stem, blocks, in_channels, num_classes)


def pyramidnet110(num_classes: int, width: int = 270) -> PyramidNet:
    return PyramidNet(110, width, num_classes)
