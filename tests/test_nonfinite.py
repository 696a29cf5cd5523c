"""A non-finite ascent gradient: no perturbation, rho untouched, the step a stock step on that batch, counted."""

import copy

import pytest
import torch
from lets_testing import tiny_batches, tiny_deberta, tiny_mlp, token_dataset
from trainer_helpers import SequentialLETSTrainer, lets_args, poison_first_gradient

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.trainer import LETSTrainer

loss_fn = torch.nn.functional.cross_entropy


def _lets(model, **radius):
    return LETSOptimizer(
        model.parameters(),
        torch.optim.SGD,
        lr=0.1,
        momentum=0.9,
        radius=LETSRadius(rho=0.1, lr=0.05, hvp="finite_difference", **radius),
    )


def _step(model, opt, x, y):
    """One plain-API LETS step, the second pass skipped where the optimizer did not perturb."""
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.first_step(zero_grad=True, train_loss=loss.detach())
    if opt.is_perturbed:
        loss_fn(model(x), y).backward()
    opt.second_step(zero_grad=True)
    if opt.hyper_step_due:
        opt.hyper_step(loss_fn(model(x), y), loss_fn(model(x), y))


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize(
    "train_term, dtype", [("same", torch.float32), ("next", torch.float32), ("same", torch.bfloat16)]
)
def test_plain_api_skips_the_ascent_and_takes_the_stock_step(poison, train_term, dtype):
    x, y = tiny_batches(1)
    x = x.to(dtype)
    model = tiny_mlp(dtype=dtype)
    opt = _lets(model, train_term=train_term)
    for _ in range(2):  # a few healthy steps first: rho and its Adam state have moved
        _step(model, opt, x, y)
    assert opt.skipped_ascents == 0 and opt.radius.updates >= 1
    stock_model = copy.deepcopy(model)
    stock = torch.optim.SGD(stock_model.parameters(), lr=0.1, momentum=0.9)
    stock.load_state_dict(copy.deepcopy(opt.base_optimizer.state_dict()))
    radius_before = opt.radius.state_dict()
    weights_before = [p.detach().clone() for p in model.parameters()]

    loss_fn(model(x), y).backward()
    next(model.parameters()).grad[0, 0] = poison
    g = [p.grad.clone() for p in model.parameters()]
    opt.first_step(zero_grad=True, train_loss=loss_fn(model(x), y).detach())
    assert not opt.is_perturbed and not opt.hyper_step_due and opt.skipped_ascents == 1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), weights_before))
    for p, q in zip(model.parameters(), g):  # .grad keeps g for the stock step
        torch.testing.assert_close(p.grad, q, rtol=0, atol=0, equal_nan=True)
    opt.second_step(zero_grad=True)

    for p, gp in zip(stock_model.parameters(), g):
        p.grad = gp
    stock.step()
    for p, q in zip(model.parameters(), stock_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, equal_nan=True)
    after = opt.radius.state_dict()
    assert all(torch.equal(radius_before[k], after[k]) for k in radius_before), "rho or its Adam state moved"
    assert opt.state_dict()["lets"]["skipped_ascents"] == 1


def test_a_healthy_step_after_a_skipped_one_is_sam_again():
    x, y = tiny_batches(1)
    model = tiny_mlp(dtype=torch.float32)
    opt = _lets(model)
    loss_fn(model(x.float()), y).backward()
    next(model.parameters()).grad[0, 0] = float("nan")
    opt.first_step(zero_grad=True)
    assert not opt.is_perturbed
    opt.zero_grad()  # this caller drops the poisoned batch's gradient: a step without gradients moves nothing
    opt.second_step()
    loss_fn(model(x.float()), y).backward()
    opt.first_step(zero_grad=True)
    assert opt.is_perturbed
    loss_fn(model(x.float()), y).backward()
    opt.second_step(zero_grad=True)
    assert opt.hyper_step_due
    opt.hyper_step(loss_fn(model(x.float()), y), loss_fn(model(x.float()), y))
    assert (opt.skipped_ascents, opt.steps, opt.radius.updates) == (1, 2, 1)
    assert opt.rho == 0.1 and all(torch.isfinite(p).all() for p in model.parameters())  # one batch: a zero gap


@pytest.mark.parametrize("precision", [{}, {"bf16": True}])
def test_trainer_step_with_a_nonfinite_ascent_gradient_is_the_stock_step(tmp_path, precision):
    data = token_dataset(16)
    common = dict(max_steps=1, **precision)  # the stock step spreads the NaN (its grad norm); LETS must match it
    lets = SequentialLETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path / "l", **common), train_dataset=data)
    lets_calls = poison_first_gradient(lets.model.classifier.bias)
    lets.train()
    stock = SequentialLETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path / "s", optim="sgd", **common), train_dataset=data
    )
    stock_calls = poison_first_gradient(stock.model.classifier.bias)
    stock.train()

    assert len(lets_calls) == len(stock_calls) == 1  # no descent pass, no hyper pass
    for (name, p), q in zip(lets.model.named_parameters(), stock.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, equal_nan=True, msg=name)
    assert lets.lets_optimizer.radius.updates == 0 and lets.lets_optimizer.rho == pytest.approx(0.1, rel=1e-12)
    logged = [row for row in lets.state.log_history if "lets_skipped_ascents" in row]
    assert logged and logged[-1]["lets_skipped_ascents"] == 1


def test_trainer_logs_no_skipped_ascents_on_healthy_steps(tmp_path):
    trainer = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path, max_steps=2), train_dataset=token_dataset(16))
    trainer.train()
    assert [row["lets_skipped_ascents"] for row in trainer.state.log_history if "loss" in row] == [0, 0]
    assert trainer.lets_optimizer.radius.updates == 2
