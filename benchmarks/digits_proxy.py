#!/usr/bin/env python
"""The cheap proxy of the learned radius under SGD and AdamW: an MLP on digits with 40% flipped labels.

    python benchmarks/digits_proxy.py --regime adamw --arms grid,robust_next_adam    # every run not recorded yet
    python benchmarks/digits_proxy.py --regime adamw --held_out --arms grid          # validation rows held out
    python benchmarks/digits_proxy.py --summarize                                    # tables and rho figures

The successor of ``benchmarks/digits_noisy.py`` for the learned radius under AdamW (issue 28). Its protocol is the
one of the measurements that filed that issue (``../shared/research/adamw-proxy/README.md``), reproduced run for
run (``tests/test_digits_proxy.py``):

- data: scikit-learn's digits / 16, split 70/30 stratified (``random_state`` 0): 1,257 training rows, 540 test
  rows; 40% of the training labels moved to another class by ``numpy.random.RandomState(1)`` (test labels clean);
- model: MLP 64-256-256-10 with ReLU, float32, ``torch.manual_seed(seed)`` right before it is built;
- batches of 64 for 60 epochs; ``torch.Generator().manual_seed(1000 + seed)`` draws each epoch's order and, at
  every step of every arm (so that every arm sees the same batches), a validation batch of 64 rows with
  replacement, from the training rows or, with ``--held_out``, from 10% of them that the model never trains on;
- base optimizers (``--regime``): ``sgd`` (lr 0.05, momentum 0.9, weight decay 5e-4) or ``adamw`` (lr 1e-3,
  betas (0.9, 0.999), eps 1e-8, weight decay 0.01), each with a cosine decay to 0 per step;
- score: the last epoch's test accuracy (no model selection), seeds 0-2.

A run takes 2-10 CPU seconds on one thread. Every run is one call of :func:`train`, recorded as
``<record_dir>/<regime>/<arm>-rho<rho_0>-seed<seed>.json`` (a finished run is skipped, so the command can be
stopped and rerun). The criteria of a learned setting (:func:`criteria`): from each of four starts its mean is
within ``max(0.5, std)`` of the best SAM of the grid on the same rows, and the final radii of the starts (the
geometric mean over seeds of each) are within a factor 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.digits_noisy import digits_split, mlp, split_off
from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.plots import plot_radius_comparison
from lets_hf.radius import FixedRadius, radius_settings
from lets_hf.reporting import markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "digits_proxy"
EPOCHS, BATCH, NOISE, HELD_OUT = 60, 64, 0.4, 0.1
SEEDS = (0, 1, 2)
BASE_OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
}
GRIDS = {  # the research's grids, and the points between its best and its neighbours (0.3-0.7; 1.5-3.0)
    "sam": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 2.0),
    "asam": (0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0),  # ASAM's radius is relative to the weights: 10-50x SAM's
}
# The starts of a learned radius: four radii spanning those at which the variant trains under the base optimizer
# (SAM collapses at 1.0 under SGD, at 2.0 under AdamW).
STARTS = {
    ("sgd", "sam"): (0.01, 0.05, 0.1, 0.5),
    ("adamw", "sam"): (0.01, 0.05, 0.2, 1.0),
    ("sgd", "asam"): (0.1, 0.5, 2.0, 5.0),
    ("adamw", "asam"): (0.1, 0.5, 2.0, 5.0),
}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A learned radius: the perturbation rule, the ``radius_settings`` preset and its overrides (``rho_warmup``:
    the warm-up of ``LETSRadius``); ``restart_after``: a radius finder, the learned radius of the first
    ``restart_after`` of a run (its schedules as in a whole run) fixed for a whole run from the same
    initialization (``1 + restart_after`` runs' cost)."""

    perturbation: str = "sam"
    preset: str = "robust"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    restart_after: float = 0.0

    def radius(self, rho: float, total_steps: int, regime: str) -> LETSRadius:
        """The controller from ``rho`` for a run of ``total_steps``; without a ``descent`` override, the one of
        the regime's base optimizer (``adam`` under AdamW, ``sgd`` under SGD, where it is exact)."""
        overrides = {"descent": "adam" if regime == "adamw" else "sgd", **self.overrides}
        interval = int(overrides.pop("interval", 1))
        return LETSRadius(rho=rho, **radius_settings(self.preset, total_steps, interval=interval, **overrides))


ASAM_NEXT_ADAM = {"val_term": "next", "descent": "adam", "rho_max": 50.0}  # LETS-ASAM at SAM's cost, J through Adam
# Every learned setting screened, failed ones included; rows are added, never edited (records name them).
SETTINGS: dict[str, Setting] = {
    "robust_next_adam": Setting(overrides={"val_term": "next", "descent": "adam"}),  # val from the next batch
    "robust_i4_adam": Setting(overrides={"interval": 4, "descent": "adam"}),  # own val pass every 4th step
    "robust_next_sgd": Setting(overrides={"val_term": "next", "descent": "sgd"}),  # the paper's J = I
    "robust_own_adam": Setting(overrides={"descent": "adam"}),  # its own val pass every step
    "lets_asam_next_adam": Setting(
        perturbation="asam", overrides={"val_term": "next", "descent": "adam", "rho_max": 50.0}
    ),
    "lets_asam_next_sgd": Setting(
        perturbation="asam", overrides={"val_term": "next", "descent": "sgd", "rho_max": 50.0}
    ),
    "lets_asam_next_sgd_t48": Setting(
        perturbation="asam", overrides={"val_term": "next", "descent": "sgd", "rho_max": 50.0, "rho_travel": 48.0}
    ),
    "lets_asam_next_sgd_flat": Setting(
        perturbation="asam", overrides={"val_term": "next", "descent": "sgd", "rho_max": 50.0, "rho_decay_total": 1.0}
    ),
    "lets_asam_next_t48": Setting(  # the descent of the base optimizer family: sgd under SGD, adam under AdamW
        perturbation="asam", overrides={"val_term": "next", "rho_max": 50.0, "rho_travel": 48.0}
    ),
    "lets_asam_own_adam_t48": Setting(  # its own validation pass every step: 1.5x SAM's passes
        perturbation="asam", overrides={"descent": "adam", "rho_max": 50.0, "rho_travel": 48.0}
    ),
    "lets_asam_next_adam_t96": Setting(
        perturbation="asam", overrides={"val_term": "next", "descent": "adam", "rho_max": 50.0, "rho_travel": 96.0}
    ),
    "lets_asam_next_adam_t48": Setting(
        perturbation="asam", overrides={"val_term": "next", "descent": "adam", "rho_max": 50.0, "rho_travel": 48.0}
    ),
    # low-dimensional schedules: a linear warm-up over the first quarter / half, its end learned
    "robust_next_adam_ramp25": Setting(overrides={"val_term": "next", "descent": "adam", "rho_warmup": 0.25}),
    "robust_next_sgd_ramp25": Setting(overrides={"val_term": "next", "rho_warmup": 0.25}),
    "lets_asam_next_adam_t48_ramp25": Setting(
        "asam", overrides={**ASAM_NEXT_ADAM, "rho_travel": 48.0, "rho_warmup": 0.25}
    ),
    "lets_asam_next_adam_t48_ramp50": Setting(
        "asam", overrides={**ASAM_NEXT_ADAM, "rho_travel": 48.0, "rho_warmup": 0.5}
    ),
    "lets_asam_next_adam_t96_ramp25": Setting(
        "asam", overrides={**ASAM_NEXT_ADAM, "rho_travel": 96.0, "rho_warmup": 0.25}
    ),
    # radius finders: learn over the first quarter / half, then a whole run at the radius found
    "lets_asam_next_adam_t96_finder25": Setting(
        "asam", overrides={**ASAM_NEXT_ADAM, "rho_travel": 96.0}, restart_after=0.25
    ),
    "robust_own_adam_finder50": Setting(overrides={"descent": "adam"}, restart_after=0.5),
}


@dataclasses.dataclass(frozen=True)
class PairedSetting:
    """An upper reference, not a method: ``log rho`` learned from a persistent antithetic pair (PES, Vicol, Metz
    and Sohl-Dickstein, ICML 2021), two whole runs at ``exp(theta + e_k)`` and ``exp(theta - e_k)`` with
    ``e_k ~ N(0, sigma^2)`` drawn for each window of ``window`` steps. After window ``k`` the estimate of
    ``d L / d theta`` is ``(L+ - L-) xi_k / (2 sigma^2)``, ``L`` the validation rows' loss of each run and
    ``xi_k = e_1 + ... + e_k`` the perturbation each run has carried so far, so that it sees what the radius did
    over the whole run so far, not over one step; Adam moves ``theta`` by ``lr`` per window. Twice a run's cost,
    plus a pass over the validation rows per window."""

    perturbation: str = "sam"
    window: int = 20
    sigma: float = 0.5
    lr: float = 0.15
    rho_max: float = 5.0


PAIRED: dict[str, PairedSetting] = {"pes_sam_w20": PairedSetting()}


@dataclasses.dataclass(frozen=True)
class TrendSetting:
    """A rule on a trend, not a hypergradient (issue 28's "trend rules"): every ``window`` steps ``log rho``
    moves by ``step``, up if the generalization gap grew over the window, down if it shrank. The gap is the
    validation batches' loss minus the training batches' (the ascent pass's, free), each an exponential moving
    average with factor ``beta`` per step: more sharpness-aware training while the model fits what does not
    generalize (the onset of fitting wrong labels), less while it does not. The validation loss is one forward
    pass without backward per step, about a third of a pass more than SAM."""

    perturbation: str = "sam"
    window: int = 10
    step: float = 0.05
    beta: float = 0.98
    rho_max: float = 5.0


TRENDS: dict[str, TrendSetting] = {
    "gap_trend_sam": TrendSetting(),  # log rho travels at most 5.4 over the held-out protocol's 1,080 steps
    "gap_trend_sam_fast": TrendSetting(step=0.15),  # at most 16
}
LEARNED: dict[str, Setting | PairedSetting | TrendSetting] = {**SETTINGS, **PAIRED, **TRENDS}


class GapTrendRule:
    """The state of a :class:`TrendSetting` over a run: the two averages, the gap at the last window's end."""

    def __init__(self, setting: TrendSetting, rho: float):
        self.setting, self.rho, self.steps = setting, rho, 0
        self.train_loss = self.val_loss = self.last_gap = None

    def observe(self, optimizer: LETSOptimizer, train_loss: float, val_loss: float) -> bool | None:
        """One step's losses; at a window's end sets the optimizer's radius and returns whether it went down."""
        beta = self.setting.beta
        average = lambda old, new: new if old is None else beta * old + (1 - beta) * new  # noqa: E731
        self.train_loss, self.val_loss = average(self.train_loss, train_loss), average(self.val_loss, val_loss)
        self.steps += 1
        if self.steps % self.setting.window:
            return None
        gap, last, self.last_gap = self.val_loss - self.train_loss, self.last_gap, self.val_loss - self.train_loss
        if last is None:
            return None
        factor = math.exp(self.setting.step if gap > last else -self.setting.step)
        self.rho = min(max(self.rho * factor, 1e-4), self.setting.rho_max)
        optimizer.radius = FixedRadius(self.rho)
        return gap <= last


def noisy_digits(noise: float = NOISE) -> tuple[torch.Tensor, ...]:
    """``(x_train, noisy y_train, x_test, y_test)``: the split of ``random_state`` 0 and ``RandomState(1)``'s noise."""
    x_train, y_train, x_test, y_test = digits_split()
    rng = np.random.RandomState(1)
    flipped = rng.choice(len(y_train), round(noise * len(y_train)), replace=False)
    y_train[flipped] = (y_train[flipped] + rng.randint(1, 10, len(flipped))) % 10
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_x(x_train), torch.tensor(y_train), as_x(x_test), torch.tensor(y_test)


def build_optimizer(model, regime: str, arm: str, rho: float, total_steps: int) -> torch.optim.Optimizer:
    """The base optimizer of ``regime`` alone (``erm``), inside SAM/ASAM at a fixed ``rho``, or with a learned
    radius (an arm of :data:`SETTINGS`)."""
    base, settings = BASE_OPTIMIZERS[regime]
    if arm == "erm":
        return base(model.parameters(), **settings)
    if arm in GRIDS or arm in TRENDS:  # a trend rule sets its fixed radius window by window
        perturbation = TRENDS[arm].perturbation if arm in TRENDS else arm
        return LETSOptimizer(model.parameters(), base, perturbation=perturbation, radius=rho, **settings)
    setting = SETTINGS[arm]
    radius = setting.radius(rho, total_steps, regime)
    return LETSOptimizer(model.parameters(), base, perturbation=setting.perturbation, radius=radius, **settings)


def _hyper_updates(optimizer: LETSOptimizer) -> int:
    """How many hyper steps have moved the optimizer's radius so far (0 for a fixed one)."""
    return getattr(optimizer.radius, "updates", 0)


def _quarter_shares(signs: list[bool]) -> list[float]:
    """The share of ``True`` in each quarter of ``signs`` (empty quarters left out)."""
    quarters = [signs[i * len(signs) // 4 : (i + 1) * len(signs) // 4] for i in range(4)]
    return [sum(q) / len(q) for q in quarters if q]


def train(regime: str, arm: str, rho: float, seed: int, data=None, held_out: float = 0.0, epochs: int = EPOCHS):
    """One run of the protocol (module docstring); returns its record. A radius finder (``restart_after``) is two:
    the learned part, then the whole run at the radius found, whose score the record carries."""
    if arm in PAIRED:
        return _train_paired(regime, arm, rho, seed, data, held_out, epochs)
    setting = SETTINGS.get(arm)
    if setting is None or not setting.restart_after:
        return _train(regime, arm, rho, seed, data, held_out, epochs)
    found = _train(regime, arm, rho, seed, data, held_out, epochs, stop_epoch=round(setting.restart_after * epochs))
    fixed = _train(regime, setting.perturbation, found["rho_final"], seed, data, held_out, epochs)
    return {
        **fixed,
        "arm": arm,
        "rho_initial": rho,
        "rho_per_epoch": found["rho_per_epoch"] + fixed["rho_per_epoch"],
        "steps": found["steps"] + fixed["steps"],
        "pushes_down_by_quarter": found["pushes_down_by_quarter"],
        "cpu_s": found["cpu_s"] + fixed["cpu_s"],
    }


def _splits(data, held_out: float) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``(training rows, validation rows, test rows)``, each ``(x, y)``: the validation rows are the training rows,
    or with ``held_out`` that share of them, split off (:func:`~benchmarks.digits_noisy.split_off`)."""
    x, y, x_test, y_test = data or noisy_digits()
    train, val = split_off(x, y, held_out) if held_out else ((x, y), (x, y))
    return train, val, (x_test, y_test)


def _record(regime, arm, rho, seed, held_out, accuracy, rhos, steps, pushes_down, start) -> dict[str, Any]:
    """One run's record (``start``: its ``time.process_time()`` at the first step)."""
    return {
        "regime": regime,
        "arm": arm,
        "rho_initial": rho,
        "seed": seed,
        "held_out": held_out,
        "test_accuracy": accuracy,
        "rho_final": rhos[-1],
        "rho_per_epoch": rhos,
        "steps": steps,
        "pushes_down_by_quarter": _quarter_shares(pushes_down),
        "cpu_s": time.process_time() - start,
    }


def _train(regime, arm, rho, seed, data, held_out, epochs, stop_epoch: int | None = None) -> dict[str, Any]:
    """The run of :func:`train`; with ``stop_epoch``, its first ``stop_epoch`` epochs (the schedules of the whole
    run; the test accuracy of the model there)."""
    (x, y), (x_val, y_val), (x_test, y_test) = _splits(data, held_out)
    torch.manual_seed(seed)
    model = mlp()
    total = epochs * math.ceil(len(x) / BATCH)
    optimizer = build_optimizer(model, regime, arm, rho, total)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    loss_fn, generator = torch.nn.functional.cross_entropy, torch.Generator().manual_seed(1000 + seed)
    trend = GapTrendRule(TRENDS[arm], rho) if arm in TRENDS else None
    rhos, pushes_down, steps, start = [], [], 0, time.process_time()
    for _ in range(epochs if stop_epoch is None else stop_epoch):
        for idx in torch.randperm(len(x), generator=generator).split(BATCH):
            v = torch.randint(len(x_val), (BATCH,), generator=generator)
            if arm == "erm":
                optimizer.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                optimizer.step()
            else:
                updates = _hyper_updates(optimizer)
                loss = optimizer.step(
                    lambda: loss_fn(model(x[idx]), y[idx]), lambda: loss_fn(model(x_val[v]), y_val[v])
                )
                if _hyper_updates(optimizer) > updates:  # rho moved on this step: h > 0 pushed it down
                    pushes_down.append(float(optimizer.last_hypergradient) > 0)
                if trend is not None:
                    with torch.no_grad():
                        down = trend.observe(optimizer, float(loss), loss_fn(model(x_val[v]), y_val[v]).item())
                    if down is not None:
                        pushes_down.append(down)
            schedule.step()
            steps += 1
        rhos.append(None if arm == "erm" else optimizer.rho)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(-1) == y_test).float().mean().item()
    return _record(
        regime, arm, None if arm == "erm" else rho, seed, held_out, accuracy, rhos, steps, pushes_down, start
    )


def _train_paired(regime, arm, rho, seed, data, held_out, epochs) -> dict[str, Any]:
    """The run pair of a :class:`PairedSetting` (the protocol's data, batches and schedules for each run); the
    record's accuracy is the two runs' mean, its radius ``exp(theta)``."""
    setting = PAIRED[arm]
    (x, y), (x_val, y_val), (x_test, y_test) = _splits(data, held_out)
    base, settings = BASE_OPTIMIZERS[regime]
    total = epochs * math.ceil(len(x) / BATCH)
    runs = []
    for _ in range(2):
        torch.manual_seed(seed)
        model = mlp()
        optimizer = LETSOptimizer(model.parameters(), base, perturbation=setting.perturbation, radius=rho, **settings)
        runs.append((model, optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)))
    batches, noise = torch.Generator().manual_seed(1000 + seed), torch.Generator().manual_seed(2000 + seed)
    theta, clamp = math.log(rho), (math.log(1e-4), math.log(setting.rho_max))
    adam, loss_fn = {"m": 0.0, "v": 0.0, "k": 0}, torch.nn.functional.cross_entropy
    offset = setting.sigma * float(torch.randn((), generator=noise))
    carried, rhos, pushes_down, steps, start = offset, [], [], 0, time.process_time()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=batches).split(BATCH):
            for sign, (model, optimizer, schedule) in zip((1, -1), runs):
                optimizer.radius = FixedRadius(math.exp(min(max(theta + sign * offset, clamp[0]), clamp[1])))
                optimizer.step(lambda: loss_fn(model(x[idx]), y[idx]))
                schedule.step()
            steps += 1
            if steps % setting.window == 0:
                with torch.no_grad():
                    plus, minus = (loss_fn(model(x_val), y_val).item() for model, _, _ in runs)
                gradient = (plus - minus) * carried / (2 * setting.sigma**2)
                theta = min(max(theta - setting.lr * _adam_direction(adam, gradient), clamp[0]), clamp[1])
                pushes_down.append(gradient > 0)
                offset = setting.sigma * float(torch.randn((), generator=noise))
                carried += offset
        rhos.append(math.exp(theta))
    with torch.no_grad():
        accuracy = statistics.mean((model(x_test).argmax(-1) == y_test).float().mean().item() for model, _, _ in runs)
    return _record(regime, arm, rho, seed, held_out, accuracy, rhos, steps, pushes_down, start)


def _adam_direction(state: dict[str, float], gradient: float, betas=(0.9, 0.999)) -> float:
    """Adam's bias-corrected ``m / sqrt(v)`` after one more ``gradient`` (eps 0; 0 while ``v`` is 0)."""
    state["k"] += 1
    state["m"] = betas[0] * state["m"] + (1 - betas[0]) * gradient
    state["v"] = betas[1] * state["v"] + (1 - betas[1]) * gradient * gradient
    v_hat = state["v"] / (1 - betas[1] ** state["k"])
    return (state["m"] / (1 - betas[0] ** state["k"])) / math.sqrt(v_hat) if v_hat > 0 else 0.0


def regime_name(regime: str, held_out: float) -> str:
    return f"{regime}-heldout{held_out:g}" if held_out else regime


def planned_runs(regime: str, arms: Sequence[str]) -> list[tuple[str, float]]:
    """``(arm, rho)`` for every run of ``arms``: ``grid`` (ERM and SAM's grid), ``asam_grid`` or a learned setting
    (from the four starts of its perturbation)."""
    runs = []
    for arm in arms:
        if arm == "grid":
            runs += [("erm", 0.0)] + [("sam", rho) for rho in GRIDS["sam"]]
        elif arm == "asam_grid":
            runs += [("asam", rho) for rho in GRIDS["asam"]]
        elif arm in LEARNED:
            runs += [(arm, rho) for rho in STARTS[regime, LEARNED[arm].perturbation]]
        else:
            raise ValueError(f"--arms: unknown arm {arm!r}; use grid, asam_grid or one of {', '.join(LEARNED)}")
    return runs


def run_name(arm: str, rho: float) -> str:
    return "erm" if arm == "erm" else f"{arm}-rho{rho:g}"


def _by_start(records: Sequence[dict]) -> dict[tuple[str, float | None], list[dict]]:
    groups: dict[tuple[str, float | None], list[dict]] = {}
    for record in records:
        groups.setdefault((record["arm"], record["rho_initial"]), []).append(record)
    return groups


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(statistics.mean(math.log(v) for v in values))


def _accuracies(group: Sequence[dict]) -> list[float]:
    return [100 * r["test_accuracy"] for r in group]


def results_table(records: Sequence[dict]) -> str:
    """Every arm and start of one regime: test accuracy mean ± std, the final radius (geometric mean over seeds, and
    per seed), the share of hyper steps that pushed rho down per quarter of the run (seed 0), CPU seconds per run."""
    rows = []
    for (arm, rho), group in sorted(_by_start(records).items(), key=lambda item: (item[0][0] != "erm", item[0])):
        finals = [r["rho_final"] for r in group]
        seed0 = [r for r in group if r["seed"] == 0]
        shares = "/".join(f"{s:.2f}" for s in seed0[0]["pushes_down_by_quarter"]) if seed0 else ""
        rows.append(
            [
                arm,
                "" if rho is None else f"{rho:g}",
                str(len(group)),
                mean_std(_accuracies(group), ".2f"),
                "" if rho is None else f"{_geometric_mean(finals):.3g} ({', '.join(f'{v:.3g}' for v in finals)})",
                shares,
                f"{statistics.mean(r['cpu_s'] for r in group):.1f}",
            ]
        )
    header = ["arm", "rho / rho_0", "n", "test acc (%)", "final rho (per seed)", "h>0 share by quarter", "CPU s"]
    return markdown_table(header, rows)


def criteria(records: Sequence[dict]) -> list[dict]:
    """Per learned setting of one regime: each start's mean and its gap to the best SAM of the grid (meets when every
    gap is <= max(0.5, that SAM's std)), and the spread of the final radii (max / min over the starts of each
    start's geometric mean; meets when <= 2)."""
    groups = _by_start(records)
    grid = {rho: _accuracies(g) for (arm, rho), g in groups.items() if arm == "sam"}
    if not grid:
        return []
    best_rho = max(grid, key=lambda rho: statistics.mean(grid[rho]))
    best = statistics.mean(grid[best_rho])
    tolerance = max(0.5, statistics.stdev(grid[best_rho]) if len(grid[best_rho]) > 1 else 0.0)
    verdicts = []
    for arm in dict.fromkeys(arm for arm, _ in groups if arm in LEARNED):
        starts = {rho: g for (a, rho), g in groups.items() if a == arm}
        means = {rho: statistics.mean(_accuracies(g)) for rho, g in starts.items()}
        finals = [_geometric_mean([r["rho_final"] for r in g]) for g in starts.values()]
        spread = max(finals) / min(finals)
        worst_gap = best - min(means.values())
        verdicts.append(
            {
                "arm": arm,
                "means": means,
                "best_sam": (best_rho, best, tolerance),
                "worst_gap": worst_gap,
                "spread": spread,
                "meets": worst_gap <= tolerance and spread <= 2 and len(starts) == 4,
            }
        )
    return verdicts


def criteria_table(verdicts: Sequence[dict]) -> str:
    rows = [
        [
            v["arm"],
            " / ".join(f"{m:.2f}" for m in v["means"].values()),
            f"{v['best_sam'][1]:.2f} (rho {v['best_sam'][0]:g}, tolerance {v['best_sam'][2]:.2f})",
            f"{v['worst_gap']:.2f}",
            f"{v['spread']:.2f}",
            "yes" if v["meets"] else "no",
        ]
        for v in verdicts
    ]
    header = ["setting", "mean per start", "best SAM", "worst gap", "rho spread", "meets"]
    return markdown_table(header, rows)


def rho_figure(records: Sequence[dict], path: Path, title: str) -> None:
    """rho at the end of each epoch, every start and seed, one panel per learned setting."""
    panels: dict[str, list] = {}
    for r in sorted(records, key=lambda r: (r["arm"], r["rho_initial"] or 0, r["seed"])):
        if r["arm"] in LEARNED:
            steps = [0] + [(e + 1) * r["steps"] // len(r["rho_per_epoch"]) for e in range(len(r["rho_per_epoch"]))]
            label = f"rho0={r['rho_initial']:g}, seed {r['seed']}"
            panels.setdefault(r["arm"], []).append((label, steps, [r["rho_initial"], *r["rho_per_epoch"]]))
    if panels:
        plot_radius_comparison(panels, str(path), title=title)


def summarize(record_dir: Path) -> str:
    """The results and criteria tables of every regime recorded under ``record_dir``, and its rho figure."""
    parts = []
    for folder in sorted(p for p in record_dir.iterdir() if p.is_dir()):
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if not records:
            continue
        parts += [f"## {folder.name}", results_table(records)]
        verdicts = criteria(records)
        if verdicts:
            parts.append(criteria_table(verdicts))
        rho_figure(records, record_dir / f"rho_{folder.name}.png", f"digits, 40% noise, {folder.name}: rho per epoch")
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=tuple(BASE_OPTIMIZERS), default="adamw", help="the base optimizer")
    parser.add_argument("--held_out", action="store_true", help=f"validation batches from {HELD_OUT:.0%} held out")
    parser.add_argument("--arms", default="grid", help=f"comma list of grid, asam_grid, {', '.join(LEARNED)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--record_dir", default=str(RECORDS))
    parser.add_argument("--summarize", action="store_true", help="print every regime's tables and draw rho")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(Path(args.record_dir)))
        return
    try:
        runs = planned_runs(args.regime, args.arms.split(","))
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)
    held_out = HELD_OUT if args.held_out else 0.0
    folder = Path(args.record_dir) / regime_name(args.regime, held_out)
    folder.mkdir(parents=True, exist_ok=True)
    data = noisy_digits()
    for seed in args.seeds:
        for arm, rho in runs:
            path = folder / f"{run_name(arm, rho)}-seed{seed}.json"
            if path.exists():
                continue
            record = train(args.regime, arm, rho, seed, data, held_out)
            path.write_text(json.dumps(record, indent=1))
            print(
                f"{folder.name}/{path.name}: {100 * record['test_accuracy']:.2f}, rho {record['rho_final']}", flush=True
            )


if __name__ == "__main__":
    main()
