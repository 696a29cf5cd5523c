"""Pictures of how the learned radius moved: one run with its gap, or many runs side by side.

Every front end (the Trainer's ``log_history``, the vision script's logs) reduces to rows with a
``step`` and the logged values, so one function draws them all. rho is drawn on a log axis that spans
at least a factor 2 (:func:`log_limits`), so that a run whose rho barely moves shows a flat line.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence

RADIUS_KEYS = ("rho", "lets_gap")
RHO_AXIS_FACTOR = 2.0  # the least factor a rho axis spans
PANELS_PER_ROW = 4


def radius_trajectory(log_history: Iterable[Mapping]) -> dict[str, list[float]]:
    """``{"step": [...], "rho": [...], "lets_gap": [...]}`` from the rows that log ``rho``, from step 0: the
    Trainer's first entry carries the starting radius as ``rho_start`` (a point of its own, with no gap yet:
    None). The final metrics of ``train()`` (``train_loss``) repeat the last radius and are left out."""
    rows = [row for row in log_history if "rho" in row and "train_loss" not in row]
    if rows and "rho_start" in rows[0]:
        rows.insert(0, {"step": 0, "rho": rows[0]["rho_start"]})
    return {
        "step": [row.get("step", i) for i, row in enumerate(rows)],
        **{key: [row.get(key) for row in rows] for key in RADIUS_KEYS},
    }


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps a legend placed outside the axes
    _pyplot().close(fig)
    return path


def log_limits(values: Iterable[float | None], factor: float = RHO_AXIS_FACTOR) -> tuple[float, float]:
    """Limits of a log axis around ``values`` (positive; None skipped) that span at least ``factor``, centred
    geometrically on their range: a change of 0.1% in rho looks like one, not like a cliff."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not finite:
        raise ValueError("log_limits needs at least one finite positive value")
    low, high = min(finite), max(finite)
    if high / low >= factor:
        return low / 1.1, high * 1.1
    centre, half = math.sqrt(low * high), math.sqrt(factor)
    return centre / half, centre * half


def draw_rho(axis, steps: Sequence[float], rhos: Sequence[float | None], **style) -> None:
    """rho against ``steps`` on a log axis spanning at least a factor :data:`RHO_AXIS_FACTOR`."""
    axis.plot(steps, [float("nan") if rho is None else rho for rho in rhos], **style)
    axis.set_yscale("log")
    axis.set_ylim(*log_limits(rhos))
    axis.set_ylabel("rho")


def plot_radius_trajectory(log_history: Iterable[Mapping], path: str, title: str | None = None) -> str | None:
    """Save a PNG of rho (top) and the validation-train gap (bottom) over steps; None if nothing was logged."""
    plt = _pyplot()
    trajectory = radius_trajectory(log_history)
    if not trajectory["step"]:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 5))
    draw_rho(top, trajectory["step"], trajectory["rho"], color="tab:blue")
    gaps = [float("nan") if gap is None else gap for gap in trajectory["lets_gap"]]
    bottom.plot(trajectory["step"], gaps, color="tab:orange")
    bottom.axhline(0.0, color="grey", linewidth=0.5)
    bottom.set_ylabel("L(val) - L(train)")
    bottom.set_xlabel("optimizer step")
    if title:
        top.set_title(title)
    return _save(fig, path)


def _start_of(label: str) -> str:
    """``"rho0=0.05, seed 2"`` -> ``"rho0=0.05"``: the runs of one start share a colour, each seed a line style."""
    return re.sub(r",? seed \d+$", "", label)


def plot_radius_comparison(
    panels: Mapping[str, Sequence[tuple[str, Sequence[float], Sequence[float]]]],
    path: str,
    title: str | None = None,
    reference: tuple[str, float] | None = None,
) -> str:
    """Save a PNG of rho over steps for many runs: one panel per ``panels`` key (a LETS rule, say), one line
        per ``(label, steps, rhos)`` (a starting radius, say; the labels of one start, ``"rho0=0.05, seed 1"``, share
    a colour across panels and differ in line style by seed), on a
        shared log axis, so that one sees whether runs from different rho_0 meet. ``reference = (label, rho)``
        draws a dashed horizontal line (the best fixed radius of a grid, say)."""
    plt = _pyplot()
    if not panels:
        raise ValueError("plot_radius_comparison needs at least one panel of runs")
    labels = list(dict.fromkeys(label for runs in panels.values() for label, _, _ in runs))
    starts = list(dict.fromkeys(_start_of(label) for label in labels))
    seeds = list(dict.fromkeys(label[len(_start_of(label)) :].lstrip(", ") for label in labels))
    colours = {start: plt.get_cmap("tab10")(i % 10) for i, start in enumerate(starts)}
    styles = ("-", "--", ":", "-.")
    columns = min(len(panels), PANELS_PER_ROW)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, sharey=True, squeeze=False, figsize=(4.5 * columns, 3.4 * rows + 0.8))
    handles = {}
    for axis, (name, runs) in zip(axes.flat, panels.items()):
        for label, steps, rhos in runs:
            start, seed = _start_of(label), label[len(_start_of(label)) :].lstrip(", ")
            handles[label] = axis.plot(
                steps, rhos, color=colours[start], linestyle=styles[seeds.index(seed) % 4], label=label
            )[0]
        if reference is not None:
            handles[reference[0]] = axis.axhline(reference[1], color="grey", linestyle="--", linewidth=1)
        axis.set_yscale("log")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("optimizer step")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    for row in axes:
        row[0].set_ylabel("rho")
    fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
