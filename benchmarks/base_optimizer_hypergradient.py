"""Does the one-step hypergradient, derived for an SGD step, point the right way under AdamW?

Run: python benchmarks/base_optimizer_hypergradient.py --base adamw [--steps 150]

LETS differentiates L_v(theta_{t+1}(rho)) through theta_{t+1} = theta_t - eta * g_hat(rho), so
d theta_{t+1} / d rho = -eta * b and, for the validation-loss objective, h = -eta * <grad l_v, b>
(``b = (g_hat - g) / rho``, the robust preset's). With SGD (momentum too) that is the exact
derivative; AdamW's step ``-eta * m_hat / (sqrt(v_hat) + eps)`` rescales and mixes the gradient, so
the formula may point the wrong way. On scikit-learn's digits (float64, an MLP, batches of 64),
each step compares the formula's sign with a central finite difference of L_v through the real
base-optimizer step (rho * (1 +- 1e-4), from copies of the model and optimizer state).
"""
from __future__ import annotations

import argparse
import copy

import torch
from sklearn.datasets import load_digits

BASES = {"sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
         "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)}


def sam_step(model, optimizer, loss, rho):
    """One SAM step with radius ``rho``; returns ``g`` and ``g_hat``."""
    params = list(model.parameters())
    model.zero_grad()
    loss(model).backward()
    g = [p.grad.clone() for p in params]
    norm = torch.sqrt(sum((gi * gi).sum() for gi in g))
    e = [rho * gi / norm for gi in g]
    with torch.no_grad():
        torch._foreach_add_(params, e)
    model.zero_grad()
    loss(model).backward()
    with torch.no_grad():
        torch._foreach_sub_(params, e)
    g_hat = [p.grad.clone() for p in params]
    optimizer.step()
    return g, g_hat


def main(base: str, steps: int, rho: float = 0.05, relative_step: float = 1e-4) -> None:
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float64), torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10)).double()
    optimizer = BASES[base](model.parameters())
    batch_loss = lambda idx: lambda m: torch.nn.functional.cross_entropy(m(x[idx]), y[idx])  # noqa: E731
    agree = 0
    for _ in range(steps):
        train, val = batch_loss(torch.randperm(len(x))[:64]), batch_loss(torch.randperm(len(x))[:64])
        val_after = {}
        for sign in (1, -1):
            trial = copy.deepcopy(model)
            trial_optimizer = BASES[base](trial.parameters())
            trial_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # state tensors are not shared
            sam_step(trial, trial_optimizer, train, rho * (1 + sign * relative_step))
            with torch.no_grad():
                val_after[sign] = float(val(trial))
        finite_difference = (val_after[1] - val_after[-1]) / (2 * relative_step * rho)
        g, g_hat = sam_step(model, optimizer, train, rho)
        model.zero_grad()
        val(model).backward()
        formula = -sum((p.grad * (gh - gi) / rho).sum() for p, gh, gi in zip(model.parameters(), g_hat, g))
        agree += int((finite_difference > 0) == (float(formula) > 0))
    print(f"{base}: the SGD-step formula's sign equals the finite difference's on {agree} of {steps} steps "
          f"({agree / steps:.1%})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", choices=sorted(BASES), default="adamw")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    main(args.base, args.steps)
