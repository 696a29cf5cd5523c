"""Peak memory of one training process per method: what a run of ERM, SAM or LETS needs, activations included.

Run: python benchmarks/peak_memory.py [--steps 3] [--hidden 256 --layers 4 --vocab 32000] [--json out.json]

Each method runs in a fresh subprocess (``python peak_memory.py --one METHOD``), which builds the
model and its optimizer, then takes ``--steps`` steps of :class:`bench_steps.Runner` (the
Trainer's step) on a DeBERTa-v2 classifier. On CPU the peak is the process's maximum resident
set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``); on CUDA it is
``torch.cuda.max_memory_allocated`` over the steps. The table gives each peak and its distance
from SAM's in units of the parameters' bytes (target for LETS: at most +1.1).

glibc keeps freed memory for reuse and raises its ``mmap`` threshold as large blocks are freed,
so the resident set also holds freed, fragmented memory, differently from one method to the
next. ``--live`` runs the processes with ``MALLOC_MMAP_THRESHOLD_=65536`` (every block above 64
KiB mapped and unmapped at once), so that the peak follows the live tensors.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.bench_steps import MAIN, Runner, block_steps, deberta_config, deberta_workload
from benchmarks.timing import machine_line


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def one(method_name: str, args) -> dict:
    """Peak memory of ``method_name``'s steps, in this process."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    method = next(m for m in MAIN if m.name == method_name)
    steps = block_steps(method, args.steps)  # interval k: k steps, so that a hyper step runs
    workload = deberta_workload(device, deberta_config(args.hidden, args.layers, args.vocab),
                                batch_size=args.batch_size, length=args.length, cycle=steps)
    runner = Runner(method, workload)
    param_bytes = sum(p.numel() * p.element_size() for p in runner.model.parameters())
    before = max_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runner.steps(steps)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else max_rss_bytes()
    return {"method": method_name, "peak_bytes": peak, "rss_before_steps": before, "param_bytes": param_bytes,
            "kind": "cuda max_memory_allocated" if device.type == "cuda" else "max RSS"}


def markdown(rows, title: str) -> str:
    sam = next(r for r in rows if r["method"] == "SAM")
    lines = [f"**{title}**", "", "| method | peak (MiB) | peak - SAM's / param bytes |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['peak_bytes'] / 2 ** 20:.1f} | "
                     f"{(r['peak_bytes'] - sam['peak_bytes']) / r['param_bytes']:+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", metavar="METHOD", help=argparse.SUPPRESS)
    parser.add_argument("--methods", nargs="*", default=[m.name for m in MAIN])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--live", action="store_true", help="MALLOC_MMAP_THRESHOLD_=65536: RSS follows live tensors")
    parser.add_argument("--json", type=Path)
    args, passed = parser.parse_args(argv), list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(one(args.one, args)))
        return []
    rows = []
    for name in args.methods:
        command = [sys.executable, __file__, "--one", name] + [a for a in passed if a not in args.methods
                                                               and a != "--methods"]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if args.live else None
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1]['peak_bytes'] / 2 ** 20:.1f} MiB", flush=True)
    params = rows[0]["param_bytes"]
    title = (f"DeBERTa-v2, hidden {args.hidden}, {args.layers} layers, vocab {args.vocab} "
             f"({params / 4 / 1e6:.1f}M parameters, {params / 2 ** 20:.1f} MiB), batch {args.batch_size} x "
             f"{args.length}, {args.steps} steps, {rows[0]['kind']}{' (--live)' if args.live else ''}; "
             f"{machine_line(torch.device(args.device), 'n/a')}")
    table = markdown(rows, title)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps({"table": table, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
