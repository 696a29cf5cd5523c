"""He initialisation (He, Zhang, Ren, Sun, "Delving Deep into Rectifiers", ICCV 2015), as the LETS
paper states for its convolutional networks: convolutions ``N(0, 2 / fan_out)``, BatchNorm scale 1 and
shift 0, linear layers PyTorch's default with a zero bias.
"""

from torch import nn


def he_init(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model


class PreActivationNet(nn.Module):
    """A stem, residual blocks, then BatchNorm-ReLU, global average pooling and a linear classifier: the
    shape shared by pre-activation networks (Wide ResNet, PyramidNet), He-initialised."""

    def __init__(self, stem: nn.Module, blocks: list, channels: int, num_classes: int):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        he_init(self)

    def forward(self, x):
        x = nn.functional.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
