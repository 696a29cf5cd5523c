"""Training curves of several runs from their ``log.jsonl``: the generalization gap
``L(test) - L(train)`` per epoch (the paper's Figures 2 and 7), the training loss (Figures 6 and 9),
the radius ``rho`` and the test accuracy.

    python vision/curves.py runs/vision/cifar10-resnet18-sam-s0 runs/vision/cifar10-resnet18-lets_sam-s0 \\
        --out figures/cifar10-resnet18

writes ``gap.png``, ``train_loss.png``, ``rho.png`` and ``test_acc.png`` there, one line per run
(labelled by the run's method unless ``--labels`` is given).
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Sequence

from lets_hf.plots import log_limits
from vision.checkpoints import RunLog

FIGURES = {  # metric -> y-axis label
    "gap": "generalization gap L(test) - L(train)",
    "train_loss": "training loss",
    "rho": "perturbation radius rho",
    "test_acc": "test accuracy",
}


def read_runs(run_dirs: Sequence[pathlib.Path], labels: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """``{label: per-epoch records}``; a run's label is its method unless given."""
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"--labels: got {len(labels)} labels for {len(run_dirs)} runs")
    runs = {}
    for i, run_dir in enumerate(run_dirs):
        records = RunLog(run_dir / "log.jsonl").records()
        if not records:
            raise ValueError(f"{run_dir} has no log.jsonl records (is it a vision/train.py output folder?)")
        label = labels[i] if labels else json.loads((run_dir / "config.json").read_text())["method"]
        runs[label] = records
    return runs


def plot_metric(runs: dict[str, list[dict]], metric: str, path: pathlib.Path) -> bool:
    """One line per run of ``metric`` against the epoch; False (and no file) when no run logged it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(5.5, 4))
    drawn = False
    for label, records in runs.items():
        points = [(r["epoch"], r[metric]) for r in records if r.get(metric) is not None]
        if points:
            axis.plot(*zip(*points), label=label)
            drawn = True
    if drawn and metric == "rho":  # a log axis spanning at least a factor 2, as lets_hf.plots draws rho
        axis.set_yscale("log")
        axis.set_ylim(*log_limits(r.get("rho") for records in runs.values() for r in records))
    if drawn:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(FIGURES[metric])
        axis.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    plt.close(figure)
    return drawn


def main(argv=None) -> list[pathlib.Path]:
    parser = argparse.ArgumentParser(description="Gap, training-loss, rho and accuracy curves of vision/train.py runs.")
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="vision/train.py output folders")
    parser.add_argument("--labels", nargs="+", help="one legend label per run (default: the run's method)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("figures"), help="output folder")
    args = parser.parse_args(argv)
    runs = read_runs(args.runs, args.labels)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / f"{m}.png" for m in FIGURES if plot_metric(runs, m, args.out / f"{m}.png")]
    print("wrote " + ", ".join(map(str, written)))
    return written


if __name__ == "__main__":
    main()
