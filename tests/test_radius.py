import math

import pytest
import torch

from lets_hf.radius import FixedRadius, LETSRadius


def test_lets_adam_step_matches_hand_computation():
    radius = LETSRadius(rho=0.1, lr=0.01, lr_decay=0.5)
    h1, h2 = torch.tensor(2e-9, dtype=torch.float64), torch.tensor(-5e-9, dtype=torch.float64)
    radius.update(h1)
    # first Adam step with eps = 0 is lr * sign(g): a tiny hypergradient is not swallowed
    assert math.log(radius.rho) == pytest.approx(math.log(0.1) - 0.01, rel=1e-12)
    rho1 = radius.rho
    radius.update(h2)
    g1, g2 = 2e-9 * 0.1, -5e-9 * rho1
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1 * g1) + 0.001 * g2 * g2
    step = (m / (1 - 0.9**2)) / math.sqrt(v / (1 - 0.999**2))
    assert math.log(radius.rho) == pytest.approx(math.log(rho1) - 0.01 * 0.5 * step, rel=1e-12)
    assert radius.updates == 2


def test_nonfinite_hypergradient_leaves_state_untouched():
    radius = LETSRadius(rho=0.1, lr=0.01)
    radius.update(torch.tensor(1.0, dtype=torch.float64))
    before = radius.state_dict()
    for bad in (float("nan"), float("inf"), -float("inf")):
        radius.update(torch.tensor(bad, dtype=torch.float64))
    after = radius.state_dict()
    assert all(torch.equal(torch.as_tensor(before[k]), torch.as_tensor(after[k])) for k in before)


def test_rho_is_clamped_to_its_range():
    radius = LETSRadius(rho=0.1, lr=1.0, rho_min=0.05, rho_max=0.2)
    for _ in range(5):
        radius.update(torch.tensor(-1.0, dtype=torch.float64))
    assert radius.rho == pytest.approx(0.2)
    for _ in range(20):
        radius.update(torch.tensor(1.0, dtype=torch.float64))
    assert radius.rho == pytest.approx(0.05)


def test_state_dict_round_trip_is_exact():
    a = LETSRadius(rho=0.2, lr=0.05)
    for h in (1.0, -2.0, 0.5):
        a.update(torch.tensor(h, dtype=torch.float64))
    b = LETSRadius(rho=0.2, lr=0.05)
    b.load_state_dict(a.state_dict())
    a.update(torch.tensor(0.3, dtype=torch.float64))
    b.update(torch.tensor(0.3, dtype=torch.float64))
    assert a.rho == b.rho and a.updates == b.updates == 4


def test_warmup_applies_a_rising_fraction_of_the_learned_radius_and_learns_it_from_h_times_the_applied_one():
    """rho_k = min(1, (k + 1) / W) exp(log rho); the Adam gradient of log rho is h rho_k (the chain rule through
    the schedule), checked on the second update, where Adam's step depends on the gradients' ratio."""
    warm, plain = LETSRadius(rho=0.2, lr=0.01, warmup_updates=4), LETSRadius(rho=0.2, lr=0.01)
    assert warm.rho == pytest.approx(0.05) and float(warm.rho_tensor(torch.device("cpu"))) == pytest.approx(0.05)
    h1, h2 = 3.0, -1.0
    warm.update(torch.tensor(h1, dtype=torch.float64))  # gradient h1 * 0.05, applied radius 1/4 of 0.2
    learned = 0.2 * math.exp(-0.01)  # the first Adam step is lr * sign
    assert warm.rho == pytest.approx(learned * 2 / 4, rel=1e-12)
    warm.update(torch.tensor(h2, dtype=torch.float64))
    g1, g2 = h1 * 0.05, h2 * learned * 2 / 4
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1 * g1) + 0.001 * g2 * g2
    step = (m / (1 - 0.9**2)) / math.sqrt(v / (1 - 0.999**2))
    assert warm.rho == pytest.approx(learned * math.exp(-0.01 * step) * 3 / 4, rel=1e-12)
    for _ in range(3):
        warm.update(torch.tensor(0.0, dtype=torch.float64))
        plain.update(torch.tensor(0.0, dtype=torch.float64))
    assert warm.warmup_scale(warm.updates) == 1.0  # from update W - 1 on, the learned radius itself
    assert warm.rho == float(warm.rho_tensor(torch.device("cpu")))


def test_warmup_resumes_where_it_stopped():
    a, b = LETSRadius(rho=0.2, lr=0.05, warmup_updates=10), LETSRadius(rho=0.2, lr=0.05, warmup_updates=10)
    for h in (1.0, -2.0, 0.5):
        a.update(torch.tensor(h, dtype=torch.float64))
    b.load_state_dict(a.state_dict())
    assert b.rho == a.rho and b.warmup_scale(b.updates) == pytest.approx(0.4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rho=0), "rho must be a finite number > 0"),
        (dict(rho=-0.1), "rho must be a finite number > 0"),
        (dict(rho="big"), "rho must be a finite number > 0"),
        (dict(lr=0), "rho_lr must be a finite number > 0"),
        (dict(rho_min=0.5, rho_max=0.1, rho=0.2), r"rho_min \(0.5\) must be <= rho_max \(0.1\)"),
        (dict(rho=10.0), r"must lie in \[rho_min, rho_max\]"),
        (dict(lr_decay=1.5), r"rho_lr_decay must be in \(0, 1\]"),
        (dict(hvp="newton"), r"lets_hvp must be one of \['diag', 'exact', 'finite_difference'\]"),
        (dict(objective="loss"), r"lets_objective must be one of \['gap', 'gap2', 'val'\]"),
        (dict(descent="newton"), r"lets_descent must be one of \['adam', 'sgd'\]"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LETSRadius(**kwargs)


def test_fixed_radius_rejects_nonpositive():
    with pytest.raises(ValueError, match="rho must be a finite number > 0"):
        FixedRadius(0.0)
    assert FixedRadius(0.3).rho == 0.3


def test_gsam_schedule_follows_the_learning_rate():
    from lets_hf.radius import LRProportionalRadius

    radius = LRProportionalRadius(rho_max=0.1, rho_min=0.02, lr_max=0.5)
    radius.observe_learning_rate(0.5)
    assert radius.rho == pytest.approx(0.1)
    radius.observe_learning_rate(0.25)
    assert radius.rho == pytest.approx(0.06)
    radius.observe_learning_rate(0.0)
    assert radius.rho == pytest.approx(0.02)
    with pytest.raises(ValueError, match=r"rho_min \(0.5\) must be <= rho \(0.1\)"):
        LRProportionalRadius(rho_max=0.1, rho_min=0.5, lr_max=0.5)
