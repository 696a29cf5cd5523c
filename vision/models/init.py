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
