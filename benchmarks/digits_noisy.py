#!/usr/bin/env python
"""The image-side benchmark of the learned radius: an MLP on scikit-learn's digits with 40% flipped labels, SGD.

    python benchmarks/digits_noisy.py --arms grid,robust_vq       # every run not recorded yet, 3 seeds
    python benchmarks/digits_noisy.py --summarize                 # tables and the rho figure from the records

The protocol (fixed before the runs; the setting on which the ``robust`` preset was first measured): digits
split 70/30 stratified (``random_state`` 0), 40% of the training labels moved to another class (the data's own
seed 0; test labels clean); MLP 64-256-256-10 with ReLU; SGD lr 0.05, momentum 0.9, weight decay 5e-4, cosine
decay per step; batch 64 for 60 epochs (1,200 steps); LETS validation batches drawn from the noisy training set;
the last epoch's test accuracy (no model selection). Every run is one call of :func:`train`, recorded as
``<record_dir>/<run>-seed<seed>.json`` (a finished run is skipped, so the command can be stopped and rerun).
One run takes seconds on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from experiment_utils.label_noise import symmetric_noise
from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.plots import plot_radius_comparison
from lets_hf.radius import radius_settings
from lets_hf.reporting import markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]

SAM_GRID = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
LETS_STARTS = (0.01, 0.05, 0.1, 0.5)
SEEDS = (0, 1, 2)
EPOCHS, BATCH, NOISE = 60, 64, 0.4
HELD_OUT = 0.1  # the held-out arms' share of the training rows kept for validation batches

# The learned-radius settings compared: LETSRadius settings, and the validation batch size.
LEARNED_RULES: dict[str, dict[str, object]] = {
    "paper": {"preset": "paper", "val_batch": BATCH},
    "robust": {"preset": "robust", "val_batch": BATCH},
    "robust_vq": {"preset": "robust", "val_batch": BATCH // 4},  # the val pass at a quarter of a pass
    "robust_i4": {"preset": "robust", "val_batch": BATCH, "interval": 4},  # a full val pass every 4th step
    # Added with the text benchmark's held-out arm (glue/results/noisy): validation batches from 10% of the
    # training rows held out (never trained on) instead of from the training set itself.
    "robust_i4_heldout": {"preset": "robust", "val_batch": BATCH, "interval": 4, "held_out": HELD_OUT},
    # Added for the cost of issue 21 ("LETS at SAM's price"): a hyper step every k-th step only, with a validation
    # batch of m training batches; the step costs 1 + m / (2 k) of SAM's passes (1.10 for the last three).
    "robust_i10": {"preset": "robust", "val_batch": BATCH, "interval": 10},
    "robust_i20": {"preset": "robust", "val_batch": BATCH, "interval": 20},
    "robust_i5": {"preset": "robust", "val_batch": BATCH, "interval": 5},
    "robust_i10_v2x": {"preset": "robust", "val_batch": 2 * BATCH, "interval": 10},
    "robust_i20_v4x": {"preset": "robust", "val_batch": 4 * BATCH, "interval": 20},
    "robust_i5_t12": {"preset": "robust", "val_batch": BATCH, "interval": 5, "rho_travel": 12.0},
    "robust_i10_v2x_t12": {"preset": "robust", "val_batch": 2 * BATCH, "interval": 10, "rho_travel": 12.0},
    # The validation term from the next step's ascent pass (lets_val_term="next"): no extra pass at all.
    "robust_next": {"preset": "robust", "val_batch": BATCH, "val_term": "next"},
    # Added with issue 28: the robust_next preset (what lets_preset auto is over SGD): the arm above with the
    # applied radius warmed up over the first quarter of the run.
    "preset_robust_next": {"preset": "robust_next", "val_batch": BATCH},
}


def digits_split():
    """scikit-learn's digits / 16, split 70/30 stratified (``random_state`` 0): ``(x_train, y_train, x_test,
    y_test)`` as numpy arrays (a fresh copy each call)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.3, stratify=y, random_state=0)
    return x_train, y_train, x_test, y_test


def noisy_digits(noise: float = NOISE):
    """``(x_train, noisy y_train, x_test, y_test)`` as tensors; the split and the noise use seed 0."""
    x_train, y_train, x_test, y_test = digits_split()
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    noisy, _ = symmetric_noise(torch.tensor(y_train), noise, 10, seed=0)
    return as_x(x_train), noisy, as_x(x_test), torch.tensor(y_test)


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    )


def learned_radius(rule: str, rho: float, total_steps: int) -> LETSRadius:
    """The LETS controller of ``rule`` (:data:`LEARNED_RULES`) from ``rho``, for a run of ``total_steps``."""
    settings = dict(LEARNED_RULES[rule])
    preset, interval = settings.pop("preset"), int(settings.pop("interval", 1))
    overrides = {k: v for k, v in settings.items() if k not in ("val_batch", "held_out")}  # objective=...
    return LETSRadius(rho=rho, **radius_settings(preset, total_steps=total_steps, interval=interval, **overrides))


def build_optimizer(model: torch.nn.Module, rho: float, rule: str | None, total_steps: int) -> LETSOptimizer:
    """SGD (momentum 0.9, weight decay 5e-4) inside SAM at a fixed ``rho``, or LETS-SAM with ``rule``."""
    radius = rho if rule is None else learned_radius(rule, rho, total_steps)
    return LETSOptimizer(model.parameters(), torch.optim.SGD, radius=radius, lr=0.05, momentum=0.9, weight_decay=5e-4)


def split_off(x: torch.Tensor, y: torch.Tensor, fraction: float):
    """``(x, y)`` without ``fraction`` of its rows, and those rows: a fixed draw (seed 0), the same for every run."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    kept, held = order[round(fraction * len(x)) :], order[: round(fraction * len(x))]
    return (x[kept], y[kept]), (x[held], y[held])


def train(
    method: str,
    rho: float,
    seed: int,
    rule: str | None = None,
    data=None,
    epochs: int = EPOCHS,
    held_out: float = 0.0,
) -> dict:
    """One run: ``method`` is ``erm``, ``sam`` or ``lets_sam`` (with ``rule``); returns its record. With
    ``held_out`` (or a rule that sets it), the model trains on the rest and validation batches come from it."""
    x, y, x_test, y_test = data or noisy_digits()
    held_out = float(LEARNED_RULES[rule].get("held_out", held_out)) if rule else held_out
    x_val, y_val = x, y
    if held_out:
        (x, y), (x_val, y_val) = split_off(x, y, held_out)
    torch.manual_seed(seed)
    model = mlp()
    steps_per_epoch = math.ceil(len(x) / BATCH)
    total = epochs * steps_per_epoch
    if method == "erm":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = build_optimizer(model, rho, rule if method == "lets_sam" else None, total)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    loss_fn = torch.nn.functional.cross_entropy
    val_batch = int(LEARNED_RULES[rule]["val_batch"]) if rule else BATCH
    val_generator = torch.Generator().manual_seed(10_000 + seed)
    rhos, start = [], time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(BATCH):
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            if method == "erm":
                optimizer.step()
                optimizer.zero_grad()
            else:
                v = torch.randint(len(x_val), (val_batch,), generator=val_generator)
                optimizer.step(
                    lambda: loss_fn(model(x[idx]), y[idx]), lambda: loss_fn(model(x_val[v]), y_val[v]), loss=loss
                )  # g is in .grad: the step takes it from there
            schedule.step()
        rhos.append(optimizer.rho if method != "erm" else None)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(-1) == y_test).float().mean().item()
    return {
        "method": method,
        "rule": rule,
        "rho_initial": rho if method != "erm" else None,
        "seed": seed,
        "test_accuracy": accuracy,
        "rho_final": rhos[-1],
        "rho_per_epoch": rhos,
        "steps": total,
        "held_out": held_out,
        "wall_time_s": time.perf_counter() - start,
    }


def run_name(method: str, rho: float, rule: str | None, held_out: float = 0.0) -> str:
    name = "erm" if method == "erm" else f"{method}{'_' + rule if rule else ''}-rho{rho:g}"
    return f"{name}-heldout" if held_out and not rule else name


def planned_runs(arms: Sequence[str]) -> list[tuple]:
    """``(method, rho, rule, held-out share)`` for every run of ``arms``: ``grid``, ``grid_heldout`` (the grid
    trained on the rows the held-out rules train on) or a learned rule."""
    runs = []
    for arm in arms:
        if arm in ("grid", "grid_heldout"):
            held_out = HELD_OUT if arm == "grid_heldout" else 0.0
            runs += [("erm", 0.0, None, held_out)] + [("sam", rho, None, held_out) for rho in SAM_GRID]
        elif arm in LEARNED_RULES:
            runs += [("lets_sam", rho, arm, 0.0) for rho in LETS_STARTS]
        else:
            raise ValueError(f"--arms: unknown arm {arm!r}; use grid, grid_heldout or one of {sorted(LEARNED_RULES)}")
    return runs


def label(record: dict) -> str:
    on_part = " on 90%" if record.get("held_out") and not record["rule"] else ""
    if record["method"] == "erm":
        return "ERM" + on_part
    if record["method"] == "sam":
        return f"SAM (rho={record['rho_initial']:g})" + on_part
    return f"LETS-SAM {record['rule']} (rho_0={record['rho_initial']:g})"


def passes_over_sam(rule: str) -> float:
    """A rule's forward+backward passes per step over SAM's 2 (``LETSRadius.extra_passes_per_step``, with a
    validation batch of ``val_batch / BATCH`` training batches)."""
    radius = learned_radius(rule, 0.05, total_steps=EPOCHS * 20)  # about the 1,200 steps; sets the rate, not the passes
    return 1 + radius.extra_passes_per_step(int(LEARNED_RULES[rule]["val_batch"]) / BATCH) / 2


def cost_against_quality(records: Sequence[dict]) -> str:
    """Per learned rule: its passes over SAM's, the range of the per-start mean test accuracies, the worst run,
    and how far apart the final radii of all its runs are (max / min), next to the best SAM radius of the grid."""
    runs: dict[str, list[dict]] = {}
    for record in records:
        if record["method"] == "lets_sam":
            runs.setdefault(record["rule"], []).append(record)
    rows = []
    for rule, group in sorted(runs.items(), key=lambda item: (passes_over_sam(item[0]), item[0])):
        per_start: dict[float, list[float]] = {}
        for r in group:
            per_start.setdefault(r["rho_initial"], []).append(100 * r["test_accuracy"])
        means = [statistics.mean(scores) for scores in per_start.values()]
        rhos = [r["rho_final"] for r in group]
        rows.append(
            [
                rule,
                f"{passes_over_sam(rule):.3f}",
                f"{len(group) // len(per_start)}",
                f"{min(means):.1f} - {max(means):.1f}",
                f"{min(100 * r['test_accuracy'] for r in group):.1f}",
                f"{min(rhos):.3g} - {max(rhos):.3g} ({max(rhos) / min(rhos):.2f}x)",
            ]
        )
    header = ["rule", "passes / SAM", "seeds", "mean accuracy per start (%)", "worst run", "final rho (max / min)"]
    return markdown_table(header, rows)


def summarize(records: Sequence[dict], figure: str | None = None) -> str:
    """A Markdown table (test accuracy mean ± std over seeds, final rho), and the rho figure if asked."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(label(record), []).append(record)
    rows = []
    for name, group in groups.items():
        rhos = [r["rho_final"] for r in group if r["rho_final"] is not None]
        rho = (
            ", ".join(f"{value:.3g}" for value in rhos)
            if group[0]["method"] == "lets_sam"
            else (f"{rhos[0]:g}" if rhos else "-")
        )
        rows.append(
            [
                name,
                str(len(group)),
                mean_std([100 * r["test_accuracy"] for r in group]),
                rho,
                f"{statistics.mean(r['wall_time_s'] for r in group):.1f}",
            ]
        )
    table = markdown_table(["run", "seeds", "test accuracy (%)", "final rho", "s / run"], rows)
    if figure:
        panels: dict[str, list] = {}
        for record in records:
            if record["method"] == "lets_sam":
                rhos = record["rho_per_epoch"]
                steps = [(epoch + 1) * record["steps"] // len(rhos) for epoch in range(len(rhos))]
                panels.setdefault(record["rule"], []).append(
                    (f"rho_0={record['rho_initial']:g} seed {record['seed']}", steps, rhos)
                )
        if panels:
            plot_radius_comparison(panels, figure, title="digits, 40% label noise, SGD: rho at the end of each epoch")
    return table


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="grid", help=f"comma list of grid, grid_heldout, {', '.join(LEARNED_RULES)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--record_dir", default=str(ROOT / "benchmarks" / "results" / "digits_noisy"))
    parser.add_argument("--summarize", action="store_true", help="print the table of every record and draw rho")
    args = parser.parse_args(argv)
    records = Path(args.record_dir)
    if args.summarize:
        every = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
        print(summarize(every, figure=str(records / "rho_digits.png")) + "\n\n" + cost_against_quality(every))
        return
    try:
        runs = planned_runs(args.arms.split(","))
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)
    data = noisy_digits()
    records.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for method, rho, rule, held_out in runs:
            path = records / f"{run_name(method, rho, rule, held_out)}-seed{seed}.json"
            if path.exists():
                continue
            record = train(method, rho, seed, rule, data, held_out=held_out)
            path.write_text(json.dumps(record, indent=1))
            print(
                f"{path.name}: test accuracy {100 * record['test_accuracy']:.1f}, rho {record['rho_final']}, "
                f"{record['wall_time_s']:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
