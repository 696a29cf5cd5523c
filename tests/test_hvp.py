"""How ``b = H d`` is formed (lets_hf/radius/hvp.py): each mode against its formula and against the exact product."""

import torch
from lets_testing import loss_fn, tiny_batches, tiny_mlp

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.foreach import dot


def _b_after_unperturb(hvp, rho=0.2):
    model = tiny_mlp()
    opt = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=rho, hvp=hvp))
    x, y = tiny_batches(1)
    loss_fn(model(x), y).backward()
    g = [p.grad.clone() for p in model.parameters()]
    opt.first_step(zero_grad=True)
    theta_t = opt.buffers("theta_t")
    e = [p.detach() - theta_t[p] for p in model.parameters()]
    loss_fn(model(x), y).backward()
    g_hat = [p.grad.clone() for p in model.parameters()]
    closure = lambda: loss_fn(model(x), y)
    opt.unperturb(loss_closure=closure)
    b = opt.buffers("tangent")
    return [b[p].clone() for p in model.parameters()], g, g_hat, e


def test_diag_and_finite_difference_follow_their_formulas():
    rho = 0.2
    b, g, g_hat, e = _b_after_unperturb("diag", rho)
    for bi, gh, ei in zip(b, g_hat, e):
        torch.testing.assert_close(bi, gh * gh * ei / rho, rtol=1e-12, atol=0)
    b, g, g_hat, _ = _b_after_unperturb("finite_difference", rho)
    for bi, gi, gh in zip(b, g, g_hat):
        torch.testing.assert_close(bi, (gh - gi) / rho, rtol=1e-10, atol=1e-15)


def test_finite_difference_agrees_with_exact_in_sign_and_direction():
    b_fd = _b_after_unperturb("finite_difference", 0.01)[0]
    b_ex = _b_after_unperturb("exact", 0.01)[0]
    cosine = dot(b_fd, b_ex) / (dot(b_fd, b_fd).sqrt() * dot(b_ex, b_ex).sqrt())
    assert cosine.item() > 0.99
    a = [torch.randn_like(t) for t in b_fd]  # any upper gradient: the hypergradients share their sign
    assert torch.sign(dot(a, b_fd)) == torch.sign(dot(a, b_ex))
