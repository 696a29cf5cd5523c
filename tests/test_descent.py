"""The descent step the hypergradient differentiates (lets_hf/radius/descent.py), against the real AdamW step."""

import copy

import pytest
import torch
from lets_testing import lets_step, loss_fn, tiny_batches, tiny_mlp

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.foreach import dot


def adamw_sam_objective(model, optimizer_state, rho, batch, val_batch, objective):
    """The upper objective at theta_{t+1} after one plain SAM + AdamW step at radius ``rho`` (copies only)."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    optimizer.load_state_dict(copy.deepcopy(optimizer_state))
    x, y = batch
    grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    norm = dot(grads, grads).sqrt()
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p.add_(rho * g / norm)
    loss_fn(model(x), y).backward()
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p.sub_(rho * g / norm)
    optimizer.step()
    with torch.no_grad():
        l_v, l_r = loss_fn(model(val_batch[0]), val_batch[1]), loss_fn(model(x), y)
    return {"gap2": 0.5 * (l_v - l_r) ** 2, "val": l_v}[objective]


@pytest.mark.parametrize("objective", ["gap2", "val"])
def test_adam_descent_hypergradient_equals_a_finite_difference_through_adamw(objective):
    """With ``descent="adam"`` (and the exact ``b``) the hypergradient is d objective / d rho through the
    real AdamW step, after warm-up steps that give Adam's moments a history; the paper's SGD form is not."""
    rho, delta = 0.2, 1e-5
    results = {}
    for descent in ("adam", "sgd"):
        model = tiny_mlp()
        opt = LETSOptimizer(
            model.parameters(),
            torch.optim.AdamW,
            lr=0.01,
            weight_decay=0.1,
            radius=LETSRadius(rho=rho, lr=1e-12, hvp="exact", objective=objective, descent=descent),
        )
        for seed in (3, 4, 5):
            lets_step(model, opt, tiny_batches(seed), tiny_batches(seed + 10))
        before, state = copy.deepcopy(model), copy.deepcopy(opt.base_optimizer.state_dict())
        results[descent] = lets_step(model, opt, tiny_batches(1), tiny_batches(2))
    up, down = (
        adamw_sam_objective(before, state, rho * (1 + s * delta), tiny_batches(1), tiny_batches(2), objective)
        for s in (1, -1)
    )
    expected = (up - down) / (2 * delta * rho)
    assert abs(expected.item()) > 1e-6
    torch.testing.assert_close(results["adam"], expected, rtol=1e-5, atol=0)
    assert abs(results["sgd"] / expected - 1) > 0.1
