"""What one run leaves behind: ``results.json`` (BLEU, loss curves, rho trajectory, wall time) and ``rho.png``.

The JSON is the unit that ``summarize.py`` reads; it names the method as the paper's Table 8 does
(``ERM``, ``SAM``, ``LETS-SAM``, ``ASAM``, ``LETS-ASAM``: :func:`lets_hf.methods.method_label`) and says
which split trained the model and which was scored, so that a run on ``valid`` (the shipped data) is never
mistaken for the paper's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from lets_hf.plots import plot_radius_trajectory, radius_trajectory

RESULTS_FILE = "results.json"
RHO_PLOT_FILE = "rho.png"


def data_label(train_split: str, test_split: str) -> str:
    """``"train->test"`` for the paper's protocol; any other pair is marked as not the paper's."""
    label = f"{train_split}->{test_split}"
    return label if train_split == "train" else f"{label} (not the paper's training data)"


def curve(log_history: Iterable[Mapping], key: str) -> dict[str, list[float]]:
    """``{"step": [...], key: [...]}`` over the log rows that hold ``key``."""
    rows = [row for row in log_history if key in row]
    return {"step": [row.get("step") for row in rows], key: [row[key] for row in rows]}


def sample_of_hypotheses(hypotheses: list[str], references: list[str], shown: int = 3) -> str:
    """The first ``shown`` hypotheses beside their references, and how many hypotheses are empty (an undertrained
    model ends every sentence at once: a first run's 60 steps give 100 empty lines), for a person to look at."""
    empty = sum(not hypothesis.strip() for hypothesis in hypotheses)
    lines = [
        f"{empty} of {len(hypotheses)} hypotheses are empty"
        + (" (the model ends each sentence at once: train longer)" if empty else "")
        + f"; the first {min(shown, len(hypotheses))} beside their references:"
    ]
    for hypothesis, reference in list(zip(hypotheses, references))[:shown]:
        lines += [f"  hypothesis: {clip(hypothesis)!r}", f"  reference:  {clip(reference)!r}"]
    return "\n".join(lines)


def clip(text: str, width: int = 90) -> str:
    """``text``, cut to ``width`` characters with ``...`` where it is longer."""
    return text if len(text) <= width else text[: width - 3] + "..."


def write_run_report(output_dir: str, log_history: list[Mapping], summary: dict) -> dict:
    """Write ``results.json`` (``summary`` plus the curves from ``log_history``) and ``rho.png``; return the JSON."""
    trajectory = radius_trajectory(log_history)
    results = dict(
        summary,
        loss_curves={"train": curve(log_history, "loss"), "eval": curve(log_history, "eval_loss")},
        rho_trajectory=trajectory,
        rho_final=trajectory["rho"][-1] if trajectory["rho"] else None,
    )
    data = summary["data"]
    title = (
        f"{summary['method']}, seed {summary['seed']}: trained on {data['train_split']}, BLEU on {data['test_split']}"
    )
    plot = plot_radius_trajectory(log_history, os.path.join(output_dir, RHO_PLOT_FILE), title)
    results["rho_plot"] = plot and RHO_PLOT_FILE
    with open(os.path.join(output_dir, RESULTS_FILE), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    return results
