"""Command-line options of ``vision/train.py``: a preset (:mod:`vision.presets`) overridden flag by flag.

Every option defaults to ``None`` on the parser, so that "not given" is distinguishable from a value:
the run's configuration is :data:`~vision.presets.DEFAULTS`, then the ``--preset``, then the flags.
Bad values (an unknown model, method or dataset, a noise rate outside [0, 1), fp16) stop the
script with a message naming the option, before any data is read. The library's own checks run on
what a configuration builds (its rule and radius, :meth:`VisionSettings.build_method`, and its base
optimizer, :data:`BASE_OPTIMIZERS` with :func:`base_optimizer_arguments`), so those builders live
here and ``vision/train.py`` imports them (never the other way round).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from experiment_utils.label_noise import check_noise_rate
from lets_hf.checks import SuggestingParser
from lets_hf.methods import (
    SAM_FAMILY,
    build_method,
    ignored_options_message,
    method_options,
    option_readers,
    options_read,
    parse_sam_family,
)
from lets_hf.perturbation import PerturbationRule
from lets_hf.radius import RadiusController

from .data import DATASETS
from .models import MODELS, VIT_MODELS
from .presets import PRESETS, default_rho, preset_config

# method -> (perturbation rule, learned radius); ERM uses the base optimizer alone.
METHODS = {"erm": (None, False), **{name: parse_sam_family(name) for name in SAM_FAMILY}}
BASE_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
OPTIMIZERS = tuple(BASE_OPTIMIZERS)
# What vision's defaults of the library's options add to their help (the defaults themselves: vision/presets.py).
VISION_NOTES = {
    "rho": "Vision's default: 0.05 for SAM methods, 0.5 for ASAM ones.",
    "lets_preset": "Vision's default: paper_vision.",
}


class ConfigError(ValueError):
    """Options that contradict each other or the launch (found after parsing)."""


@dataclasses.dataclass
class VisionSettings:
    """The settings of vision's own (data, model, schedule, run); :class:`TrainConfig` adds the library's."""

    preset: str
    method: str
    model: str
    dataset: str
    data_dir: str
    output_dir: str
    download: bool
    label_noise: float
    seed: int
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    warmup_epochs: int
    width: int | None
    image_size: int
    patch_size: int
    vit_depth: int
    vit_heads: int
    mixed_precision: str
    num_workers: int
    train_eval_size: int
    save_every: int
    keep_checkpoints: int
    resume: bool
    max_steps_per_epoch: int | None

    @property
    def perturbation(self) -> str | None:
        return METHODS[self.method][0]

    @property
    def learns_radius(self) -> bool:
        return METHODS[self.method][1]

    def build_method(self, total_steps: int) -> tuple[PerturbationRule, RadiusController]:
        """The SAM-family method's rule and radius controller (:func:`lets_hf.methods.build_method`)."""
        return build_method(
            self.method,
            vars(self),
            seed=self.seed,
            total_steps=total_steps,
            learning_rate=self.lr,
            base_optimizer=BASE_OPTIMIZERS[self.optimizer],
        )

    def model_options(self) -> dict[str, Any]:
        """Size knobs for :func:`vision.models.build_model`."""
        if self.model in VIT_MODELS:
            return {
                "width": self.width or 384,
                "depth": self.vit_depth,
                "heads": self.vit_heads,
                "patch_size": self.patch_size,
                "image_size": self.image_size,
            }
        return {} if self.width is None else {"width": self.width}


# One run's settings: vision's own, and one field per option of the library's rules and controllers.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(o.name, o.type) for o in method_options().values()], bases=(VisionSettings,)
)
TrainConfig.__doc__ = "One run's settings; see ``python vision/train.py --help`` for each field."
TrainConfig.__module__ = __name__  # so that pickle finds it


def base_optimizer_arguments(config: TrainConfig) -> dict[str, Any]:
    """The keyword arguments of ``--optimizer``'s torch class (:data:`BASE_OPTIMIZERS`)."""
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        kwargs["momentum"] = config.momentum
    return kwargs


def _noise_rate(text: str) -> float:
    try:
        return check_noise_rate(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).replace("--label_noise ", "")) from None


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = SuggestingParser(  # a mistyped --method gets "did you mean 'lets_sam'?"
        description="Train an image classifier with ERM, SAM, ASAM, LETS-SAM or LETS-ASAM "
        "(Wang et al., ECCV 2024). Launch with `accelerate launch` for GPUs."
    )
    add = p.add_argument
    add("--preset", choices=list(PRESETS), default="resnet18", help="the paper's Table 10 setup for this network")
    add(
        "--method",
        choices=list(METHODS),
        help="erm, a SAM variant (sam, asam, gsam, esam, rst, looksam, ae_sam, ae_looksam) or lets_<variant> "
        "(default lets_sam)",
    )
    add("--model", choices=list(MODELS))
    add(
        "--dataset",
        choices=list(DATASETS),
        help="synthetic: CIFAR-10-shaped images generated in memory (vision/synthetic.py), for a smoke run without "
        "data or network",
    )
    add("--data_dir", help="folder holding cifar-10-batches-py/, cifar-100-python/ or ImageNet's train/ and val/")
    add("--output_dir", help="where logs, checkpoints and results go")
    add("--download", type=_flag, nargs="?", const=True, help="fetch CIFAR into --data_dir first (needs internet)")
    add("--label_noise", type=_noise_rate, help="fraction of training labels flipped symmetrically, in [0, 1)")
    add("--seed", type=int)
    add("--epochs", type=int)
    add("--batch_size", type=int, help="total over all processes")
    add("--optimizer", choices=OPTIMIZERS)
    add("--lr", type=float)
    add("--momentum", type=float)
    add("--weight_decay", type=float)
    add("--schedule", choices=("cosine", "constant"))
    add("--warmup_epochs", type=int, help="linear warm-up before the schedule")
    add(
        "--width", type=int, help="ResNet: first-stage channels; WRN: widen factor; PyramidNet: alpha; ViT: hidden size"
    )
    add("--image_size", type=int, help="input resolution (CIFAR is resized on the device when it differs from 32)")
    add("--patch_size", type=int, help="ViT patch size")
    add("--vit_depth", type=int, help="ViT layers")
    add("--vit_heads", type=int, help="ViT attention heads")
    for option in method_options().values():  # the radius's and the variants' options, as the library declares them
        add(
            f"--{option.name}",
            type=option.type,
            choices=option.choices,
            help=" ".join(filter(None, (option.described(), VISION_NOTES.get(option.name)))),
        )
    add("--mixed_precision", choices=("no", "bf16", "fp16"))
    add("--num_workers", type=int, help="data-loader worker processes")
    add("--train_eval_size", type=int, help="training examples evaluated each epoch for the gap L(test) - L(train)")
    add("--save_every", type=int, help="checkpoint every this many epochs (and at the end)")
    add("--keep_checkpoints", type=int, help="how many checkpoints to keep")
    add("--resume", type=_flag, nargs="?", const=True, help="continue from the last checkpoint in --output_dir")
    add("--max_steps_per_epoch", type=int, help="cut every epoch short (smoke tests)")
    return p


def _check(config: TrainConfig, parser: argparse.ArgumentParser) -> None:
    positive = [
        "epochs",
        "batch_size",
        "lr",
        "rho",
        "image_size",
        "patch_size",
        "train_eval_size",
        "save_every",
        "keep_checkpoints",
        "width",
        "max_steps_per_epoch",
    ]  # the last two may be unset
    for name in positive:
        value = getattr(config, name)
        if value is not None and not value > 0:
            parser.error(f"argument --{name}: must be > 0, got {value!r}")
    if config.mixed_precision == "fp16":
        parser.error(
            "argument --mixed_precision: fp16 is not supported (its loss scale would have to be undone "
            "before the perturbation and the hypergradient); use bf16 or no"
        )
    if config.perturbation is not None:  # the library's own checks, with its messages
        try:
            _, radius = config.build_method(total_steps=1000)
        except ValueError as error:
            parser.error(str(error))
        if config.learns_radius:
            probe = BASE_OPTIMIZERS[config.optimizer](
                [torch.zeros(1, requires_grad=True)], **base_optimizer_arguments(config)
            )
            try:
                radius.descent.check(probe)
            except ValueError as error:
                parser.error(f"argument --lets_descent: {error}")


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """The run's configuration from ``argv`` (``sys.argv[1:]`` when None); exits with a message on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    values = {**preset_config(args.preset), **given}
    if values["rho"] is None:
        values["rho"] = default_rho(values["method"])
    config = TrainConfig(**values)
    _check(config, parser)
    _warn_on_ignored_options(config.method, given)
    return config


def _warn_on_ignored_options(method: str, given: dict[str, Any]) -> None:
    """A warning naming each option given on the command line that ``--method`` does not read (``--method sam
    --rho_lr 1e-2``: rho is fixed), with the methods that read it."""
    read = options_read(method, given.get("rho_schedule"))
    ignored = {name: option_readers(name) for name in method_options() if name in given and name not in read}
    if ignored:
        warnings.warn(ignored_options_message(method, ignored, given, flag="--method"), UserWarning, stacklevel=3)
