"""Peak memory of one training process per method: what a run of ERM, SAM or LETS needs, activations included.

Run: python benchmarks/peak_memory.py [--workload deberta|resnet] [--steps 3] [--tensors] [--json out.json]

Each method runs in a fresh subprocess (``python peak_memory.py --one METHOD``), which builds the
model and its optimizer, then takes ``--steps`` steps of :class:`bench_steps.Runner` (the
Trainer's step) on the workload: a DeBERTa-v2 classifier with AdamW (``--hidden``, ``--layers``,
``--vocab``) or the CIFAR ResNet-32 of ``vision/`` with SGD. On CPU the peak is the process's
maximum resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``); on CUDA it is
``torch.cuda.max_memory_allocated`` over the steps. The table gives each peak and its distance
from SAM's in units of the parameters' bytes (target for LETS: at most +1.1).

glibc keeps freed memory for reuse and raises its ``mmap`` threshold as large blocks are freed,
so the resident set also holds freed, fragmented memory, differently from one method to the
next. ``--live`` runs the processes with ``MALLOC_MMAP_THRESHOLD_=65536`` (every block above 64
KiB mapped and unmapped at once), so that the peak follows the live tensors. ``--tensors``
measures the live tensors themselves, exactly and independently of the allocator: the bytes of
every tensor alive when the steps start plus the running sum of the allocations and frees that
``torch.profiler`` records during them (:func:`tensor_peak`), with the phase of the step
(``bench_steps.PHASES``) at which the peak falls.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.bench_steps import (
    MAIN,
    PHASES,
    ROBUST,
    Method,
    Runner,
    block_steps,
    deberta_workload,
    resnet_workload,
)
from benchmarks.timing import machine_line
from experiment_utils.tiny_runs import deberta_config

ADAM_DESCENT = Method("LETS-SAM (robust, adam descent)", "sam", lets={**ROBUST, "descent": "adam"})
METHODS = MAIN + [ADAM_DESCENT]  # adam descent needs an Adam base optimizer: DeBERTa only


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def live_tensor_bytes() -> int:
    """Bytes of the storages of every tensor that Python can reach (each storage counted once)."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def tensor_peak(runner: Runner, steps: int) -> dict:
    """The most bytes of live CPU tensors during ``runner.steps(steps)``, and the step phase it falls in.

    Call between steps (no gradient or graph alive): the live bytes at the start are what Python
    can reach (:func:`live_tensor_bytes`); the profiler's memory events give every allocation and
    free after it, in order."""
    start = live_tensor_bytes()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        runner.steps(steps)
    events = sorted(prof.profiler.kineto_results.events(), key=lambda e: e.start_ns())
    phases = [(e.start_ns(), e.start_ns() + e.duration_ns(), e.name()) for e in events if e.name() in PHASES]
    live, peak, peak_at = start, start, None
    for event in events:
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU:
            live += event.nbytes()
            if live > peak:
                peak, peak_at = live, event.start_ns()
    phase = next((name for begin, end, name in phases if peak_at is not None and begin <= peak_at <= end), "between")
    return {"tensor_peak_bytes": peak, "tensor_bytes_at_start": start, "peak_phase": phase}


def make_runner(method_name: str, args) -> Runner:
    method = next(m for m in METHODS if m.name == method_name)
    cycle = max(block_steps(m, args.steps) for m in METHODS)  # the same batches in memory for every method
    device = torch.device(args.device)
    if args.workload == "resnet":
        workload = resnet_workload(device, batch_size=args.batch_size, cycle=cycle)
    else:
        workload = deberta_workload(
            device,
            deberta_config(args.hidden, args.layers, args.vocab),
            batch_size=args.batch_size,
            length=args.length,
            cycle=cycle,
        )
    return Runner(method, workload)


def one(method_name: str, args) -> dict:
    """Peak memory of ``method_name``'s steps, in this process."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    runner = make_runner(method_name, args)
    steps = block_steps(runner.method, args.steps)  # interval k: k steps, so that a hyper step runs
    param_bytes = sum(p.numel() * p.element_size() for p in runner.model.parameters())
    row = {"method": method_name, "param_bytes": param_bytes}
    if args.tensors:  # one step first, so that every buffer exists before the measured steps
        runner.steps(steps)
        return {**row, **tensor_peak(runner, steps), "kind": "live tensors (torch.profiler)"}
    before = max_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runner.steps(steps)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else max_rss_bytes()
    return {
        **row,
        "peak_bytes": peak,
        "rss_before_steps": before,
        "kind": "cuda max_memory_allocated" if device.type == "cuda" else "max RSS",
    }


def markdown(rows, title: str) -> str:
    key = "tensor_peak_bytes" if "tensor_peak_bytes" in rows[0] else "peak_bytes"
    sam = next(r for r in rows if r["method"] == "SAM")
    phase = key == "tensor_peak_bytes"
    lines = [
        f"**{title}**",
        "",
        "| method | peak (MiB) | peak - SAM's / param bytes |" + (" at |" if phase else ""),
        "|---|---|---|" + ("---|" if phase else ""),
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r[key] / 2**20:.1f} | {(r[key] - sam[key]) / r['param_bytes']:+.2f} |"
            + (f" {r['peak_phase']} |" if phase else "")
        )
    return "\n".join(lines)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", metavar="METHOD", help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=["deberta", "resnet"], default="deberta")
    parser.add_argument(
        "--methods", nargs="*", default=None, help="default: every method the workload's base optimizer allows"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 (DeBERTa), 32 (ResNet)")
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--live", action="store_true", help="MALLOC_MMAP_THRESHOLD_=65536: RSS follows live tensors")
    parser.add_argument("--tensors", action="store_true", help="the live tensors' peak (torch.profiler), CPU only")
    parser.add_argument("--json", type=Path)
    args, passed = parser.parse_args(argv), list(sys.argv[1:] if argv is None else argv)
    args.batch_size = args.batch_size or (32 if args.workload == "resnet" else 16)
    if args.methods is None:
        args.methods = [m.name for m in (MAIN if args.workload == "resnet" else METHODS)]
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(one(args.one, args)))
        return []
    rows = []
    for name in args.methods:
        command = [sys.executable, __file__, "--one", name] + [
            a for a in passed if a not in args.methods and a != "--methods"
        ]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if args.live else None
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1].get('tensor_peak_bytes', rows[-1].get('peak_bytes')) / 2**20:.1f} MiB", flush=True)
    params = rows[0]["param_bytes"]
    model = (
        "CIFAR ResNet-32, SGD"
        if args.workload == "resnet"
        else f"DeBERTa-v2, hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}, AdamW"
    )
    shape = f"{args.batch_size}" if args.workload == "resnet" else f"{args.batch_size} x {args.length}"
    title = (
        f"{model} ({params / 4 / 1e6:.2f}M parameters, {params / 2**20:.1f} MiB), batch {shape}, "
        f"{args.steps} steps, {rows[0]['kind']}{' (--live)' if args.live else ''}; "
        f"{machine_line(torch.device(args.device), 'n/a')}"
    )
    table = markdown(rows, title)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps({"table": table, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
