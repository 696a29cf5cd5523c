"""The networks of the paper's vision experiments, by name (``--model``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .pyramidnet import pyramidnet110
from .resnet import resnet18, resnet32, resnet50
from .vit import vit_s16
from .wide_resnet import wrn28_10

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet32": resnet32,
    "wrn28_10": wrn28_10,
    "pyramidnet110": pyramidnet110,
    "vit_s16": vit_s16,
    "resnet50": resnet50,
}
VIT_MODELS = ("vit_s16",)


def check_model_name(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"--model must be one of {list(MODELS)}, got {name!r}")
    return name


def build_model(name: str, num_classes: int, width: int | None = None, **options: Any) -> nn.Module:
    """The model ``name`` for ``num_classes`` classes; ``width`` and ``options`` override its size knobs."""
    kwargs = dict(options, **({} if width is None else {"width": width}))
    return MODELS[check_model_name(name)](num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
