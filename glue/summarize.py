#!/usr/bin/env python
"""Turn a folder of GLUE runs into Markdown tables in the paper's format (mean +- std over seeds, x100).

    python glue/summarize.py runs/glue            # prints the tables
    python glue/summarize.py runs/glue -o results.md
    python glue/summarize.py runs/glue --rho_plots plots/   # also rho_<task>.png: every learned radius

The first table has one row per run label (method, radius, held-out split) and one column per
task: MRPC and QQP show accuracy / F1, STS-B Pearson / Spearman, MNLI matched / mismatched. The
second gives, per label and task, the number of runs, the mean wall time, the final rho and the
mean dev loss; the third, per learned-radius run, how far ``log rho`` moved against how far its
learning rate let it move, and the mean and spread of the logged gap ``L(V) - L(B)``. The plots
show, per task, the rho trajectories of the learned-radius runs, one panel per rule (label without
its rho_0) and one line per run, with the best fixed radius of the SAM grid for reference.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from glue.results import load_results
from glue.tasks import TASKS
from lets_hf.plots import plot_radius_comparison
from lets_hf.reporting import markdown_table, mean_std, method_rank, without_start_radius


def _group(runs: Sequence[Mapping]) -> dict[str, dict[str, list[Mapping]]]:
    """``{label: {task: [runs]}}``."""
    groups: dict[str, dict[str, list[Mapping]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[run["label"]][run["task"]].append(run)
    return groups


def score_cell(runs: Sequence[Mapping]) -> str:
    """One task's cell: each reported metric as mean ± std (x100), joined by `` / ``."""
    names = list(runs[0]["scores"])
    cells = []
    for name in names:
        values = [100 * run["scores"][name] for run in runs if run["scores"].get(name) is not None]
        cells.append(mean_std(values) if values else "n/a")
    return " / ".join(cells)


def task_average(runs: Sequence[Mapping]) -> float | None:
    """The GLUE convention for one task: the mean of its metrics, averaged over runs (x100)."""
    per_run = [
        statistics.mean(v for v in run["scores"].values() if v is not None)
        for run in runs
        if any(v is not None for v in run["scores"].values())
    ]
    return 100 * statistics.mean(per_run) if per_run else None


def scores_table(runs: Sequence[Mapping]) -> str:
    """Methods x tasks, mean ± std; an ``Avg`` column when several tasks are present."""
    groups = _group(runs)
    tasks = [name for name in TASKS if any(name in by_task for by_task in groups.values())]
    show_avg = len(tasks) > 1
    header = ["Method"] + [TASKS[name].display_name for name in tasks] + (["Avg"] if show_avg else [])
    rows = []
    for label in sorted(groups, key=method_rank):
        by_task = groups[label]
        row = [label] + [score_cell(by_task[name]) if name in by_task else "" for name in tasks]
        if show_avg:
            averages = [task_average(by_task[name]) for name in tasks if name in by_task]
            complete = len(averages) == len(tasks) and all(a is not None for a in averages)
            row.append(f"{statistics.mean(averages):.1f}" if complete else "")
        rows.append(row)
    return markdown_table(header, rows)


def cost_table(runs: Sequence[Mapping]) -> str:
    """Per label and task: runs (seeds), mean wall time, the final rho (mean ± std) and the mean dev loss
    (finer-grained than the task's metric when a model is still near the majority class)."""
    groups = _group(runs)
    rows = []
    for label in sorted(groups, key=method_rank):
        for name in (task for task in TASKS if task in groups[label]):
            group = groups[label][name]
            rhos = [run["rho_final"] for run in group if run.get("rho_final") is not None]
            rho = mean_std(rhos, ".4g", ".2g") if rhos else ""
            wall = statistics.mean(run["wall_time_s"] for run in group)
            losses = [run["metrics"]["eval_loss"] for run in group if run["metrics"].get("eval_loss") is not None]
            loss = f"{statistics.mean(losses):.4f}" if losses else ""
            rows.append([label, TASKS[name].display_name, str(len(group)), f"{wall:.0f}", rho, loss])
    return markdown_table(["Method", "Task", "runs", "wall time (s)", "final rho", "dev loss"], rows)


def rho_reach(settings: Mapping) -> float | None:
    """How far ``log rho`` can move over the run: Adam moves it about its learning rate per update, so
    ``sum_k lr * decay^k = lr * (1 - decay^U) / (1 - decay)`` over ``U`` updates."""
    lr, decay, updates = (settings.get(key) for key in ("rho_lr", "rho_lr_decay", "rho_updates"))
    if lr is None or decay is None or not updates:
        return None
    return lr * updates if decay == 1 else lr * (1 - decay**updates) / (1 - decay)


def radius_table(runs: Sequence[Mapping]) -> str:
    """Per learned-radius run: where rho went against how far it could go, and how noisy the logged gap was."""
    rows = []
    learned = [run for run in runs if run["method"].startswith("LETS") and run.get("rho_final")]
    for run in sorted(learned, key=lambda run: (method_rank(run["label"]), run["task"], run["seed"])):
        gaps = [gap for gap in run["trajectory"]["lets_gap"] if gap is not None]
        gap = "" if len(gaps) < 2 else f"{mean_std(gaps, '+.4f', '.4f')} ({len(gaps)})"
        reach = rho_reach(run.get("settings", {}))
        rows.append(
            [
                run["label"],
                TASKS[run["task"]].display_name,
                str(run["seed"]),
                f"{run['rho_initial']:.4g} -> {run['rho_final']:.4g}",
                f"{math.log(run['rho_final'] / run['rho_initial']):+.3f}",
                "" if reach is None else f"{reach:.3g}",
                gap,
            ]
        )
    header = [
        "Method",
        "Task",
        "seed",
        "rho_0 -> final rho",
        "log(final / rho_0)",
        "reach of log rho",
        "gap L(V) - L(B): mean ± std (logged steps)",
    ]
    return markdown_table(header, rows)


def best_fixed_radius(runs: Sequence[Mapping]) -> tuple[str, float] | None:
    """The SAM radius (no held-out split) with the best mean score, as ``(legend text, rho)``; None if there is
    no SAM run or the best score is shared (every radius at the majority class, say)."""
    sam = [run for run in runs if run["method"] == "SAM" and run["label"] == f"SAM (rho={run['rho_initial']:g})"]
    if not sam:
        return None
    by_rho: dict[float, list[Mapping]] = defaultdict(list)
    for run in sam:
        by_rho[run["rho_initial"]].append(run)
    scored = [(task_average(group), rho) for rho, group in by_rho.items() if task_average(group) is not None]
    score, rho = max(scored, default=(None, None))
    if score is None or sum(other == score for other, _ in scored) > 1:
        return None  # no run, or a tie: no radius is the best
    return f"best SAM radius, {rho:g} ({score:.1f})", rho


def plot_learned_radii(runs: Sequence[Mapping], folder: str) -> list[str]:
    """One PNG per task, ``rho_<task>.png``: the learned-radius runs, a panel per rule; the paths written."""
    written = []
    for task in TASKS:
        task_runs = [run for run in runs if run["task"] == task]
        panels: dict[str, list[tuple[str, list[float], list[float]]]] = defaultdict(list)
        for run in sorted(task_runs, key=lambda run: (run["rho_initial"] or 0, run["seed"])):
            if run["method"].startswith("LETS") and run["trajectory"]["step"]:
                line = f"rho0={run['rho_initial']:g}, seed {run['seed']}"
                trajectory = run["trajectory"]
                panels[without_start_radius(run["label"])].append((line, trajectory["step"], trajectory["rho"]))
        if panels:
            path = str(Path(folder) / f"rho_{task}.png")
            title = f"{TASKS[task].display_name}: the learned radius from each rho_0"
            written.append(
                plot_radius_comparison(
                    dict(sorted(panels.items())), path, title, reference=best_fixed_radius(task_runs)
                )
            )
    return written


def summarize(root: str) -> str:
    """Both tables for every run under ``root``."""
    runs = load_results(root)
    if not runs:
        raise SystemExit(f"summarize.py: error: no glue_results.json found under {root}")
    text = (
        f"Scores (x100, mean ± std over runs):\n\n{scores_table(runs)}\n\n"
        f"Cost and learned radius:\n\n{cost_table(runs)}\n"
    )
    if any(run["method"].startswith("LETS") for run in runs):
        text += f"\nHow each learned radius moved:\n\n{radius_table(runs)}\n"
    return text


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="a folder holding run folders (searched recursively)")
    parser.add_argument("-o", "--output", help="also write the tables to this Markdown file")
    parser.add_argument("--rho_plots", metavar="DIR", help="also write rho_<task>.png for the learned radii here")
    args = parser.parse_args(argv)
    text = summarize(args.root)
    if args.output:
        Path(args.output).write_text(text)
    print(text)
    if args.rho_plots:
        for path in plot_learned_radii(load_results(args.root), args.rho_plots):
            print(f"wrote {path}")
    return text


if __name__ == "__main__":
    main()
