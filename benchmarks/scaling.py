"""How the step-time ratios SAM / ERM and LETS / SAM change with the model's size (DeBERTa-v2, 1M to 100M).

Run: python benchmarks/scaling.py [--sizes 1M 3M 10M 30M 100M] [--rounds 4] [--steps 1] \
     [--json out.json] [--plot out.png]

For each size, :func:`bench_steps.measure` times ERM, SAM and LETS-SAM (paper rule, ``next``)
interleaved on batches of the same shape (default 4 x 64 tokens: a fixed batch, so that the
per-step elementwise work of the optimizers weighs more as the model grows; the passes scale
with the non-embedding parameters times the tokens). The ratios are paired per round, with
bootstrap 95% intervals (:mod:`timing`). The plot shows the ratios against the parameter count.
"""

from __future__ import annotations

import argparse
import json
import textwrap
import time
from pathlib import Path

import torch

from benchmarks.bench_steps import MAIN, deberta_workload, measure, summary
from benchmarks.timing import machine_line, ordering_warnings
from experiment_utils.tiny_runs import deberta_config

SIZES = {  # name: (hidden, layers, vocab)
    "1M": (128, 2, 4000),
    "3M": (256, 2, 4000),
    "10M": (384, 4, 8000),
    "30M": (512, 6, 16000),
    "100M": (768, 12, 8000),
    "tiny": (32, 1, 100),
}
NEXT_BATCH_VALIDATION = "LETS-SAM (robust, validation: next batch)"
METHODS = [m for m in MAIN if m.name in ("ERM", "SAM", "LETS-SAM (paper)", "LETS-SAM (next)", NEXT_BATCH_VALIDATION)]
RATIOS = [("SAM", "ERM"), ("LETS-SAM (paper)", "SAM"), ("LETS-SAM (next)", "SAM"), (NEXT_BATCH_VALIDATION, "SAM")]


def measure_size(name: str, device, rounds: int, steps: int, batch_size: int, length: int, clock_kind: str) -> dict:
    hidden, layers, vocab = SIZES[name]
    workload = deberta_workload(
        device, deberta_config(hidden, layers, vocab), batch_size=batch_size, length=length, cycle=max(steps, 2)
    )
    started = time.perf_counter()
    result = measure(workload, METHODS, device, rounds, steps, clock_kind)
    rows = {r["method"]: r for r in summary(result)}
    ratios = {f"{a} / {b}": list(rows[a][f"over_{b}"]) for a, b in RATIOS}
    return {
        "size": name,
        "params": result["param_bytes"] // 4,
        "ms": {k: r["ms"] for k, r in rows.items()},
        "ratios": ratios,
        "load": result["load"].as_dict(),
        "load_text": result["load"].describe(),
        "warnings": ordering_warnings(result["times"], result["passes"], result["families"]),
        "seconds": time.perf_counter() - started,
    }


def markdown(records) -> str:
    lines = [
        "| size | parameters | ERM ms | SAM ms | "
        + " | ".join(f"{a} / {b} [95% CI]" for a, b in RATIOS)
        + " | background load |",
        "|---|---|---|---|" + "---|" * len(RATIOS) + "---|",
    ]
    for r in records:
        cells = " | ".join("{:.3f} [{:.3f}, {:.3f}]".format(*r["ratios"][f"{a} / {b}"]) for a, b in RATIOS)
        lines.append(
            f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['ms']['ERM']:.1f} | {r['ms']['SAM']:.1f} | "
            f"{cells} | "
            f"{r['load']['background_runnable_mean']:.2f}{'' if r['load']['quiet'] else ' (not quiet)'} |"
        )
    return "\n".join(lines + [w for r in records for w in r["warnings"]])


def plot(records, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    params = [r["params"] for r in records]
    for key in records[0]["ratios"]:
        median, low, high = zip(*(r["ratios"][key] for r in records))
        errors = [[m - lo for m, lo in zip(median, low)], [h - m for m, h in zip(median, high)]]
        ax.errorbar(params, median, yerr=errors, marker="o", capsize=3, label=key)
    for floor in (1.0, 1.5, 2.0):
        ax.axhline(floor, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("step-time ratio (paired median, 95% CI)")
    ax.set_title("\n".join(textwrap.wrap(title, 95)), fontsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside: the lines use all heights
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["1M", "3M", "10M", "30M", "100M"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock_kind = args.clock or ("wall" if device.type == "cuda" else "cpu")
    header = (
        f"{machine_line(device, clock_kind)}; batches {args.batch_size} x {args.length} tokens, AdamW; "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    print(header, flush=True)
    records = []
    for name in args.sizes:
        records.append(measure_size(name, device, args.rounds, args.steps, args.batch_size, args.length, clock_kind))
        print(
            f"{name}: {records[-1]['params'] / 1e6:.1f}M parameters, {records[-1]['seconds']:.0f} s, "
            f"{records[-1]['load_text']}",
            flush=True,
        )
    table = markdown(records)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps({"machine": header, "table": table, "records": records}, indent=1))
    if args.plot:
        plot(records, args.plot, header)
    return records


if __name__ == "__main__":
    main()
