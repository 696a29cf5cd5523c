"""Pictures of a run: how the learned radius and the gap moved over training.

Every front end (the Trainer's ``log_history``, the vision script's logs) reduces to rows with a
``step`` and the logged values, so one function draws them all.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Optional

RADIUS_KEYS = ("rho", "lets_gap")


def radius_trajectory(log_history: Iterable[Mapping]) -> Dict[str, List[float]]:
    """``{"step": [...], "rho": [...], "lets_gap": [...]}`` from the rows that log ``rho`` (the first, at
    the start of training, has no gap yet: None)."""
    rows = [row for row in log_history if "rho" in row]
    return {"step": [row.get("step", i) for i, row in enumerate(rows)],
            **{key: [row.get(key) for row in rows] for key in RADIUS_KEYS}}


def plot_radius_trajectory(log_history: Iterable[Mapping], path: str, title: Optional[str] = None) -> Optional[str]:
    """Save a PNG of rho (top) and the validation-train gap (bottom) over steps; None if nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trajectory = radius_trajectory(log_history)
    if not trajectory["step"]:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    top.plot(trajectory["step"], trajectory["rho"], color="tab:blue")
    top.set_ylabel("rho")
    top.set_yscale("log")
    gaps = [float("nan") if gap is None else gap for gap in trajectory["lets_gap"]]
    bottom.plot(trajectory["step"], gaps, color="tab:orange")
    bottom.axhline(0.0, color="grey", linewidth=0.5)
    bottom.set_ylabel("L(val) - L(train)")
    bottom.set_xlabel("optimizer step")
    if title:
        top.set_title(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
