"""``LETSOptimizer.step(closure, val_closure)``: the whole protocol in one call, against the loop in parts.

The loop in parts is the one the module docstring shows (``first_step``, the perturbed pass,
``second_step``, ``hyper_step``), with BatchNorm frozen outside the clean pass; ``step(closure)``
must give the same weights and ``rho`` bit for bit, for rules with and without a kept ascent
gradient, a variant's ERM steps, and every path of the learned radius. A second learned
controller, written here, is driven through the :class:`~lets_hf.radius.base.LearnedRadius` contract.
"""

import math

import pytest
import torch
from lets_testing import tiny_batches, tiny_mlp

from lets_hf import LearnedRadius, LETSOptimizer, LETSRadius, frozen_batchnorm_stats
from lets_hf.optimizer import Phase
from lets_hf.perturbation import build_perturbation
from lets_hf.radius import get_descent, get_hvp, get_objective

loss_fn = torch.nn.functional.cross_entropy
STEPS = 4
CASES = {  # name: (rule, LETSRadius options or None for a fixed radius)
    "sam": ("sam", None),
    "asam": ("asam", None),
    "looksam": ("looksam", None),
    "gsam": ("gsam", None),
    "lets_sam-paper": ("sam", {}),
    "lets_sam-robust": ("sam", dict(objective="val", hvp="finite_difference")),
    "lets_sam-next": ("sam", dict(train_term="next")),
    "lets_sam-interval2": ("sam", dict(interval=2)),
    "lets_sam-exact": ("sam", dict(hvp="exact")),
    "lets_gsam-fd": ("gsam", dict(hvp="finite_difference")),
    "lets_looksam": ("looksam", {}),
}


def bn_model(seed: int = 0) -> torch.nn.Module:
    """The tiny MLP with a BatchNorm layer, so that which passes move its statistics shows in the weights."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


def build(case: str, model: torch.nn.Module) -> LETSOptimizer:
    rule, lets = CASES[case]
    radius = 0.05 if lets is None else LETSRadius(rho=0.05, lr=0.05, **lets)
    return LETSOptimizer(
        model.parameters(),
        torch.optim.SGD,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        perturbation=build_perturbation(rule, {}, seed=0, total_steps=STEPS),
        radius=radius,
    )


def batches():
    f32 = dict(dtype=torch.float32)
    return [(tiny_batches(10 + i, **f32), tiny_batches(50 + i, **f32)) for i in range(STEPS)]


def parts_loop(model, optimizer, data, max_grad_norm=None):
    """The step in parts, as the module docstring writes it."""
    for (x, y), (xv, yv) in data:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.first_step(zero_grad=True, train_loss=loss.detach())
        with frozen_batchnorm_stats(model):
            if optimizer.is_perturbed:
                loss_fn(model(x), y).backward()
            optimizer.unperturb(loss_closure=lambda: loss_fn(model(x), y))
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        if optimizer.hyper_step_due:
            with frozen_batchnorm_stats(model):
                train = None if optimizer.radius.train_term_from_next_step else loss_fn(model(x), y)
                optimizer.hyper_step(loss_fn(model(xv), yv), train)


def closure_loop(model, optimizer, data, max_grad_norm=None):
    for (x, y), (xv, yv) in data:
        optimizer.step(
            lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv), model=model, max_grad_norm=max_grad_norm
        )


def state(model, optimizer):
    return [t.clone() for t in model.state_dict().values()], optimizer.rho


def assert_identical(a, b):
    (weights_a, rho_a), (weights_b, rho_b) = a, b
    assert all(torch.equal(p, q) for p, q in zip(weights_a, weights_b))
    assert rho_a == rho_b


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_with_a_closure_is_the_loop_in_parts_bit_for_bit(case):
    results = []
    for loop in (parts_loop, closure_loop):
        model = bn_model()
        optimizer = build(case, model)
        loop(model, optimizer, batches())
        results.append(state(model, optimizer))
    assert_identical(*results)
    if CASES[case][1] is not None:
        assert results[0][1] != 0.05  # rho moved: the hyper passes ran


def test_clipping_and_a_first_pass_run_by_the_caller_are_the_loop_in_parts():
    model, reference = bn_model(), bn_model()
    optimizer, expected = build("lets_sam-paper", model), build("lets_sam-paper", reference)
    parts_loop(reference, expected, batches(), max_grad_norm=0.05)
    for (x, y), (xv, yv) in batches():  # g already in .grad: step(loss=...) takes it from there
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step(
            lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv), model=model, loss=loss, max_grad_norm=0.05
        )
    assert_identical(state(model, optimizer), state(reference, expected))


def test_step_runs_each_pass_once_and_leaves_the_gradients_none():
    model = tiny_mlp(dtype=torch.float32)
    optimizer = build("lets_sam-paper", model)
    calls = []
    (x, y), (xv, yv) = batches()[0]
    closure = lambda: calls.append(("train", optimizer.phase)) or loss_fn(model(x), y)
    val_closure = lambda: calls.append(("val", optimizer.phase)) or loss_fn(model(xv), yv)
    ascent_loss = loss_fn(model(x), y).detach()
    returned = optimizer.step(closure, val_closure)
    assert calls == [
        ("train", Phase.READY),
        ("train", Phase.PERTURBED),
        ("val", Phase.HYPER_DUE),
        ("train", Phase.HYPER_DUE),
    ]  # ascent, perturbed pass, then the two hyper passes
    assert torch.equal(returned, ascent_loss)  # the ascent pass's loss, at theta_t
    assert optimizer.phase is Phase.READY and all(p.grad is None for p in model.parameters())


def test_a_nonfinite_ascent_gradient_skips_the_perturbed_and_hyper_passes():
    model = tiny_mlp(dtype=torch.float32)
    optimizer = build("lets_sam-paper", model)
    (x, y), (xv, yv) = batches()[0]
    calls = []

    def closure():
        calls.append(optimizer.phase)
        loss = loss_fn(model(x), y)
        return loss * float("nan") if len(calls) == 1 else loss

    optimizer.step(closure, lambda: calls.append("val") or loss_fn(model(xv), yv))
    assert calls == [Phase.READY]  # the ascent pass only: a stock step on g, no hyper step
    assert (optimizer.skipped_ascents, optimizer.steps, optimizer.radius.updates) == (1, 1, 0)


def test_phases_and_buffer_bytes_follow_the_diagram():
    model = tiny_mlp(dtype=torch.float32)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    optimizer = build("lets_gsam-fd", model)
    assert optimizer.buffer_bytes() == {"theta_t": 0, "ascent_gradient": 0, "tangent": 0}
    (x, y), (xv, yv) = batches()[0]
    loss_fn(model(x), y).backward()
    optimizer.first_step(zero_grad=True)
    assert optimizer.phase is Phase.PERTURBED
    assert optimizer.buffer_bytes() == {"theta_t": param_bytes, "ascent_gradient": param_bytes, "tangent": param_bytes}
    loss_fn(model(x), y).backward()
    optimizer.unperturb()
    assert optimizer.phase is Phase.RESTORED
    optimizer.step()
    assert optimizer.phase is Phase.HYPER_DUE and optimizer.hyper_step_due
    optimizer.zero_grad()
    optimizer.hyper_step(loss_fn(model(xv), yv), loss_fn(model(x), y))
    assert optimizer.phase is Phase.READY
    other = tiny_mlp(dtype=torch.float32)
    fixed = LETSOptimizer(other.parameters(), torch.optim.SGD, lr=0.1, radius=0.05)
    fixed.step(lambda: loss_fn(other(x), y))  # a fixed radius: theta_t only, no tangent
    assert fixed.buffer_bytes() == {"theta_t": param_bytes, "ascent_gradient": 0, "tangent": 0}
    with pytest.raises(ValueError, match="role must be one of"):
        fixed.buffers("kept")


def test_train_term_next_waits_in_its_own_phase():
    model = tiny_mlp(dtype=torch.float32)
    optimizer = build("lets_sam-next", model)
    (x, y), (xv, yv) = batches()[0]
    optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv))
    assert optimizer.phase is Phase.NEXT_PASS_DUE and optimizer.radius.updates == 0
    optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv))
    assert optimizer.radius.updates == 1  # completed by the second step's ascent pass


def test_bad_calls_are_refused_before_anything_moves():
    model = tiny_mlp(dtype=torch.float32)
    optimizer = build("lets_sam-paper", model)
    (x, y), _ = batches()[0]
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="a learned radius needs val_closure"):
        optimizer.step(lambda: loss_fn(model(x), y))
    with pytest.raises(ValueError, match="max_grad_norm must be"):
        optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(x), y), max_grad_norm=0)
    with pytest.raises(ValueError, match="pass the training closure too"):
        optimizer.step(val_closure=lambda: loss_fn(model(x), y))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before)) and optimizer.steps == 0

    def davda54_closure():
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="without calling backward"):
        optimizer.step(davda54_closure, lambda: loss_fn(model(x), y))


# -- a second learned controller ------------------------------------------------------------------
class SignRadius(LearnedRadius):
    """``rho <- rho * exp(-lr * sign(h))``: a learned controller with nothing of LETSRadius but the contract."""

    def __init__(self, rho: float, lr: float):
        self.log_rho, self.lr, self.received = torch.tensor(math.log(rho), dtype=torch.float64), lr, []
        self.hvp, self.descent, self.objective = get_hvp("finite_difference"), get_descent("sgd"), get_objective("val")

    def rho_tensor(self, device):
        return self.log_rho.to(device).exp()

    def update(self, hypergradient):
        self.received.append(hypergradient.clone())
        self.log_rho = self.log_rho - self.lr * torch.sign(hypergradient).to(self.log_rho)

    def state_dict(self):
        return {"log_rho": self.log_rho.clone()}

    def load_state_dict(self, state):
        self.log_rho = state["log_rho"].clone()


def test_a_second_learned_controller_is_driven_through_the_contract():
    """Its hypergradient is LETSRadius's with the same hvp, descent and objective (same rho at step 1)."""
    runs = {}
    for name, radius in (
        ("sign", SignRadius(rho=0.05, lr=0.1)),
        ("lets", LETSRadius(rho=0.05, hvp="finite_difference", objective="val")),
    ):
        model = tiny_mlp(dtype=torch.float32)
        optimizer = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=radius)
        assert optimizer.radius.learns
        (x, y), (xv, yv) = batches()[0]
        optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv))
        runs[name] = optimizer
    sign, lets = runs["sign"], runs["lets"]
    assert len(sign.radius.received) == 1 and sign.radius.received[0] != 0
    assert torch.equal(sign.radius.received[0], lets.last_hypergradient)
    assert sign.rho == pytest.approx(0.05 * math.exp(-0.1 * float(torch.sign(lets.last_hypergradient))), rel=1e-12)


def test_a_learned_controller_that_does_not_set_its_members_is_refused():
    class Incomplete(SignRadius):
        def __init__(self):
            super().__init__(rho=0.05, lr=0.1)
            self.hvp = None

    with pytest.raises(ValueError, match=r"does not set \['hvp'\]"):
        LETSOptimizer(tiny_mlp().parameters(), torch.optim.SGD, lr=0.1, radius=Incomplete())
