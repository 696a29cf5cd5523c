"""How far a learned radius can move over a run, and the warning when it cannot move."""

import logging
import math

import pytest
import torch
from lets_testing import tiny_deberta, token_dataset
from trainer_helpers import lets_args

from lets_hf import LETSRadius
from lets_hf.trainer import LETSTrainer


def test_reach_is_the_travel_of_log_rho_under_a_steady_hypergradient():
    """Adam moves log rho by lr per update when its gradient h * rho keeps its sign and size: exp(lr U) in all;
    a growing one makes Adam's steps longer, by at most (1 - beta1) / sqrt(1 - beta2) = 3.16 times."""
    steady, growing = (
        LETSRadius(rho=0.05, lr=1e-2, rho_max=100),
        LETSRadius(rho=0.05, lr=1e-2, rho_max=100),
    )  # RHO_LIMIT
    for _ in range(200):
        steady.update(torch.tensor(-1.0 / steady.rho, dtype=torch.float64))
        growing.update(torch.tensor(-1.0, dtype=torch.float64))
    assert steady.rho / 0.05 == pytest.approx(steady.reach(200), rel=1e-9)
    assert steady.reach(200) == pytest.approx(math.exp(2.0))
    assert 2.0 < math.log(growing.rho / 0.05) < 2.0 * 0.1 / math.sqrt(1e-3)


def test_reach_follows_decay_and_interval():
    radius = LETSRadius(lr=0.1, lr_decay=0.9, interval=4)
    assert radius.reach(40) == pytest.approx(math.exp(0.1 * (1 - 0.9**10) / (1 - 0.9)))


def test_warning_names_the_factor_and_the_fix():
    assert LETSRadius(lr=1e-4).stuck_warning(100_000) is None  # exp(10): free to move
    message = LETSRadius(lr=1e-4).stuck_warning(500)  # exp(0.05) = 1.051
    assert "factor 1.051" in message and "rho_lr" in message and "rho_travel" in message


def test_trainer_warns_at_the_start_when_rho_cannot_move(tmp_path, caplog):
    train = token_dataset(32)
    with caplog.at_level(logging.WARNING, logger="lets_hf.trainer"):
        LETSTrainer(
            model=tiny_deberta(), args=lets_args(tmp_path, rho_lr=1e-4, max_steps=2), train_dataset=train
        ).train()
    assert any("at most a factor 1.000" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lets_hf.trainer"):
        LETSTrainer(
            model=tiny_deberta(), args=lets_args(tmp_path, rho_lr=0.5, max_steps=2), train_dataset=train
        ).train()
    assert not any("at most a factor" in record.getMessage() for record in caplog.records)


def test_an_astronomical_reach_is_infinite_not_an_overflow():
    """rho_lr x updates beyond a float's exponent (0.05 x 14300 = 715 > 709.8) is a reach of inf, not an OverflowError:
    the start-of-run check of a long run must not crash."""
    radius = LETSRadius(lr=0.05)
    assert radius.travel(14300) == pytest.approx(715.0)
    assert radius.reach(14300) == math.inf
    assert radius.stuck_warning(14300) is None
    assert radius.reach(14000) == pytest.approx(math.exp(700.0))  # just below the limit: the finite factor
