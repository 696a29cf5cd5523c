"""The paper's training setups (Wang et al., ECCV 2024, Table 10), one preset per network.

All presets: SGD with momentum 0.9 and a cosine learning-rate schedule starting at 0.1 (ViT: Adam
at 1e-4), and for LETS Adam on ``log rho`` at 1e-4 with an exponential schedule, ASAM's
``xi = 0.01``. Per network, the batch size, epochs and weight decay of Table 10. Values the paper
does not state are marked ``# ours`` (the initial radius: SAM's 0.05 and ASAM's 0.5, their papers'
CIFAR values); the rule of the learned radius is the ``paper_vision`` preset of
``lets_hf/radius/presets.py`` (with ours, the rate of rho's exponential schedule).

``--preset NAME`` fills these in; every flag given on the command line overrides its preset value.
"""

from __future__ import annotations

from typing import Any

from lets_hf.methods import method_options

_CIFAR_SGD = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "dataset": "cifar10",
    "schedule": "cosine",
}

PRESETS: dict[str, dict[str, Any]] = {
    "resnet18": {**_CIFAR_SGD, "model": "resnet18", "epochs": 200},
    "resnet32": {**_CIFAR_SGD, "model": "resnet32", "epochs": 200},
    "wrn28_10": {**_CIFAR_SGD, "model": "wrn28_10", "epochs": 200},
    "pyramidnet110": {**_CIFAR_SGD, "model": "pyramidnet110", "epochs": 300},
    "vit_s16": {
        **_CIFAR_SGD,
        "model": "vit_s16",
        "epochs": 1200,
        "optimizer": "adam",
        "lr": 1e-4,
        "batch_size": 256,
        "image_size": 224,
    },
    "resnet50": {
        **_CIFAR_SGD,
        "model": "resnet50",
        "dataset": "imagenet",
        "epochs": 90,
        "weight_decay": 1e-4,
        "batch_size": 512,
        "image_size": 224,
        "num_workers": 8,
    },
}

# What every run starts from before its preset and its flags (the preset-independent choices).
DEFAULTS: dict[str, Any] = {
    **PRESETS["resnet18"],
    "method": "lets_sam",
    "data_dir": "data",
    "output_dir": "runs/vision",
    "download": False,
    "label_noise": 0.0,
    "seed": 0,
    "width": None,
    "image_size": 32,
    "patch_size": 16,
    "vit_depth": 12,
    "vit_heads": 6,
    "warmup_epochs": 0,
    **{name: option.default for name, option in method_options().items()},  # the library's (each paper's) defaults
    "rho": None,  # ours: 0.05 for SAM-based methods, 0.5 for ASAM-based ones
    "lets_preset": "paper_vision",  # the paper's rule, rho's rate decayed exponentially (lets_hf/radius/presets.py)
    "mixed_precision": "no",
    "num_workers": 0,
    "train_eval_size": 10000,
    "save_every": 1,
    "keep_checkpoints": 2,
    "resume": False,
    "max_steps_per_epoch": None,
}


def default_rho(method: str) -> float:
    """The initial radius when ``--rho`` is not given (ours: the SAM and ASAM papers' CIFAR values)."""
    return 0.5 if method.endswith("asam") else 0.05


def preset_config(name: str) -> dict[str, Any]:
    """:data:`DEFAULTS` overridden by the preset ``name``."""
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {list(PRESETS)}, got {name!r}")
    return {**DEFAULTS, **PRESETS[name]}
