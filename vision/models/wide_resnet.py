"""Wide ResNet (Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016): WRN-28-10 for CIFAR.

Pre-activation basic blocks, ``(depth - 4) / 6`` per stage, 16k/32k/64k channels for widen factor k,
no dropout (as in SAM's and LETS's CIFAR runs); 36.5M parameters for 10 classes.
``width`` is the widen factor k (10 by default).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .init import PreActivationNet


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.shortcut = (
            None if stride == 1 and in_channels == channels else nn.Conv2d(in_channels, channels, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class WideResNet(PreActivationNet):
    def __init__(self, depth: int, widen: int, num_classes: int):
        if (depth - 4) % 6:
            raise ValueError(f"Wide ResNet depth must be 6n + 4, got {depth}")
        per_stage = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        blocks, in_channels = [], 16
        for stage, channels in enumerate(widths):
            for i in range(per_stage):
                blocks.append(PreActBlock(in_channels, channels, 2 if stage > 0 and i == 0 else 1))
                in_channels = channels
        super().__init__(stem, blocks, in_channels, num_classes)


def wrn28_10(num_classes: int, width: int = 10) -> WideResNet:
    return WideResNet(28, width, num_classes)
