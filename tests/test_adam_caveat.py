"""A learned radius over an Adam-family base optimizer carries the measured caveat of issue 28, once per run."""

import pytest
import torch
from lets_testing import tiny_deberta, token_dataset
from trainer_helpers import lets_args

import lets_hf.trainer
from lets_hf.radius.adam_caveat import adam_family_caveat
from lets_hf.trainer import LETSTrainer


def _params():
    return [torch.nn.Parameter(torch.zeros(2))]


@pytest.mark.parametrize("base", [torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam])
def test_the_caveat_names_the_optimizer_and_the_measured_alternative(base):
    message = adam_family_caveat(base(_params()), "asam")
    assert base.__name__ in message and "--optim asam --rho" in message and "LETS-ASAM" in message
    assert "docs/faq.md" in message and "LETS-ASAM" not in adam_family_caveat(base(_params()), "sam")


def test_no_caveat_under_sgd():
    assert adam_family_caveat(torch.optim.SGD(_params(), lr=0.1), "sam") is None


@pytest.mark.parametrize(
    "optim, base, warned",
    [("lets_sam", "adamw_torch", True), ("lets_sam", "sgd", False), ("sam", "adamw_torch", False)],
)
def test_the_trainer_logs_it_once_for_a_learned_radius_over_adamw(tmp_path, monkeypatch, optim, base, warned):
    told = []
    monkeypatch.setattr(lets_hf.trainer.logger, "warning_once", told.append)
    args = lets_args(tmp_path, optim=optim, lets_base_optim=base, max_steps=2)
    trainer = LETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(16))
    trainer.train()
    assert len(told) == int(warned)
    if warned:
        assert told[0].startswith("a learned radius over AdamW has not been measured")
