"""The paper and robust presets, the horizon-aware rho learning rate, and its overrides."""

import pytest
import torch

from lets_hf.radius import PRESETS, LETSRadius, radius_settings
from lets_hf.radius.presets import decay_per_update, resolve_preset, travel_rate


def test_presets_set_exactly_their_documented_values():
    assert radius_settings("paper") == {"hvp": "diag", "objective": "gap2", "lr": 1e-4, "lr_decay": 1.0, "interval": 1}
    for name, lr in (("paper_vision", 1e-4), ("paper_iwslt", 1e-5)):  # the paper's rule, decayed to 0.1x over the run
        settings = radius_settings(name, total_steps=1000)
        assert (settings["hvp"], settings["objective"], settings["lr"]) == ("diag", "gap2", lr)
        assert settings["lr_decay"] == 0.1 ** (1 / 999)
    robust = radius_settings("robust", total_steps=1200)
    assert robust["hvp"] == "finite_difference" and robust["objective"] == "val" and robust["interval"] == 1
    assert robust["lr"] == pytest.approx(24 / 1200)
    assert robust["lr_decay"] ** (1200 - 1) == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize(
    "override, key, value",
    [
        (dict(hvp="exact"), "hvp", "exact"),
        (dict(objective="gap2"), "objective", "gap2"),
        (dict(rho_lr=3e-3), "lr", 3e-3),
        (dict(rho_lr_decay=0.99), "lr_decay", 0.99),
        (dict(rho_travel=12.0), "lr", 12 / 1200),
        (dict(rho_decay_total=0.5), "lr_decay", 0.5 ** (1 / 1199)),
        (dict(rho_warmup=0.25), "warmup_updates", 300),
    ],
)
def test_each_robust_value_can_be_overridden_alone(override, key, value):
    base = radius_settings("robust", total_steps=1200)
    changed = radius_settings("robust", total_steps=1200, **override)
    assert changed[key] == pytest.approx(value) if isinstance(value, float) else changed[key] == value
    assert {k: v for k, v in changed.items() if k != key} == {k: v for k, v in base.items() if k != key}


def test_horizon_counts_hyper_updates_not_steps():
    settings = radius_settings("robust", total_steps=1000, interval=10, rho_warmup=0.25)
    assert settings["lr"] == pytest.approx(24 / 100) and settings["interval"] == 10
    assert settings["warmup_updates"] == 25
    assert travel_rate(24, 100) == pytest.approx(0.24) and decay_per_update(0.1, 1) == 1.0


def test_the_decayed_rate_reaches_the_factor_at_the_last_update():
    total = 50
    radius = LETSRadius(rho=0.1, **radius_settings("robust", total_steps=total))
    last_rate = radius.lr * radius.lr_decay ** (total - 1)  # the rate of update number `total`
    assert last_rate == pytest.approx(0.1 * radius.lr, rel=1e-12)


def test_auto_is_robust_next_over_sgd_and_the_papers_rule_over_anything_else():
    robust_next = radius_settings("robust_next", total_steps=1200)
    assert (robust_next["val_term"], robust_next["warmup_updates"], robust_next["lr"]) == ("next", 300, 24 / 1200)
    assert radius_settings("auto", total_steps=1200, base_optimizer=torch.optim.SGD) == robust_next
    for other in (torch.optim.AdamW, torch.optim.Adam, None):  # an unknown base optimizer too
        assert radius_settings("auto", total_steps=1200, base_optimizer=other) == radius_settings("paper")
    model = torch.nn.Linear(2, 1)
    assert resolve_preset("auto", torch.optim.SGD(model.parameters(), lr=0.1)) == "robust_next"  # an instance
    assert resolve_preset("robust", torch.optim.SGD) == "robust"  # a named preset is itself


def test_every_preset_says_where_its_numbers_come_from():
    assert all(len(preset.source) > 80 and preset.settings for preset in PRESETS.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(preset="fast"),
            r"lets_preset must be one of \['auto', 'paper', 'paper_iwslt', 'paper_vision', 'robust', 'robust_next'\], "
            "got 'fast'",
        ),
        (dict(preset="robust"), "need the run's total number of optimizer steps"),
        (dict(preset="paper", rho_lr=1e-3, rho_travel=2.0, total_steps=10), "give rho_lr or rho_travel, not both"),
        (dict(preset="robust", rho_travel=-1.0, total_steps=10), "rho_travel must be > 0"),
        (dict(preset="robust", rho_decay_total=2.0, total_steps=10), r"rho_decay_total must be in \(0, 1\]"),
        (dict(preset="robust", rho_warmup=1.5, total_steps=10), r"rho_warmup must be in \[0, 1\]"),
        (dict(preset="paper", rho_warmup=0.1), "rho_travel, rho_decay_total and rho_warmup need the run's total"),
    ],
)
def test_bad_preset_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        radius_settings(**kwargs)
