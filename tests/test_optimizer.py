"""The plain-PyTorch API against autograd, against pytorch_optimizer, and across checkpoints."""

import copy

import pytest
import torch
from lets_testing import lets_step, loss_fn, tiny_batches, tiny_mlp
from torch.func import functional_call, grad

from lets_hf import ASAM, LETSOptimizer, LETSRadius
from lets_hf.perturbation import get_perturbation


def reference_hypergradient(model, rule, rho, lr, batch, val_batch, objective, weight_decay=0.0):
    """d objective / d rho through one unrolled SGD step of SAM or ASAM, by torch.func autograd."""
    names = [n for n, _ in model.named_parameters()]
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = batch
    xv, yv = val_batch

    def loss_at(params, inputs, targets):
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    g = grad(loss_at)(theta, x, y)
    grads = [g[n].clone() for n in names]
    rule.perturbation_([theta[n] for n in names], grads, torch.tensor(1.0, dtype=torch.float64))
    d = dict(zip(names, grads))  # unit direction (rho = 1), independent of rho

    def objective_of(r):
        perturbed = {n: theta[n] + r * d[n] for n in names}
        g_hat = grad(loss_at)(perturbed, x, y)
        new = {n: theta[n] - lr * (g_hat[n] + weight_decay * theta[n]) for n in names}
        l_v, l_r = loss_at(new, xv, yv), loss_at(new, x, y)
        return {"gap2": 0.5 * (l_v - l_r) ** 2, "gap": l_v - l_r, "val": l_v}[objective]

    return torch.func.grad(objective_of)(torch.tensor(rho, dtype=torch.float64))


@pytest.mark.parametrize("rule", ["sam", "asam"])
@pytest.mark.parametrize("objective", ["gap2", "gap", "val"])
@pytest.mark.parametrize("sgd", [dict(), dict(momentum=0.9, weight_decay=5e-3)])
def test_exact_hypergradient_equals_autograd_through_one_step(rule, objective, sgd):
    model = tiny_mlp()
    reference_model = copy.deepcopy(model)
    rho, lr = 0.2, 0.5
    opt = LETSOptimizer(
        model.parameters(),
        torch.optim.SGD,
        perturbation=rule,
        lr=lr,
        radius=LETSRadius(rho=rho, hvp="exact", objective=objective),
        **sgd,
    )
    batch, val_batch = tiny_batches(1), tiny_batches(2)
    h = lets_step(model, opt, batch, val_batch)
    expected = reference_hypergradient(
        reference_model, get_perturbation(rule), rho, lr, batch, val_batch, objective, sgd.get("weight_decay", 0.0)
    )
    assert abs(expected.item()) > 1e-8
    torch.testing.assert_close(h, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("adaptive", [False, True])
def test_fixed_radius_step_matches_pytorch_optimizer(adaptive):
    from pytorch_optimizer import SAM as ReferenceSAM

    model = tiny_mlp(dtype=torch.float32)
    reference = copy.deepcopy(model)
    rule = ASAM(xi=0.0, weight_filter=lambda p: True) if adaptive else "sam"
    ours = LETSOptimizer(model.parameters(), torch.optim.SGD, perturbation=rule, radius=0.5, lr=0.1, momentum=0.9)
    theirs = ReferenceSAM(reference.parameters(), torch.optim.SGD, rho=0.5, adaptive=adaptive, lr=0.1, momentum=0.9)
    for step in range(3):
        x, y = tiny_batches(10 + step, dtype=torch.float32)
        for net, opt in ((model, ours), (reference, theirs)):
            loss_fn(net(x), y).backward()
            opt.first_step(zero_grad=True)
            loss_fn(net(x), y).backward()
            opt.second_step(zero_grad=True)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rule", ["sam", "asam"])
def test_restore_is_bit_exact(rule):
    model = tiny_mlp(dtype=torch.float32)
    opt = LETSOptimizer(
        model.parameters(), torch.optim.SGD, perturbation=rule, lr=0.1, radius=LETSRadius(rho=0.37, hvp="diag")
    )
    before = [p.detach().clone() for p in model.parameters()]
    x, y = tiny_batches(1, dtype=torch.float32)
    loss_fn(model(x), y).backward()
    opt.first_step(zero_grad=True)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))
    loss_fn(model(x), y).backward()
    opt.unperturb()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def _run(model, opt, steps):
    for step in steps:
        lets_step(model, opt, tiny_batches(100 + step), tiny_batches(200 + step))


def _make(hvp="finite_difference"):
    model = tiny_mlp()
    opt = LETSOptimizer(
        model.parameters(),
        torch.optim.AdamW,
        lr=0.05,
        perturbation="asam",
        radius=LETSRadius(rho=0.1, lr=0.05, hvp=hvp, objective="gap2"),
    )
    return model, opt


def test_state_dict_round_trip_continues_exactly(tmp_path):
    model, opt = _make()
    _run(model, opt, range(6))

    model_a, opt_a = _make()
    _run(model_a, opt_a, range(3))
    torch.save({"model": model_a.state_dict(), "opt": opt_a.state_dict()}, tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    model_b, opt_b = _make()
    model_b.load_state_dict(saved["model"])
    opt_b.load_state_dict(saved["opt"])
    assert opt_b.base_optimizer.state, "the base optimizer's moments were dropped"
    _run(model_b, opt_b, range(3, 6))

    assert opt_b.rho == opt.rho != 0.1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model_b.parameters()))


def test_zero_gradient_gives_zero_perturbation_not_nan():
    model = tiny_mlp()
    opt = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.first_step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_nonfinite_loss_skips_the_hyper_step():
    model, opt = _make()
    _run(model, opt, range(2))
    before = opt.radius.state_dict()
    x, y = tiny_batches(1)
    loss_fn(model(x), y).backward()
    opt.first_step(zero_grad=True)
    loss_fn(model(x), y).backward()
    opt.second_step(zero_grad=True)
    assert opt.hyper_step_due
    h = opt.hyper_step(loss_fn(model(x), y) * float("nan"), loss_fn(model(x), y))
    assert not torch.isfinite(h)
    after = opt.radius.state_dict()
    assert all(torch.equal(torch.as_tensor(before[k]), torch.as_tensor(after[k])) for k in before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(base_optimizer="sgd"), "base_optimizer must be a torch.optim.Optimizer subclass"),
        (dict(base_optimizer=torch.nn.Linear), "base_optimizer must be a torch.optim.Optimizer subclass"),
        (dict(perturbation="adam"), "perturbation must be one of"),
        (dict(perturbation=3), "perturbation must be a name or a PerturbationRule"),
        (dict(radius=-1.0), "radius must be a finite number > 0"),
        (dict(radius="0.1"), "radius must be a number > 0 or a RadiusController"),
        (dict(radius=LETSRadius(descent="adam")), "lets_descent 'adam' needs an Adam or AdamW base optimizer, got SGD"),
        (
            dict(base_optimizer=torch.optim.Adam, weight_decay=0.1, radius=LETSRadius(descent="adam")),
            "covers decoupled weight decay only",
        ),
        (dict(base_optimizer=torch.optim.AdamW, amsgrad=True, radius=LETSRadius(descent="adam")), "amsgrad"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    args = dict(base_optimizer=torch.optim.SGD, lr=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        LETSOptimizer(tiny_mlp().parameters(), **args)


def test_the_state_dict_is_the_base_optimizers_with_lets_entry():
    """A stock AdamW loads a LETSOptimizer's state (its moments), so that a run can drop LETS and continue."""
    model, opt = _make()
    _run(model, opt, range(2))
    state = opt.state_dict()
    assert set(state) == {"state", "param_groups", "lets"}
    stock = torch.optim.AdamW(tiny_mlp().parameters(), lr=0.05)
    stock.load_state_dict(state)
    for (index, mine), theirs in zip(opt.base_optimizer.state_dict()["state"].items(), stock.state.values()):
        assert all(torch.equal(mine[key], theirs[key]) for key in ("exp_avg", "exp_avg_sq", "step")), index


def test_a_foreign_base_optimizers_state_is_refused_before_any_step():
    model, adamw = _make()
    _run(model, adamw, range(2))
    sgd = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=0.1))
    before = sgd.state_dict()
    with pytest.raises(ValueError, match="a LETSOptimizer over AdamW .* this one is over SGD"):
        sgd.load_state_dict(adamw.state_dict())
    assert sgd.state_dict() == before and sgd.steps == 0  # nothing was loaded
    with pytest.raises(ValueError, match="a stock optimizer's state dict, with no 'lets' entry"):
        sgd.load_state_dict(torch.optim.SGD(model.parameters(), lr=0.1).state_dict())
