"""Bad input, table-driven: every entry point raises a ValueError that names the argument and what is allowed."""

import re

import pytest
import torch

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.arguments import LETSArguments
from lets_hf.perturbation import build_perturbation
from lets_hf.radius import FixedRadius, LRProportionalRadius

NAN, INF = float("nan"), float("inf")


def lets_radius(**kwargs):
    return LETSRadius(**kwargs)


def fixed_radius(**kwargs):
    return FixedRadius(**kwargs)


def lr_radius(**kwargs):
    return LRProportionalRadius(**{"rho_max": 0.1, "rho_min": 0.01, "lr_max": 0.1, **kwargs})


def optimizer(**kwargs):
    return LETSOptimizer(torch.nn.Linear(2, 2).parameters(), torch.optim.SGD, lr=0.1, **kwargs)


def arguments(**kwargs):
    return LETSArguments(output_dir="unused", use_cpu=True, report_to=[], **kwargs)


def variant(name, **options):
    return build_perturbation(name, options, total_steps=10)


BAD = [
    # LETSRadius
    (lets_radius, dict(betas=0.9), r"betas \(rho's Adam\) must be two numbers in \[0, 1\), got 0.9"),
    (lets_radius, dict(betas=("a", "b")), r"betas\[0\] \(rho's Adam\) must be a number in \[0, 1\), got 'a'"),
    (lets_radius, dict(betas=(0.9, 1.0)), r"betas\[1\] \(rho's Adam\) must be a number in \[0, 1\), got 1.0"),
    (lets_radius, dict(betas=(0.9,)), r"betas \(rho's Adam\) must be two numbers"),
    (lets_radius, dict(eps="x"), r"eps \(rho's Adam\) must be >= 0 and finite, got 'x'"),
    (lets_radius, dict(eps=-1e-8), r"eps \(rho's Adam\) must be >= 0 and finite"),
    (lets_radius, dict(eps=INF), r"eps \(rho's Adam\) must be >= 0 and finite"),
    (lets_radius, dict(interval=True), "lets_interval must be an integer >= 1, got True"),
    (lets_radius, dict(interval=2.0), "lets_interval must be an integer >= 1, got 2.0"),
    (lets_radius, dict(interval=0), "lets_interval must be an integer >= 1, got 0"),
    (lets_radius, dict(rho="0.05"), "rho must be a finite number > 0 and <= 100, got '0.05'"),
    (lets_radius, dict(rho=NAN), "rho must be a finite number > 0"),
    (lets_radius, dict(rho=1e30, rho_max=1e30), r"rho must be a finite number > 0 and <= 100, got 1e\+30"),
    (lets_radius, dict(rho_max=1e30), r"rho_max must be a finite number > 0 and <= 100, got 1e\+30"),
    (lets_radius, dict(rho_min="1e-4"), "rho_min must be a finite number > 0"),
    (lets_radius, dict(rho_min=0.1, rho_max=0.01), r"rho_min \(0.1\) must be <= rho_max \(0.01\)"),
    (lets_radius, dict(rho=10.0), r"rho \(10.0\) must lie in \[rho_min, rho_max\]"),
    (lets_radius, dict(lr="0.1"), "rho_lr must be a finite number > 0, got '0.1'"),
    (lets_radius, dict(lr=INF), "rho_lr must be a finite number > 0"),
    (lets_radius, dict(lr_decay="1"), r"rho_lr_decay must be in \(0, 1\] \(a factor per update\), got '1'"),
    (lets_radius, dict(lr_decay=0.0), r"rho_lr_decay must be in \(0, 1\]"),
    (
        lets_radius,
        dict(train_term="nxt"),
        r"lets_train_term 'nxt': did you mean 'next'\?\nlets_train_term must be one of \['same', 'next'\], got 'nxt'",
    ),
    (
        lets_radius,
        dict(hvp="dag"),
        r"lets_hvp 'dag': did you mean 'diag'\?\nlets_hvp must be one of \['diag', 'exact', 'finite_difference'\]",
    ),
    (
        lets_radius,
        dict(descent="adm"),
        r"lets_descent 'adm': did you mean 'adam'\?\nlets_descent must be one of \['adam', 'sgd'\], got 'adm'",
    ),
    (lets_radius, dict(objective="gap3"), r"lets_objective must be one of \['gap', 'gap2', 'val'\], got 'gap3'"),
    # FixedRadius and the learning-rate schedule
    (fixed_radius, dict(rho=1e30), r"rho must be a finite number > 0 and <= 100, got 1e\+30"),
    (fixed_radius, dict(rho="0.05"), "rho must be a finite number > 0 and <= 100, got '0.05'"),
    (fixed_radius, dict(rho=True), "rho must be a finite number > 0 and <= 100, got True"),
    (fixed_radius, dict(rho=INF), "rho must be a finite number > 0"),
    (fixed_radius, dict(rho=0), "rho must be a finite number > 0"),
    (lr_radius, dict(rho_min=1e30), "rho_min must be a finite number > 0 and <= 100"),
    (lr_radius, dict(lr_max="0.1"), "learning_rate must be a finite number > 0, got '0.1'"),
    (lr_radius, dict(lr_min="0"), r"lr_min must be in \[0, learning_rate\), got '0'"),
    (lr_radius, dict(lr_min=0.5), r"lr_min must be in \[0, learning_rate\), got 0.5"),
    # LETSOptimizer
    (optimizer, dict(radius=1e30), r"radius must be a finite number > 0 and <= 100, got 1e\+30"),
    (optimizer, dict(radius=NAN), "radius must be a finite number > 0"),
    (optimizer, dict(radius="0.05"), "radius must be a number > 0 or a RadiusController, got '0.05'"),
    (optimizer, dict(radius=True), "radius must be a number > 0 or a RadiusController, got True"),
    (
        optimizer,
        dict(perturbation="sma"),
        r"perturbation 'sma': did you mean 'sam'\?\nperturbation must be one of \[.*'sam'.*\], got 'sma'",
    ),
    # LETSArguments
    (
        arguments,
        dict(optim="lets_sm"),
        r"optim 'lets_sm': did you mean 'lets_sam'\?\noptim must be one of the SAM family \[.*'lets_sam'.*\] or a "
        r"stock optimizer \[.*'adamw_torch'.*\], got 'lets_sm'",
    ),
    (
        arguments,
        dict(optim="lets_sam", lets_base_optim="bogus"),
        r"lets_base_optim must be one of \[.*'sgd'.*\], "
        r"got 'bogus'",
    ),
    (arguments, dict(optim="adamw_torch", lets_base_optim="bogus"), "lets_base_optim must be one of"),
    (arguments, dict(optim="sam", rho=1e30), "rho must be a finite number > 0 and <= 100"),
    (arguments, dict(optim="lets_sam", rho="0.05"), "rho must be a finite number > 0 and <= 100, got '0.05'"),
    (arguments, dict(optim="lets_sam", lets_interval=True), "lets_interval must be an integer >= 1, got True"),
    (arguments, dict(optim="sam", rho_schedule="linear"), r"rho_schedule must be one of \['constant', 'lr'\]"),
    (arguments, dict(optim="lets_sam", lets_val_source="test"), r"lets_val_source must be one of \['train', 'eval'\]"),
    (
        arguments,
        dict(optim="lets_sam", lets_objective="val", lets_val_term="next", lets_val_batch_size=16),
        r"lets_val_term 'next' takes the next training batch as the validation batch: leave lets_val_source",
    ),
    (
        arguments,
        dict(optim="lets_sam", lets_objective="gap2", lets_val_term="next"),
        "lets_val_term='next' needs lets_objective='val', got 'gap2'",
    ),
    (arguments, dict(optim="asam", asam_xi="x"), "asam_xi must be >= 0 and finite, got 'x'"),
    (arguments, dict(optim="looksam", looksam_k=True), "looksam_k must be an integer >= 1, got True"),
    # the variants' options
    (variant, dict(name="asam", asam_xi=-0.1), "asam_xi must be >= 0 and finite, got -0.1"),
    (variant, dict(name="asam", asam_xi=INF), "asam_xi must be >= 0 and finite, got inf"),
    (variant, dict(name="gsam", gsam_alpha="x"), "gsam_alpha must be >= 0 and finite, got 'x'"),
    (variant, dict(name="gsam", gsam_alpha=NAN), "gsam_alpha must be >= 0 and finite, got nan"),
    (variant, dict(name="esam", esam_beta="x"), r"esam_beta must be in \(0, 1\], got 'x'"),
    (variant, dict(name="esam", esam_beta=0.0), r"esam_beta must be in \(0, 1\], got 0.0"),
    (variant, dict(name="esam", esam_gamma=2.0), r"esam_gamma must be in \(0, 1\], got 2.0"),
    (variant, dict(name="rst", rst_p="x"), r"rst_p must be in \[0, 1\], got 'x'"),
    (variant, dict(name="rst", rst_p=1.5), r"rst_p must be in \[0, 1\], got 1.5"),
    (variant, dict(name="looksam", looksam_k=True), "looksam_k must be an integer >= 1, got True"),
    (variant, dict(name="looksam", looksam_k=2.5), "looksam_k must be an integer >= 1, got 2.5"),
    (variant, dict(name="looksam", looksam_alpha="x"), "looksam_alpha must be >= 0 and finite, got 'x'"),
    (variant, dict(name="ae_sam", ae_delta="x"), r"ae_delta must be in \[0, 1\), got 'x'"),
    (variant, dict(name="ae_sam", ae_delta=1.0), r"ae_delta must be in \[0, 1\), got 1.0"),
    (variant, dict(name="ae_sam", ae_lambda1="x"), "ae_lambda1 must be a finite number, got 'x'"),
    (variant, dict(name="ae_sam", ae_lambda2=INF), "ae_lambda2 must be a finite number, got inf"),
    (variant, dict(name="ae_looksam", looksam_alpha=-1.0), "looksam_alpha must be >= 0 and finite, got -1.0"),
]


def _case_id(build, kwargs):
    return "-".join([build.__name__] + [f"{k}={v!r}" for k, v in kwargs.items()])


@pytest.mark.parametrize("build, kwargs, message", BAD, ids=[_case_id(build, kw) for build, kw, _ in BAD])
def test_bad_input_raises_a_value_error_naming_the_argument(build, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_every_message_names_the_argument_it_rejects():
    """The table's fragments start with the argument's name (or the name it has on the command line)."""
    aliases = {
        "lr": "rho_lr",
        "lr_decay": "rho_lr_decay",
        "interval": "lets_interval",
        "train_term": "lets_train_term",
        "hvp": "lets_hvp",
        "objective": "lets_objective",
        "descent": "lets_descent",
        "lr_max": "learning_rate",
    }
    for build, kwargs, message in BAD:
        named = [k for k in kwargs if k != "name" and re.sub(r"\\", "", message).startswith(aliases.get(k, k))]
        assert named, (build.__name__, kwargs, message)


def test_good_numbers_of_other_types_are_accepted():
    import numpy as np

    radius = LETSRadius(rho=np.float32(0.1), betas=[0.9, np.float64(0.99)], eps=0, interval=np.int64(2))
    assert radius.betas == (0.9, 0.99) and radius.interval == 2
    assert FixedRadius(100).rho == 100.0


# -- poisoned checkpoint states: validated on load, nothing changed by a refused one ---------------------------
def _lets_state(**changes):
    state = LETSRadius(rho=0.1).state_dict()
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


f64 = lambda value: torch.tensor(value, dtype=torch.float64)  # noqa: E731

POISONED = [
    (_lets_state(log_rho=f64(NAN)), "LETSRadius state 'log_rho' must be a finite number, got nan"),
    (_lets_state(log_rho=f64(50.0)), r"'log_rho' = 50.0 \(rho = 5.185e\+21\) is outside \[log rho_min, log rho_max\]"),
    (_lets_state(log_rho=f64(-20.0)), r"'log_rho' = -20.0 .* is outside"),
    (_lets_state(exp_avg=f64(INF)), "LETSRadius state 'exp_avg' must be a finite number, got inf"),
    (_lets_state(exp_avg_sq=f64(-1.0)), "LETSRadius state 'exp_avg_sq' must be >= 0, got -1.0"),
    (_lets_state(updates=f64(2.5)), "LETSRadius state 'updates' must be a whole number >= 0, got 2.5"),
    (_lets_state(updates=f64(-1.0)), "LETSRadius state 'updates' must be a whole number >= 0"),
    (
        _lets_state(log_rho=torch.zeros(2, dtype=torch.float64)),
        r"'log_rho' must be a 0-dim floating-point tensor, got "
        r"shape \(2,\)",
    ),
    (_lets_state(updates=torch.tensor(3)), "'updates' must be a 0-dim floating-point tensor, got shape .* torch.int64"),
    (_lets_state(exp_avg="0.0"), "LETSRadius state 'exp_avg' must be a finite number, got '0.0'"),
    (_lets_state(exp_avg_sq=None), r"missing keys \['exp_avg_sq'\]"),
    (_lets_state(rho=f64(0.1)), r"unexpected keys \['rho'\]"),
    ([1, 2], "LETSRadius state must be a dict"),
]


@pytest.mark.parametrize("state, message", POISONED)
def test_lets_radius_refuses_a_poisoned_state_and_keeps_its_own(state, message):
    radius = LETSRadius(rho=0.2, lr=0.1)
    radius.update(f64(1.0))
    before = radius.state_dict()
    with pytest.raises(ValueError, match=message):
        radius.load_state_dict(state)
    after = radius.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "state, message",
    [
        ({"rho": NAN}, "checkpointed rho must be a finite number > 0"),
        ({"rho": 1e30}, r"checkpointed rho must be a finite number > 0 and <= 100, got 1e\+30"),
        ({"rho": "0.05"}, "checkpointed rho must be a finite number > 0"),
        ({}, r"FixedRadius state has missing keys \['rho'\]"),
        ({"rho": 0.05, "log_rho": 0.0}, r"unexpected keys \['log_rho'\]"),
        (LETSRadius().state_dict(), "FixedRadius state has missing keys"),
    ],
)
def test_fixed_radius_refuses_a_poisoned_state(state, message):
    radius = FixedRadius(0.05)
    with pytest.raises(ValueError, match=message):
        radius.load_state_dict(state)
    assert radius.rho == 0.05
    lr_radius().load_state_dict({"rho": 0.05})  # the schedule's state is a FixedRadius's


def test_good_states_load_bit_exactly():
    a = LETSRadius(rho=0.1, lr=1.0, rho_max=0.2)
    for h in (-1.0, -1.0, -1.0):  # clamped at rho_max: log_rho sits exactly on the bound
        a.update(f64(h))
    b = LETSRadius(rho=0.1, lr=1.0, rho_max=0.2)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    float32 = {k: v.float() for k, v in a.state_dict().items()}  # a state saved on a device without float64 (MPS)
    b.load_state_dict(float32)
    assert b.rho == pytest.approx(0.2, rel=1e-6)


def test_a_resumed_optimizer_refuses_a_poisoned_radius(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=0.1))
    state = opt.state_dict()
    state["lets"]["radius"]["log_rho"] = f64(NAN)
    torch.save(state, tmp_path / "optimizer.pt")
    fresh = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=0.1))
    with pytest.raises(ValueError, match="'log_rho' must be a finite number, got nan"):
        fresh.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))


def test_trainer_resume_refuses_a_poisoned_radius(tmp_path):
    from lets_testing import tiny_deberta, token_dataset
    from trainer_helpers import lets_args

    from lets_hf.trainer import LETSTrainer

    args = lets_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    LETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(32)).train()
    path = tmp_path / "out" / "checkpoint-2" / "optimizer.pt"
    state = torch.load(path, weights_only=True)
    state["lets"]["radius"]["log_rho"] = f64(50.0)  # rho 5e21, far above rho_max
    torch.save(state, path)
    resumed = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path, max_steps=4, save_strategy="no"), train_dataset=token_dataset(32)
    )
    with pytest.raises(ValueError, match=r"'log_rho' = 50.0 \(rho = 5.185e\+21\) is outside"):
        resumed.train(resume_from_checkpoint=str(path.parent))
