"""The benchmarks' own math, against finite differences of the real torch step."""
import importlib.util

import pytest
import torch

from lets_testing import ROOT


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def adamw_after_steps(g_hats, weight_decay=0.01, eps=1e-8):
    """A float64 parameter and its AdamW after one step per gradient in ``g_hats``."""
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    optimizer = torch.optim.AdamW([param], lr=1e-2, eps=eps, weight_decay=weight_decay)
    for g in g_hats:
        param.grad = g.clone()
        optimizer.step()
    return param, optimizer


@pytest.mark.parametrize("steps", [1, 4])
def test_adam_step_derivative_matches_a_finite_difference_of_the_real_step(steps):
    """g_hat(rho) = g + rho b on the last step, so d theta_{t+1} / d rho is exact through the chain rule."""
    derivative = load_benchmark("base_optimizer_hypergradient").adam_step_derivative
    generator = torch.Generator().manual_seed(3)
    history = [torch.randn(5, generator=generator, dtype=torch.float64) for _ in range(steps - 1)]
    g, b = (torch.randn(5, generator=generator, dtype=torch.float64) for _ in range(2))
    rho, h = 0.05, 1e-6
    param, optimizer = adamw_after_steps(history + [g + rho * b])
    _, full = derivative(optimizer, [param], [g + rho * b], [b])
    up, down = (adamw_after_steps(history + [g + (rho + s * h) * b])[0].detach() for s in (1, -1))
    torch.testing.assert_close(full[0], (up - down) / (2 * h), rtol=1e-5, atol=1e-9)
