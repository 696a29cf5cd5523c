"""The ``exact`` LETS hypergradient against autograd through one unrolled step, written here from each variant's
published update (every LETS-X on a step it perturbs), and through torch's own SGD step with dampening,
nesterov and maximize."""

import copy

import pytest
import torch
from lets_testing import lets_step, loss_fn, tiny_batches, tiny_mlp
from torch.func import functional_call, grad

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.perturbation import build_perturbation

RHO, LR, MOMENTUM, WEIGHT_DECAY = 0.2, 0.5, 0.9, 5e-3


def _norm(tensors):
    return torch.sqrt(sum((t * t).sum() for t in tensors))


def _dot(a, b):
    return sum((x * y).sum() for x, y in zip(a, b))


# -- each variant's ascent direction d (the perturbation at rho = 1) and descent gradient, from its paper / code --
def sam_direction(theta, g, rule):  # Foret et al.: g / ||g||
    return [x / _norm(g) for x in g]


def asam_direction(theta, g, rule):  # Kwon et al.: T^2 g / ||T g||, T = |theta| + xi on weight matrices
    t = [p.abs() + rule.xi if p.ndim > 1 else torch.ones_like(p) for p in theta]
    norm = _norm([ti * gi for ti, gi in zip(t, g)])
    return [ti * ti * gi / norm for ti, gi in zip(t, g)]


def esam_direction(theta, g, rule):  # Du et al.: rho / beta on the selected tensors S
    if rule.form == "official":  # the official code: no first gradient outside S, so the norm is over S
        g = [x if keep else torch.zeros_like(x) for x, keep in zip(g, rule.selected)]
        return [x / (rule.beta * _norm(g)) for x in g]
    return [x / (rule.beta * _norm(g)) if keep else torch.zeros_like(x) for x, keep in zip(g, rule.selected)]


def g_hat_descent(g, g_hat, rule):
    return g_hat


def gsam_descent(g, g_hat, rule):  # Zhuang et al.: g_hat - alpha * (the part of g orthogonal to g_hat)
    along = _dot(g, g_hat) / _dot(g_hat, g_hat)
    return [h - rule.alpha * (x - along * h) for x, h in zip(g, g_hat)]


def esam_descent(g, g_hat, rule):
    if rule.form == "official":  # every tensor descends with g_hat
        return g_hat
    return [h if keep else x for x, h, keep in zip(g, g_hat, rule.selected)]


VARIANTS = {  # id -> (rule name, options, direction, descent)
    "sam": ("sam", {}, sam_direction, g_hat_descent),
    "asam": ("asam", {"asam_xi": 0.01}, asam_direction, g_hat_descent),
    "gsam": ("gsam", {"gsam_alpha": 0.4}, sam_direction, gsam_descent),
    "esam": ("esam", {"esam_beta": 0.5}, esam_direction, esam_descent),
    "esam-clean_unselected": (
        "esam",
        {"esam_beta": 0.5, "esam_form": "clean_unselected"},
        esam_direction,
        esam_descent,
    ),
    "looksam": ("looksam", {"looksam_k": 2}, sam_direction, g_hat_descent),
    "looksam-tensor": ("looksam", {"looksam_k": 2, "looksam_split": "tensor"}, sam_direction, g_hat_descent),
    "ae_sam": ("ae_sam", {}, sam_direction, g_hat_descent),
    "ae_looksam": ("ae_looksam", {}, sam_direction, g_hat_descent),
    "rst": ("rst", {"rst_p": 0.5}, sam_direction, g_hat_descent),
}


def unrolled_hypergradient(model, rule, direction, descent, batch, val_batch):
    """d (1/2 (l_v - l_r)^2) / d rho through one SGD step (momentum 0.9 from an empty buffer, weight decay)."""
    names = [n for n, _ in model.named_parameters()]
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    (x, y), (xv, yv) = batch, val_batch

    def loss_at(params, inputs, targets):
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    g = [grad(loss_at)(theta, x, y)[n] for n in names]
    d = direction([theta[n] for n in names], g, rule)

    def objective(r):
        g_hat = grad(loss_at)({n: theta[n] + r * dn for n, dn in zip(names, d)}, x, y)
        u = descent(g, [g_hat[n] for n in names], rule)
        new = {n: theta[n] - LR * (un + WEIGHT_DECAY * theta[n]) for n, un in zip(names, u)}
        return 0.5 * (loss_at(new, xv, yv) - loss_at(new, x, y)) ** 2

    return grad(objective)(torch.tensor(RHO, dtype=torch.float64))


def _perturbing_step(name, options, batch, val_batch):
    """A LETS step of the variant (exact b) at the first seed whose step 0 perturbs (ESAM: a proper subset)."""
    for seed in range(50):
        model = tiny_mlp()
        reference = copy.deepcopy(model)
        rule = build_perturbation(name, options, seed=seed, total_steps=10)
        opt = LETSOptimizer(
            model.parameters(),
            torch.optim.SGD,
            perturbation=rule,
            lr=LR,
            momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY,
            radius=LETSRadius(rho=RHO, hvp="exact", objective="gap2"),
        )
        h = lets_step(model, opt, batch, val_batch)
        proper = name != "esam" or 0 < sum(rule.selected) < len(rule.selected)
        if h is not None and proper:
            return h, reference, rule
    raise AssertionError(f"no seed in 0..49 gives {name} a perturbed first step")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lets_variant_hypergradient_equals_autograd_through_its_unrolled_step(variant):
    name, options, direction, descent = VARIANTS[variant]
    batch, val_batch = tiny_batches(1), tiny_batches(2)
    h, reference, rule = _perturbing_step(name, options, batch, val_batch)
    expected = unrolled_hypergradient(reference, rule, direction, descent, batch, val_batch)
    assert abs(expected.item()) > 1e-8
    torch.testing.assert_close(h, expected, rtol=1e-6, atol=0)


# -- torch.optim.SGD: dampening, nesterov and maximize ----------------------------------------------------------
def through_torch_sgd(model, buffers, rho, sgd, batch, val_batch):
    """d (1/2 (l_v - l_r)^2) / d rho by autograd through torch.optim.SGD's own step (``differentiable=True``),
    SAM's perturbation written here, with the momentum buffers ``buffers`` from earlier steps."""
    names = [n for n, _ in model.named_parameters()]
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    (x, y), (xv, yv) = batch, val_batch

    def loss_at(params, inputs, targets):
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    g = grad(loss_at)(theta, x, y)
    norm = _norm(list(g.values()))
    r = torch.tensor(rho, dtype=torch.float64, requires_grad=True)
    perturbed = [theta[n] + r * g[n] / norm for n in names]
    g_hat = torch.autograd.grad(loss_at(dict(zip(names, perturbed)), x, y), perturbed, create_graph=True)
    params = [theta[n].clone() for n in names]
    step = torch.optim.SGD(params, differentiable=True, **sgd)
    for p, gh, buffer in zip(params, g_hat, buffers):
        p.grad = gh
        step.state[p]["momentum_buffer"] = buffer.clone()
    step.step()
    new = dict(zip(names, params))
    objective = 0.5 * (loss_at(new, xv, yv) - loss_at(new, x, y)) ** 2
    return torch.autograd.grad(objective, r)[0]


SGD_FORMS = {
    "plain": dict(dampening=0.0),
    "dampening": dict(dampening=0.5),
    "nesterov": dict(nesterov=True),
    "maximize": dict(dampening=0.5, maximize=True),
}


@pytest.mark.parametrize("sgd", list(SGD_FORMS.values()), ids=list(SGD_FORMS))
def test_sgd_descent_hypergradient_equals_autograd_through_torch_sgd(sgd):
    """After two steps (the buffers exist, so that dampening applies), LETS-SAM's exact hypergradient under
    ``descent="sgd"`` is the derivative through torch's own SGD step."""
    sgd = dict(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, **sgd)
    model = tiny_mlp()
    opt = LETSOptimizer(
        model.parameters(), torch.optim.SGD, radius=LETSRadius(rho=RHO, lr=1e-12, hvp="exact", objective="gap2"), **sgd
    )
    for seed in (3, 4):
        lets_step(model, opt, tiny_batches(seed), tiny_batches(seed + 10))
    before, rho = copy.deepcopy(model), opt.rho
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    h = lets_step(model, opt, tiny_batches(1), tiny_batches(2))
    expected = through_torch_sgd(before, buffers, rho, sgd, tiny_batches(1), tiny_batches(2))
    assert abs(expected.item()) > 1e-8
    torch.testing.assert_close(h, expected, rtol=1e-6, atol=0)


def objective_after_real_sgd_step(model, sgd, rho, batch, val_batch):
    """1/2 (l_v - l_r)^2 after one SAM step at radius ``rho`` with a fresh torch.optim.SGD (on copies)."""
    model = copy.deepcopy(model)
    step = torch.optim.SGD(model.parameters(), **sgd)
    (x, y), (xv, yv) = batch, val_batch
    grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
    e = [rho * g / _norm(grads) for g in grads]
    with torch.no_grad():
        torch._foreach_add_(list(model.parameters()), e)
    loss_fn(model(x), y).backward()
    with torch.no_grad():
        torch._foreach_sub_(list(model.parameters()), e)
        step.step()
        return 0.5 * (loss_fn(model(xv), yv) - loss_fn(model(x), y)) ** 2


def test_nesterov_first_step_counts_the_new_buffer():
    """At the buffer's first step torch's nesterov update is ``(1 + mu) d``; torch's differentiable mode detaches
    that new buffer, so the reference here is a central difference through the real step."""
    sgd = dict(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    batch, val_batch = tiny_batches(1), tiny_batches(2)
    model = tiny_mlp()
    reference = copy.deepcopy(model)
    opt = LETSOptimizer(
        model.parameters(), torch.optim.SGD, radius=LETSRadius(rho=RHO, hvp="exact", objective="gap2"), **sgd
    )
    h = lets_step(model, opt, batch, val_batch)
    delta = 1e-5
    up, down = (objective_after_real_sgd_step(reference, sgd, RHO * (1 + s * delta), batch, val_batch) for s in (1, -1))
    expected = (up - down) / (2 * delta * RHO)
    assert abs(expected.item()) > 1e-8
    torch.testing.assert_close(h, expected, rtol=1e-6, atol=0)
