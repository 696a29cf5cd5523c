"""How often the cheaper hypergradients agree in sign with the paper's rule and with the exact one, on real data.

Run: python benchmarks/hypergradient_agreement.py [--steps 300]                     # MLP on digits
     python benchmarks/hypergradient_agreement.py --workload minilm-mrpc --steps 30  # MiniLM on real MRPC

LETS-SAM (paper rule: gap2, ``diag``, same-batch training term) trains the workload. After every
step, at theta_{t+1}, the script also forms the hypergradient with the training term taken from
the *next* batch (``train_term="next"``; also for the ``gap`` objective, compared with its own
same-batch value) and with ``b`` from the other Hessian modes, all with the same ``a`` and gap, and
counts sign agreements with the paper's value and with the exact product's (``b`` by double
backward), for the paper's objective and for the validation-loss objective of the robust preset.
It also gives the median size of the ``diag`` hypergradient relative to the exact one.

Workloads: ``digits``, a tanh MLP on scikit-learn's bundled handwritten digits (SGD, momentum 0.9);
``minilm-mrpc``, the pretrained MiniLM of the evidence protocol on real MRPC (``minilm_mrpc.py``;
AdamW, lr 1e-4, batch 32), in eval mode so that the double backward sees the same function as
the gradients.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import NamedTuple

import torch

from benchmarks.minilm_mrpc import minilm_mrpc
from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.foreach import dot
from lets_hf.radius.hvp import get_hvp


class Workload(NamedTuple):
    model: torch.nn.Module
    optimizer: LETSOptimizer
    loss: Callable[[object], torch.Tensor]  # a batch's mean loss at the model's current weights
    train: list[object]  # batches in training order (one more than the steps, for the next-batch term)
    val: list[object]  # the validation batch of each step, from the training set


def digits_workload(steps: int, seed: int, batch_size: int = 64) -> Workload:
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    opt = LETSOptimizer(
        model.parameters(), torch.optim.SGD, lr=0.05, momentum=0.9, radius=LETSRadius(rho=0.05, lr=1e-3, hvp="diag")
    )
    epochs = steps // (len(x) // batch_size) + 2
    order, val_order = (
        [idx for _ in range(epochs) for idx in torch.randperm(len(x)).split(batch_size)[:-1]] for _ in range(2)
    )
    loss = lambda batch: torch.nn.functional.cross_entropy(model(batch[0]), batch[1])  # noqa: E731
    return Workload(model, opt, loss, [(x[i], y[i]) for i in order], [(x[i], y[i]) for i in val_order])


def minilm_mrpc_workload(steps: int, seed: int) -> Workload:
    data = minilm_mrpc(steps + 1, seed)
    opt = LETSOptimizer(
        data.model.parameters(),
        torch.optim.AdamW,
        lr=1e-4,
        eps=1e-6,
        weight_decay=0.01,
        radius=LETSRadius(rho=0.05, lr=1e-3, hvp="diag"),
    )
    return Workload(data.model, opt, data.loss, data.train, data.val)


WORKLOADS = {"digits": digits_workload, "minilm-mrpc": minilm_mrpc_workload}


def loss_and_gradient(w: Workload, batch):
    """A batch's loss and its gradient (zeros where a parameter is unused) at the current weights."""
    params = list(w.model.parameters())
    loss = w.loss(batch)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def products_at_perturbation(w: Workload, batch) -> dict[str, list[torch.Tensor]]:
    """One SAM step on ``batch``; ``b`` in each mode, formed at the perturbed weights before the base step."""
    opt, params = w.optimizer, list(w.model.parameters())
    w.loss(batch).backward()
    g = [p.grad.clone() for p in params]
    opt.first_step(zero_grad=True)
    theta_t = opt.buffers("theta_t")
    e = [p.detach() - theta_t[p] for p in params]
    rho = torch.sqrt(dot(e, e))
    w.loss(batch).backward()
    g_hat = [p.grad.clone() for p in params]
    exact = [ei.clone() for ei in e]
    get_hvp("exact").product_(
        exact,
        params=params,
        grads=g_hat,
        rho=rho.float(),
        inv_grad_scale=torch.ones(()),
        loss_closure=lambda: w.loss(batch),
    )
    opt.second_step(zero_grad=True)
    return {
        "diag": [gh * gh * ei / rho for gh, ei in zip(g_hat, e)],
        "finite_difference": [(gh - gi) / rho for gh, gi in zip(g_hat, g)],
        "exact": exact,
    }


def sign(value) -> int:
    return int(torch.sign(torch.as_tensor(value)))


def measure(w: Workload, steps: int) -> dict[str, object]:
    """Per-step sign agreements (as shares of the steps) and the paper's and next-batch values."""
    counts: dict[str, int] = {}
    paper_values, next_values, diag_size = [], [], []

    def count(name: str, agrees: bool) -> None:
        counts[name] = counts.get(name, 0) + int(agrees)

    for t in range(steps):
        batch, nxt, val = w.train[t], w.train[t + 1], w.val[t]
        b = products_at_perturbation(w, batch)
        (l_v, grad_v), (l_r, grad_r), (l_next, grad_r_next) = (loss_and_gradient(w, x) for x in (val, batch, nxt))
        gap, gap_next = l_v - l_r, l_v - l_next
        a = [gv - gr for gv, gr in zip(grad_v, grad_r)]
        a_next = [gv - gr for gv, gr in zip(grad_v, grad_r_next)]
        gap2 = {mode: gap * dot(a, vector) for mode, vector in b.items()}  # h = -eta * these: same sign order
        paper, exact = gap2["diag"], gap2["exact"]
        paper_values.append(float(paper))
        next_values.append(float(gap_next * dot(a_next, b["diag"])))
        count("paper vs: next batch", sign(next_values[-1]) == sign(paper))
        count("paper vs: next batch, gap objective", sign(dot(a_next, b["diag"])) == sign(dot(a, b["diag"])))
        count("paper vs: finite_difference b", sign(gap2["finite_difference"]) == sign(paper))
        count("paper vs: exact b", sign(exact) == sign(paper))
        count("gap2, exact vs: finite_difference b", sign(gap2["finite_difference"]) == sign(exact))
        val_exact = dot(grad_v, b["exact"])
        count(
            "val, exact vs: finite_difference b (robust)", sign(dot(grad_v, b["finite_difference"])) == sign(val_exact)
        )
        count("val, exact vs: diag b", sign(dot(grad_v, b["diag"])) == sign(val_exact))
        diag_size.append(float(paper.abs() / exact.abs().clamp_min(1e-30)))
        w.optimizer.hyper_step(w.loss(val), w.loss(batch))
    return {
        "agreement": {k: v / steps for k, v in counts.items()},
        "paper": paper_values,
        "next": next_values,
        "diag_size": statistics.median(diag_size),
    }


def main(workload: str, steps: int, seed: int = 0) -> None:
    w = WORKLOADS[workload](steps, seed)
    result = measure(w, steps)
    print(f"{workload}, LETS-SAM paper rule, {steps} steps: sign agreement per step")
    for name, share in result["agreement"].items():
        print(f"  {name:46s} {share:6.1%}")
    print(f"  median |h(diag b)| / |h(exact b)|, gap2: {result['diag_size']:.3g}")
    window = 25
    if steps >= 2 * window:
        paper, nxt = (
            torch.tensor(result[k][: steps // window * window]).view(-1, window).sum(1) for k in ("paper", "next")
        )
        windows = (torch.sign(paper) == torch.sign(nxt)).float().mean().item()
        correlation = torch.corrcoef(torch.tensor([result["paper"], result["next"]]))[0, 1]
        print(
            f"  next batch, sums over {window} steps: {windows:6.1%} sign agreement; "
            f"per-step correlation {correlation:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="digits")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.workload, args.steps, args.seed)
