"""How often the cheaper hypergradients agree in sign with the paper's rule, on real data.

Run: python benchmarks/hypergradient_agreement.py [--steps 300]

LETS-SAM (paper rule: gap2, same-batch training term) trains an MLP on scikit-learn's bundled
digits (real handwritten digits, no download). After every step, at theta_{t+1}, the script also
forms the hypergradient with the training term taken from the *next* batch (``train_term="next"``;
also for the ``gap`` objective, compared with its own same-batch value) and with ``b`` from the
other Hessian modes, all with the same ``a`` and gap, and counts sign agreements with the paper's
value.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lets_hf import LETSOptimizer, LETSRadius  # noqa: E402
from lets_hf.foreach import dot  # noqa: E402
from lets_hf.radius.hvp import get_hvp  # noqa: E402

loss_fn = torch.nn.functional.cross_entropy


def upper_gradient(model, val, train):
    """``a = grad(l_v - l_r)`` and the gap at the current weights."""
    (xv, yv), (x, y) = val, train
    l_v, l_r = loss_fn(model(xv), yv), loss_fn(model(x), y)
    a = torch.autograd.grad(l_v - l_r, list(model.parameters()))
    return a, (l_v - l_r).detach()


def main(steps: int, batch_size: int = 64, seed: int = 0) -> None:
    torch.manual_seed(seed)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    opt = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.05, momentum=0.9,
                        radius=LETSRadius(rho=0.05, lr=1e-3, hvp="diag"))
    batches = lambda: torch.randperm(len(x)).split(batch_size)[:-1]
    order = [idx for _ in range(steps // (len(x) // batch_size) + 2) for idx in batches()]
    val_order = [idx for _ in range(steps // (len(x) // batch_size) + 2) for idx in batches()]
    values = {"paper": [], "next": []}
    agree = {"next batch": 0, "next batch, gap objective": 0, "finite_difference b": 0, "exact b": 0}
    for t in range(steps):
        batch, nxt, val = [(x[i], y[i]) for i in (order[t], order[t + 1], val_order[t])]
        loss_fn(model(batch[0]), batch[1]).backward()
        g = [p.grad.clone() for p in model.parameters()]
        opt.first_step(zero_grad=True)
        e = [p.detach() - s for p, s in zip(model.parameters(), opt._buffers(opt._saved, list(model.parameters())))]
        rho = e and torch.sqrt(dot(e, e))
        loss_fn(model(batch[0]), batch[1]).backward()
        g_hat = [p.grad.clone() for p in model.parameters()]
        b = {"diag": [gh * gh * ei / rho for gh, ei in zip(g_hat, e)],
             "finite_difference b": [(gh - gi) / rho for gh, gi in zip(g_hat, g)]}
        params = list(model.parameters())
        exact = [ei.clone() for ei in e]
        get_hvp("exact").product_(exact, params=params, grads=g_hat, rho=rho.float(), inv_grad_scale=torch.ones(()),
                                  loss_closure=lambda: loss_fn(model(batch[0]), batch[1]))
        b["exact b"] = exact
        opt.second_step(zero_grad=True)
        a, gap = upper_gradient(model, val, batch)
        a_next, gap_next = upper_gradient(model, val, nxt)
        paper = torch.sign(gap * dot(a, b["diag"]))
        agree["next batch"] += int(torch.sign(gap_next * dot(a_next, b["diag"])) == paper)
        values["paper"].append(float(gap * dot(a, b["diag"])))
        values["next"].append(float(gap_next * dot(a_next, b["diag"])))
        agree["next batch, gap objective"] += int(torch.sign(dot(a_next, b["diag"])) == torch.sign(dot(a, b["diag"])))
        agree["finite_difference b"] += int(torch.sign(gap * dot(a, b["finite_difference b"])) == paper)
        agree["exact b"] += int(torch.sign(gap * dot(a, b["exact b"])) == paper)
        opt.hyper_step(loss_fn(model(val[0]), val[1]), loss_fn(model(batch[0]), batch[1]))
    print(f"digits MLP, LETS-SAM paper rule, {steps} steps: sign agreement with the paper's hypergradient")
    for name, count in agree.items():
        print(f"  {name:26s} {count / steps:6.1%}")
    window = 25
    sums = {k: torch.tensor(v[: len(v) // window * window]).view(-1, window).sum(1) for k, v in values.items()}
    windows = (torch.sign(sums["paper"]) == torch.sign(sums["next"])).float().mean().item()
    correlation = torch.corrcoef(torch.stack([torch.tensor(values["paper"]), torch.tensor(values["next"])]))[0, 1]
    print(f"  next batch, sums over {window} steps: {windows:6.1%} sign agreement; "
          f"per-step correlation {correlation:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    main(parser.parse_args().steps)
