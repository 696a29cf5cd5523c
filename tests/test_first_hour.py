"""What a new user sees in the first hour: the radius exactly as given, the first-run commands' settings."""

import math

import pytest
import torch
from lets_testing import tiny_deberta, token_dataset
from trainer_helpers import lets_args

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.trainer import LETSTrainer


@pytest.mark.parametrize("rho", [0.05, 0.1, 0.01])
def test_the_radius_is_the_rho_given_until_it_moves(rho):
    assert math.exp(math.log(rho)) != rho  # the round trip that printed 0.05000000000000001
    radius = LETSRadius(rho=rho, lr=0.1, hvp="finite_difference")
    model = torch.nn.Linear(3, 1)
    optimizer = LETSOptimizer(model.parameters(), torch.optim.SGD, radius=radius, lr=0.1)
    assert radius.rho == optimizer.rho == rho and repr(radius.rho) == repr(rho)
    x, y, xv = torch.randn(8, 3), torch.randn(8, 1), torch.randn(8, 3)
    optimizer.step(lambda: ((model(x) - y) ** 2).mean(), lambda: ((model(xv) - 2 * y) ** 2).mean())
    assert radius.updates == 1 and radius.rho == math.exp(float(radius.state_dict()["log_rho"])) != rho


def test_the_trainer_reports_the_starting_radius_as_given(tmp_path):
    trainer = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path, max_steps=1, rho=0.05), train_dataset=token_dataset(16)
    )
    trainer.train()
    assert repr(trainer.rho_start) == "0.05" and trainer.state.log_history[0]["rho_start"] == 0.05
