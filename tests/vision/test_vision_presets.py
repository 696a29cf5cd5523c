"""The paper's Table 10 presets, flag-by-flag overrides, and the defaults that are ours."""

import math

import pytest
import torch

from vision import train
from vision.config import parse_config


@pytest.mark.parametrize(
    "preset, expected",
    [
        (
            "resnet18",
            {
                "model": "resnet18",
                "optimizer": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 5e-4,
                "batch_size": 128,
                "epochs": 200,
                "schedule": "cosine",
            },
        ),
        ("wrn28_10", {"model": "wrn28_10", "epochs": 200, "batch_size": 128}),
        ("pyramidnet110", {"model": "pyramidnet110", "epochs": 300}),
        ("resnet32", {"model": "resnet32", "epochs": 200}),
        (
            "vit_s16",
            {
                "model": "vit_s16",
                "optimizer": "adam",
                "lr": 1e-4,
                "batch_size": 256,
                "epochs": 1200,
                "image_size": 224,
                "patch_size": 16,
            },
        ),
        (
            "resnet50",
            {"model": "resnet50", "dataset": "imagenet", "weight_decay": 1e-4, "batch_size": 512, "epochs": 90},
        ),
    ],
)
def test_presets_follow_table_10(preset, expected):
    config = parse_config(["--preset", preset])
    assert {k: getattr(config, k) for k in expected} == expected
    _, radius = config.build_method(total_steps=100)
    assert (radius.lr, config.asam_xi, radius.hvp.name, radius.objective.name) == (1e-4, 0.01, "diag", "gap2")


def test_flags_override_the_preset_one_by_one():
    config = parse_config(["--preset", "wrn28_10", "--epochs", "3", "--lr", "0.05", "--dataset", "cifar100"])
    assert (config.model, config.epochs, config.lr, config.dataset, config.batch_size) == (
        "wrn28_10",
        3,
        0.05,
        "cifar100",
        128,
    )


def test_initial_radius_and_rho_schedule_defaults():
    assert parse_config(["--method", "lets_sam"]).rho == 0.05
    assert parse_config(["--method", "lets_asam"]).rho == 0.5
    assert parse_config(["--method", "asam", "--rho", "1.0"]).rho == 1.0
    config = parse_config(["--method", "lets_sam", "--model", "resnet18", "--width", "2"])
    optimizer = train.build_optimizer(config, train.build_model("resnet18", 10, width=2), total_steps=1000)
    assert optimizer.radius.lr_decay == pytest.approx(0.1 ** (1 / 999))
    assert math.isclose(optimizer.radius.lr_decay**999, 0.1, rel_tol=1e-9)  # the rate of the 1000th update


def test_robust_preset_and_variants_from_the_command_line():
    config = parse_config(["--method", "lets_looksam", "--lets_preset", "robust", "--looksam_k", "3"])
    optimizer = train.build_optimizer(config, train.build_model("resnet18", 10, width=2), total_steps=600)
    assert optimizer.rule.name == "looksam" and optimizer.rule.k == 3
    assert optimizer.radius.objective.name == "val" and optimizer.radius.lr == pytest.approx(24 / 600)
    explicit = parse_config(["--method", "lets_sam", "--rho_lr_decay", "0.999", "--lets_objective", "val"])
    optimizer = train.build_optimizer(explicit, train.build_model("resnet18", 10, width=2), total_steps=1000)
    assert optimizer.radius.lr_decay == 0.999 and optimizer.radius.objective.name == "val"
    assert (
        train.build_optimizer(
            parse_config(["--method", "erm"]), train.build_model("resnet18", 10, width=2), total_steps=10
        ).__class__.__name__
        == "SGD"
    )


def test_adam_descent_from_the_command_line():
    model = train.build_model("resnet18", 10, width=2)
    assert train.build_optimizer(parse_config(["--method", "lets_sam"]), model, 10).radius.descent.name == "sgd"
    config = parse_config(["--method", "lets_sam", "--optimizer", "adamw", "--lets_descent", "adam"])
    optimizer = train.build_optimizer(config, model, total_steps=10)
    assert optimizer.radius.descent.name == "adam" and isinstance(optimizer.base_optimizer, torch.optim.AdamW)
