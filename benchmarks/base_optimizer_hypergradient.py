"""Does the one-step hypergradient, derived for an SGD step, point the right way under AdamW?

Run: python benchmarks/base_optimizer_hypergradient.py --base sgd|adamw [--steps 150]     # digits MLP
     python benchmarks/base_optimizer_hypergradient.py --workload minilm-mrpc --steps 30  # MiniLM, AdamW

LETS differentiates L_v(theta_{t+1}(rho)) through theta_{t+1} = theta_t - eta * g_hat(rho), so
d theta_{t+1} / d rho = -eta * b and, for the validation-loss objective, h = -eta * <grad l_v, b>
(``b = (g_hat - g) / rho ~ d g_hat / d rho``, the robust preset's). With SGD (momentum too) that is
the exact derivative. AdamW's step is ``-eta * m_hat / (sqrt(v_hat) + eps)`` with
``m = beta1 m + (1 - beta1) g_hat`` and ``v = beta2 v + (1 - beta2) g_hat^2`` (bias-corrected by
``c1 = 1 - beta1^t``, ``c2 = 1 - beta2^t``), so through it (Kingma & Ba 2015; the chain rule only)

    d theta_{t+1} / d rho = -eta * [ (1 - beta1) / c1 * b / D  -  m_hat / D^2 * (1 - beta2) g_hat b / (c2 sqrt(v_hat)) ]

with ``D = sqrt(v_hat) + eps``. Each step compares the sign of three hypergradients, the SGD-step
formula, Adam's first term alone (the preconditioner ``1 / D``) and Adam's full derivative, with a
central finite difference of L_v through the real base-optimizer step (rho * (1 +- delta), from a
snapshot of the weights and the optimizer state). As a check that the difference is above
round-off, it also counts the steps on which the two one-sided differences agree in sign.

Workloads: ``digits``, a tanh MLP on scikit-learn's digits (float64, batches of 64, delta 1e-4);
``minilm-mrpc``, the MiniLM of the evidence protocol on real MRPC (``minilm_mrpc.py``; float32,
batch 32, AdamW at the protocol's lr 1e-4, eps 1e-6 and weight decay 0.01, delta 1e-2).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable
from typing import NamedTuple

import torch

from lets_hf.radius.descent import AdamJacobian

DIGITS_BASES = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01),
}


class Workload(NamedTuple):
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[object], torch.Tensor]  # a batch's mean loss at the model's current weights
    train: list[object]
    val: list[object]
    relative_step: float  # delta of the finite difference in rho


def digits_workload(base: str, steps: int) -> Workload:
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float64), torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10)).double()
    batches = [[torch.randperm(len(x))[:64] for _ in range(2)] for _ in range(steps)]  # (train, val) per step
    loss = lambda idx: torch.nn.functional.cross_entropy(model(x[idx]), y[idx])  # noqa: E731
    return Workload(
        model, DIGITS_BASES[base](model.parameters()), loss, [t for t, _ in batches], [v for _, v in batches], 1e-4
    )


def minilm_mrpc_workload(base: str, steps: int) -> Workload:
    from minilm_mrpc import minilm_mrpc

    if base != "adamw":
        raise SystemExit("--workload minilm-mrpc runs the protocol's AdamW only; leave out --base or pass adamw")
    data = minilm_mrpc(steps, seed=0)
    optimizer = torch.optim.AdamW(data.model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01)
    return Workload(data.model, optimizer, data.loss, data.train, data.val, 1e-2)


WORKLOADS = {"digits": digits_workload, "minilm-mrpc": minilm_mrpc_workload}


def sam_step(w: Workload, batch, rho: float):
    """One SAM step on ``batch`` with radius ``rho``; returns ``g`` and ``g_hat``."""
    params = list(w.model.parameters())
    w.model.zero_grad()
    w.loss(batch).backward()
    g = [p.grad.clone() for p in params]
    norm = torch.sqrt(sum((gi * gi).sum() for gi in g))
    e = [rho * gi / norm for gi in g]
    with torch.no_grad():
        torch._foreach_add_(params, e)
    w.model.zero_grad()
    w.loss(batch).backward()
    with torch.no_grad():
        torch._foreach_sub_(params, e)
    g_hat = [p.grad.clone() for p in params]
    w.optimizer.step()
    return g, g_hat


def val_loss_after_step(w: Workload, train, val, rho: float) -> float:
    """L_v after one SAM step at ``rho``; the weights and the optimizer state are put back after."""
    weights = [p.detach().clone() for p in w.model.parameters()]
    state = copy.deepcopy(w.optimizer.state_dict())
    sam_step(w, train, rho)
    with torch.no_grad():
        value = float(w.loss(val))
        torch._foreach_copy_(list(w.model.parameters()), weights)
    w.optimizer.load_state_dict(state)  # the loaded tensors are the snapshot's own, used once
    return value


def adam_step_derivative(optimizer: torch.optim.Optimizer, params, b):
    """(preconditioner term, full) ``d theta_{t+1} / d rho`` through the Adam step just taken, with ``g_hat`` in
    ``.grad``: ``-eta`` times the first term and times the whole of ``--lets_descent adam``'s ``J b``."""
    (group,) = optimizer.param_groups
    first, full = [bi.clone() for bi in b], [bi.clone() for bi in b]
    for p, f, j in zip(params, first, full):
        AdamJacobian.product_(optimizer.state[p], p.grad, f, group, second_term=False)
        AdamJacobian.product_(optimizer.state[p], p.grad, j, group)
    return [-group["lr"] * f for f in first], [-group["lr"] * j for j in full]


def dot(xs, ys) -> float:
    return float(sum((x * y).sum() for x, y in zip(xs, ys)))


def measure(w: Workload, steps: int, rho: float = 0.05) -> tuple[dict[str, int], dict[str, float]]:
    """Per formula, the number of steps whose hypergradient sign equals the finite difference's, and the
    median over steps of its size relative to the finite difference's."""
    is_adam = isinstance(w.optimizer, torch.optim.Adam)  # AdamW subclasses Adam
    counts = {
        "SGD-step formula (LETS)": 0,
        **({"Adam, preconditioner term only": 0, "Adam, full step derivative": 0} if is_adam else {}),
        "(one-sided differences agree)": 0,
    }
    sizes: dict[str, list[float]] = {}
    params = list(w.model.parameters())
    delta = w.relative_step
    for t in range(steps):
        train, val = w.train[t], w.val[t]
        up, down = (val_loss_after_step(w, train, val, rho * (1 + s * delta)) for s in (1, -1))
        g, g_hat = sam_step(w, train, rho)
        b = [(gh - gi) / rho for gh, gi in zip(g_hat, g)]
        lr = w.optimizer.param_groups[0]["lr"]  # one group in both workloads
        forms = {"SGD-step formula (LETS)": [-lr * bi for bi in b]}  # d theta_{t+1} / d rho
        if is_adam:  # while .grad still holds g_hat
            forms["Adam, preconditioner term only"], forms["Adam, full step derivative"] = adam_step_derivative(
                w.optimizer, params, b
            )
        w.model.zero_grad()
        at_rho = w.loss(val)
        at_rho.backward()
        at_rho = float(at_rho.detach())
        finite_difference = (up - down) / (2 * delta * rho)
        values = {name: dot([p.grad for p in params], form) for name, form in forms.items()}
        for name, value in values.items():
            counts[name] += int((value > 0) == (finite_difference > 0))
            sizes.setdefault(name, []).append(abs(value / finite_difference))
        counts["(one-sided differences agree)"] += int((up > at_rho) == (at_rho > down))
        print(
            f"  step {t + 1}/{steps}: finite difference {finite_difference:+.3e}, "
            + ", ".join(f"{name} {value:+.3e}" for name, value in values.items()),
            flush=True,
        )
    return counts, {name: statistics.median(values) for name, values in sizes.items()}


def main(workload: str, base: str, steps: int) -> None:
    counts, sizes = measure(WORKLOADS[workload](base, steps), steps)
    print(
        f"{workload}, {base}, {steps} steps: sign agreement with the finite difference through the real step "
        "(median size relative to it)"
    )
    for name, agree in counts.items():
        size = f" ({sizes[name]:.3g}x)" if name in sizes else ""
        print(f"  {name:32s} {agree:4d} / {steps} ({agree / steps:.1%}){size}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="digits")
    parser.add_argument("--base", choices=sorted(DIGITS_BASES), default="adamw")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    main(args.workload, args.base, args.steps)
