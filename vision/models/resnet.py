"""ResNets (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016).

- ResNet-18 for CIFAR: the ImageNet ResNet-18 with a 3x3 stem and no max-pool (the variant of the
  SAM and LETS papers; 11.2M parameters for 10 classes).
- ResNet-32 for CIFAR: the paper's Sec. 4.2 network, 3 stages of 5 basic blocks with 16/32/64
  channels and parameter-free (zero-padding, "option A") shortcuts; 0.46M parameters.
- ResNet-50 for ImageNet: bottleneck blocks, stride on the 3x3 convolution (as torchvision); 25.6M.

``width`` is the channel count of the first stage (64, 16 and 64 by default); tests build narrow ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .init import he_init


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out_channels)
    )


class PadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the new channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def _shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "pad":
        return PadShortcut(in_channels, out_channels, stride)
    return _conv_bn(in_channels, out_channels, 1, stride)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str = "projection"):
        super().__init__()
        self.conv1 = _conv_bn(in_channels, channels, 3, stride)
        self.conv2 = _conv_bn(channels, channels, 3)
        self.shortcut = _shortcut(in_channels, channels, stride, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str = "projection"):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = _conv_bn(in_channels, channels, 1)
        self.conv2 = _conv_bn(channels, channels, 3, stride)
        self.conv3 = _conv_bn(channels, out_channels, 1)
        self.shortcut = _shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem, stages of residual blocks (stride 2 at the start of every stage but the first), pool, linear."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        imagenet_stem: bool = False,
        shortcut: str = "projection",
    ):
        super().__init__()
        if imagenet_stem:
            self.stem = nn.Sequential(_conv_bn(3, widths[0], 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(_conv_bn(3, widths[0], 3), nn.ReLU(inplace=True))
        layers, in_channels = [], widths[0]
        for stage, (count, channels) in enumerate(zip(blocks, widths)):
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(block(in_channels, channels, stride, shortcut))
                in_channels = channels * block.expansion
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(in_channels, num_classes)
        he_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet18(num_classes: int, width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], [width, 2 * width, 4 * width, 8 * width], num_classes)


def resnet32(num_classes: int, width: int = 16) -> ResNet:
    return ResNet(BasicBlock, [5, 5, 5], [width, 2 * width, 4 * width], num_classes, shortcut="pad")


def resnet50(num_classes: int, width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], [width, 2 * width, 4 * width, 8 * width], num_classes, imagenet_stem=True)
