"""What one run leaves behind: ``glue_results.json`` (metrics, rho, trajectories, cost) and a PNG.

``summarize.py`` reads these files back, so the file name, the run label and the per-task scores
are defined once, here. A run killed and resumed has several segments: each checkpoint records the
wall time spent up to it (``wall_time.json``), and the resumed run adds its own segment to that of
the checkpoint it resumed from, so ``wall_time_s`` is the time the results took over all segments.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from lets_hf.methods import method_label
from lets_hf.plots import plot_radius_trajectory, radius_trajectory

from .tasks import GlueTask

logger = logging.getLogger(__name__)

RESULTS_FILE = "glue_results.json"
PLOT_FILE = "rho_trajectory.png"
WALL_TIME_FILE = "wall_time.json"  # in each checkpoint: the run's wall time up to it
# The metric prefix Trainer.evaluate gives each evaluation split (MNLI's mismatched one: "eval_mm").
SPLIT_PREFIXES = {"validation": "eval", "validation_matched": "eval", "validation_mismatched": "eval_mm"}


def run_label(
    optim: str,
    rho: float,
    lets_val_split_fraction: float,
    lets_preset: str = "auto",
    rho_lr: float | None = None,
    lets_descent: str = "sgd",
) -> str:
    """A row name for summaries: the method, its (initial) radius, the LETS rule where it is not the
    paper's, its rho learning rate where given, the descent step where not SGD's, and the held-out split if any."""
    label = method_label(optim)
    learned = label.startswith("LETS")
    details = [] if label == "ERM" else [f"{'rho0' if learned else 'rho'}={rho:g}"]
    if learned and lets_preset not in ("auto", "paper"):  # GLUE's base optimizers are Adam's: auto is paper
        details.append(lets_preset)
    if learned and rho_lr is not None:
        details.append(f"rho_lr={rho_lr:g}")
    if learned and lets_descent != "sgd":
        details.append(f"{lets_descent} step")
    if lets_val_split_fraction:
        details.append(f"held-out {lets_val_split_fraction:.0%}")
    return f"{label} ({', '.join(details)})" if details else label


def task_scores(task: GlueTask, metrics: Mapping[str, float]) -> dict[str, float | None]:
    """The task's reported metrics from Trainer metrics: ``accuracy``, ``f1``, MNLI's ``mm_accuracy``, ..."""
    scores = {}
    for split in task.eval_splits:
        prefix = SPLIT_PREFIXES[split]
        for metric in task.metrics:
            name = metric if prefix == "eval" else f"{prefix[len('eval_') :]}_{metric}"
            scores[name] = metrics.get(f"{prefix}_{metric}")
    return scores


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class WallClock(TrainerCallback):
    """The run's wall time over its segments: started at ``start`` (``time.perf_counter()``), it carries
    on from the time recorded in ``resumed_from`` and records its own in every checkpoint it saves."""

    def __init__(self, start: float, resumed_from: str | None = None):
        self.start, self.before = start, 0.0
        if resumed_from is not None:
            path = os.path.join(resumed_from, WALL_TIME_FILE)
            if os.path.isfile(path):
                with open(path) as handle:
                    self.before = float(json.load(handle)["wall_time_s"])
            else:
                logger.warning(
                    "%s has no %s: the wall time of the segments before it is unknown, wall_time_s "
                    "counts this segment only",
                    resumed_from,
                    WALL_TIME_FILE,
                )

    @property
    def elapsed_s(self) -> float:
        return self.before + time.perf_counter() - self.start

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(folder):
            with open(os.path.join(folder, WALL_TIME_FILE), "w") as handle:
                json.dump({"wall_time_s": self.elapsed_s}, handle)


def build_results(
    task: GlueTask,
    *,
    label: str,
    optim: str,
    seed: int,
    model: str,
    rho_initial: float | None,
    rho_final: float | None,
    metrics: Mapping[str, float],
    log_history: Iterable[Mapping],
    wall_time_s: float,
    settings: Mapping[str, object],
) -> dict[str, object]:
    """The content of ``glue_results.json`` for one finished run."""
    trajectory = radius_trajectory(log_history)
    return {
        "task": task.name,
        "label": label,
        "method": method_label(optim),
        "optim": optim,
        "seed": seed,
        "model": model,
        "scores": {k: _finite_or_none(v) for k, v in task_scores(task, metrics).items()},
        "metrics": {k: _finite_or_none(v) for k, v in metrics.items()},
        "rho_initial": rho_initial,
        "rho_final": rho_final,
        "trajectory": {k: [_finite_or_none(v) for v in values] for k, values in trajectory.items()},
        "wall_time_s": wall_time_s,
        "settings": dict(settings),
    }


def write_results(output_dir: str, results: Mapping[str, object], log_history: Iterable[Mapping]) -> str | None:
    """Write ``glue_results.json`` and, when rho was logged, the PNG of rho and the gap; the PNG's path or None."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, RESULTS_FILE), "w") as handle:
        json.dump(results, handle, indent=2)
    title = f"{results['label']} on {results['task']}, seed {results['seed']}"
    return plot_radius_trajectory(list(log_history), os.path.join(output_dir, PLOT_FILE), title)


def load_results(root: str) -> list[dict[str, object]]:
    """Every ``glue_results.json`` under ``root``, in path order."""
    found = []
    for folder, _, files in sorted(os.walk(root)):
        if RESULTS_FILE in files:
            with open(os.path.join(folder, RESULTS_FILE)) as handle:
                found.append({**json.load(handle), "path": folder})
    return found
