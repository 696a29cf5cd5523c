#!/usr/bin/env python
"""The text benchmark of the learned radius: MiniLM fine-tuned with AdamW on a GLUE subset with flipped labels.

    python glue/noisy_benchmark.py --arms grid            # ERM and the SAM grid (does the radius matter here?)
    python glue/noisy_benchmark.py --arms robust_adam_i4 --jobs 2   # the learned radius from every rho_0
    python glue/noisy_benchmark.py --dry_run              # prints the commands
    python glue/noisy_benchmark.py --task rte --noise 0.2 --rows 2490 --epochs 10   # another regime

Why a new protocol: on one epoch of clean MRPC and CoLA (``glue/results/evidence``) ERM beat every SAM radius,
so no learned radius could show anything. Here a share of the training labels is wrong (the dev labels are
clean), the setting in which SAM's advantage over ERM is best documented (Foret et al., ICLR 2021, Table 4),
and training runs for several epochs so that ERM has time to fit the wrong labels. The protocol qualifies when
the best SAM radius of the grid beats ERM by more than two standard deviations over the seeds and SAM's score
spans more than 2 points across the grid; only then do the LETS arms say anything.

Everything below was fixed before any LETS run (the defaults of the flags are the protocol). Each run is one
``glue/run_glue.py`` command; it and its records work as in ``glue/evidence.py``: finished runs are skipped,
interrupted ones resume from their last checkpoint, and each finished run's files are copied to
``<record_dir>/<regime>/<run>-seed<seed>/``. ``python glue/summarize.py <record_dir>/<regime>`` makes the tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from glue.evidence import RECORDING, default_model, parse_runner_arguments, run_protocol

ROOT = Path(__file__).resolve().parents[1]
# From where SAM trains as ERM does to where it stops training. The first six were fixed first; seed 0 put the best
# at the top one (0.05), so 0.1 and 0.2 were added, and the starts moved with them, before any LETS run finished.
SAM_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
LETS_STARTS = (0.002, 0.01, 0.05, 0.2)  # four rho_0 spread over the grid's range, 5x apart
SEEDS = (0, 1, 2)

# The learned-radius settings compared (each a flag list for run_glue.py).
LEARNED_RULES: dict[str, list[str]] = {
    # The paper's rule at its largest GLUE rho learning rate (Table 11).
    "paper": ["--lets_preset", "paper", "--rho_lr", "1e-3"],
    # The candidate: the robust preset, the hypergradient through AdamW's step, a hyper step on every 4th step with
    # a validation batch as large as the training batch: (2 + 1/4) / 2 = 1.125 x SAM's passes. (On digits a hyper
    # step at every step on a quarter-size validation batch, the same cost, met across rho_0 less well.)
    "robust_adam_i4": ["--lets_preset", "robust", "--lets_descent", "adam", "--lets_interval", "4"],
    # The mechanism check at 1.5 x SAM's passes: the same with a hyper step at every step.
    "robust_adam": ["--lets_preset", "robust", "--lets_descent", "adam"],
    # Added after robust_adam_i4's seed-0 run moved rho away from the grid's best from both sides, to test the
    # diagnosed cause: validation batches drawn from the noisy training set reward fitting its wrong labels. The
    # same setting with its validation batches from 10% of the training rows held out (never trained on).
    "robust_adam_i4_heldout": [
        "--lets_preset",
        "robust",
        "--lets_descent",
        "adam",
        "--lets_interval",
        "4",
        "--lets_val_split_fraction",
        "0.1",
    ],
    # Added for issue 28 (the learned radius under AdamW): LETS-ASAM, the scale-invariant radius that moved towards
    # ASAM's best radius from both sides on the AdamW digits proxy (benchmarks/digits_proxy.py), at SAM's passes:
    # the val objective from the next batch's ascent pass, the paper's J = I descent, rho up to 50.
    "asam_next_sgd": [
        *("--lets_preset robust --lets_val_term next --lets_descent sgd --rho_max 50".split()),
    ],
    # Added for issue 28 after the digits proxy's warm-up screen: the applied radius rises linearly over the first
    # quarter of the run to the learned one (--rho_warmup 0.25), at SAM's passes. LETS-ASAM as the proxy's best
    # AdamW setting (J through AdamW, travel 96), and LETS-SAM with the same warm-up.
    "asam_next_adam_t96_w25": [
        *("--lets_preset robust --lets_val_term next --lets_descent adam --rho_max 50".split()),
        *("--rho_travel 96 --rho_warmup 0.25".split()),
    ],
    # Added after asam_next_adam_t96_w25 sent rho to the clamp from three starts: asam_next_sgd (travel 24, J = I)
    # with the warm-up alone, so that the warm-up is the one change against that arm's seed-0 runs.
    "asam_next_sgd_w25": [
        *("--lets_preset robust --lets_val_term next --lets_descent sgd --rho_max 50 --rho_warmup 0.25".split()),
    ],
    "next_adam_w25": [*("--lets_preset robust --lets_val_term next --lets_descent adam --rho_warmup 0.25".split())],
}
HELD_OUT = ["--lets_val_split_fraction", "0.1"]
# ASAM's radius is relative to the weights (Kwon et al., ICML 2021): its grid and its learned arms' starts
ASAM_GRID = (0.1, 0.5, 2.0, 5.0)
ASAM_RULES = ("asam_next_sgd", "asam_next_adam_t96_w25", "asam_next_sgd_w25")


def fixed_settings(task: str, rows: int, noise: float, epochs: float) -> list[str]:
    """The training setup shared by every run: AdamW as in the paper's GLUE setup (eps 1e-6, linear warmup and
    decay, clipping 1.0), the last epoch's model scored (no model selection on the dev set). SST-2's rows are
    mostly short phrases (13 tokens on average, batches of 32 padded to 41), so batches group rows of similar
    length (the stock ``train_sampling_strategy="group_by_length"``)."""
    return [
        *f"--task_name {task} --max_train_samples {rows} --train_label_noise {noise}".split(),
        *"--label_noise_seed 0 --max_seq_length 64 --per_device_train_batch_size 32 --learning_rate 1e-4".split(),
        *f"--num_train_epochs {epochs} --warmup_steps 0.1 --weight_decay 0.01 --lr_scheduler_type linear".split(),
        *"--max_grad_norm 1.0 --adam_epsilon 1e-6 --lets_base_optim adamw_torch".split(),
        *RECORDING,
        *"--logging_steps 4".split(),
        *"--train_sampling_strategy group_by_length".split(),  # batches of similar length: a third of the padding
    ]


Run = tuple[str, list[str]]


def arm_runs(arm: str) -> list[Run]:
    """``[(run name, method flags)]`` of one arm: ``grid`` (ERM and SAM at each radius), ``grid_heldout`` (ERM
    and SAM at the seed-0 grid's three best radii trained on the rows the held-out arm trains on) or a learned
    rule."""
    if arm == "grid":
        return [("erm", ["--optim", "adamw_torch"])] + [
            (f"sam-rho{rho:g}", ["--optim", "sam", "--rho", str(rho)]) for rho in SAM_GRID
        ]
    if arm == "grid_heldout":  # the references of the held-out arm: trained on the same 90% of the rows
        return [
            (f"{name}-heldout", [*flags, *HELD_OUT])
            for name, flags in arm_runs("grid")
            if name in ("erm", "sam-rho0.02", "sam-rho0.05", "sam-rho0.1")
        ]
    if arm == "asam_grid":
        return [(f"asam-rho{rho:g}", ["--optim", "asam", "--rho", str(rho)]) for rho in ASAM_GRID]
    if arm in ASAM_RULES:
        return [
            (
                f"lets_asam_{arm.removeprefix('asam_')}-rho{rho:g}",
                ["--optim", "lets_asam", "--rho", str(rho), *LEARNED_RULES[arm]],
            )
            for rho in ASAM_GRID
        ]
    if arm in LEARNED_RULES:
        return [
            (f"lets_sam_{arm}-rho{rho:g}", ["--optim", "lets_sam", "--rho", str(rho), *LEARNED_RULES[arm]])
            for rho in LETS_STARTS
        ]
    raise ValueError(f"--arms: unknown arm {arm!r}; use grid, asam_grid or one of {sorted(LEARNED_RULES)}")


def label_of(name: str) -> str:
    """The table row of a run: ``"SAM (rho=0.01)"``, ``"LETS-SAM robust_adam_i4 (rho_0=0.01)"``, ``"ERM"``."""
    if name.endswith("-heldout"):
        return label_of(name[: -len("-heldout")]) + " on 90%"
    if name == "erm":
        return "ERM"
    method, rho = name.rsplit("-rho", 1)
    if method in ("sam", "asam"):
        return f"{method.upper()} (rho={rho})"
    variant, rule = method.removeprefix("lets_").split("_", 1)
    return f"LETS-{variant.upper()} {rule} (rho_0={rho})"


def regime_name(task: str, noise: float, rows: int, epochs: float) -> str:
    return f"{task}-noise{noise:g}-rows{rows}-epochs{epochs:g}"


def commands(args, model: str) -> list[tuple[Path, list[str], Path]]:
    """``(output folder, command, record folder)`` for every run, seed by seed (seed 0 of every arm first)."""
    regime = regime_name(args.task, args.noise, args.rows, args.epochs)
    runs = []
    for seed in args.seeds:
        for arm in args.arms.split(","):
            for name, flags in arm_runs(arm):
                out = Path(args.output_dir) / regime / f"{name}-seed{seed}"
                command = [
                    sys.executable,
                    str(ROOT / "glue" / "run_glue.py"),
                    "--data_dir",
                    args.data_dir,
                    "--model_name_or_path",
                    model,
                    *fixed_settings(args.task, args.rows, args.noise, args.epochs),
                    *flags,
                    "--run_label",
                    label_of(name),
                    "--seed",
                    str(seed),
                    "--output_dir",
                    str(out),
                ]
                runs.append((out, command, Path(args.record_dir) / regime / out.name))
    return runs


def parse(argv: Sequence[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default="grid", help=f"comma list of grid, grid_heldout, {', '.join(LEARNED_RULES)}")
    parser.add_argument("--task", default="sst2", choices=("sst2", "mrpc", "rte", "cola", "qnli", "qqp", "mnli"))
    parser.add_argument("--noise", type=float, default=0.3, help="fraction of flipped training labels")
    parser.add_argument("--rows", type=int, default=1000, help="training rows (the first N of the train split)")
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    args = parse_runner_arguments(parser, argv, "runs/noisy_benchmark", ROOT / "glue" / "results" / "noisy")
    try:
        for arm in args.arms.split(","):
            arm_runs(arm)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: Sequence[str] = None) -> None:
    args = parse(argv)
    run_protocol(commands(args, args.model or default_model()), args.jobs, args.dry_run)


if __name__ == "__main__":
    main()
