"""A folder of ``vision/train.py`` runs as the paper's tables: test accuracy (%), mean +- standard
deviation over seeds, in Markdown.

Runs are grouped by configuration fields: ``--rows`` (default ``dataset,model``) and ``--cols``
(default ``method``); every other field but the seed (and the output folder) must agree within a
cell, else the cell would mix setups and the tool stops. The tables of the paper:

    python vision/summarize.py runs/vision/cifar          # Tables 1-2: dataset,model x method
    python vision/summarize.py runs/vision/noise --rows model,label_noise
    python vision/summarize.py runs/vision/rho0 --rows rho            # Table 5
    python vision/summarize.py runs/vision/objective --rows lets_objective --cols method   # Table 6

The standard deviation is the sample one (n - 1); a cell with one run shows its value alone.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from lets_hf.methods import method_label
from lets_hf.reporting import markdown_table, mean_std, method_rank

IGNORED_FIELDS = {
    "seed",
    "output_dir",
    "data_dir",
    "resume",
    "download",
    "num_workers",
    "save_every",
    "keep_checkpoints",
}


def find_results(root: pathlib.Path) -> list[dict]:
    """Every ``results.json`` under ``root``."""
    found = [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]
    if not found:
        raise ValueError(f"no results.json under {root}")
    return found


def _key(config: dict, fields: Sequence[str]) -> tuple:
    missing = [f for f in fields if f not in config]
    if missing:
        raise ValueError(f"unknown configuration field(s) {missing}; choose from {sorted(config)}")
    return tuple(config[f] for f in fields)


def group_runs(
    results: list[dict], rows: Sequence[str], cols: Sequence[str], metric: str
) -> dict[tuple, dict[tuple, list[float]]]:
    """``{row key: {column key: [metric of each seed]}}``, checking that each cell holds one setup."""
    table: dict[tuple, dict[tuple, list[float]]] = {}
    setups: dict[tuple, dict] = {}
    for result in results:
        config = result["config"]
        row, col = _key(config, rows), _key(config, cols)
        setup = {k: v for k, v in config.items() if k not in IGNORED_FIELDS}
        if setups.setdefault((row, col), setup) != setup:
            diff = sorted(k for k in setup if setup[k] != setups[(row, col)].get(k))
            raise ValueError(f"cell {row} x {col} mixes runs that differ in {diff}; add them to --rows or --cols")
        table.setdefault(row, {}).setdefault(col, []).append(100 * result[metric])
    return table


def _shown(field: str, value: Any) -> str:
    """A key's value in the table: a ``method`` by the paper's name (``lets_sam`` -> ``LETS-SAM``)."""
    return method_label(value) if field == "method" else str(value)


def _order(fields: Sequence[str]):
    """Sort key of a row or column key: methods in the paper's order, other values by their text."""
    return lambda key: tuple(method_rank(_shown(f, v)) if f == "method" else (0, str(v)) for f, v in zip(fields, key))


def summary_table(table: dict[tuple, dict[tuple, list[float]]], rows: Sequence[str], cols: Sequence[str]) -> str:
    """The Markdown table: one row per ``rows`` key, one column per ``cols`` key, mean ± std (``-``: no run)."""
    columns = sorted({c for cells in table.values() for c in cells}, key=_order(cols))
    header = [" / ".join(rows)] + ["/".join(_shown(f, v) for f, v in zip(cols, c)) for c in columns]
    lines = [
        [" / ".join(_shown(f, v) for f, v in zip(rows, row))]
        + [mean_std(table[row][c], ".2f") if table[row].get(c) else "-" for c in columns]
        for row in sorted(table, key=_order(rows))
    ]
    return markdown_table(header, lines) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description="Tables (mean ± std over seeds, Markdown) from vision/train.py runs.")
    parser.add_argument("root", type=pathlib.Path, help="a folder searched recursively for results.json")
    parser.add_argument("--rows", default="dataset,model", help="comma-separated configuration fields")
    parser.add_argument("--cols", default="method", help="comma-separated configuration fields")
    parser.add_argument("--metric", choices=("final_test_acc", "best_test_acc"), default="final_test_acc")
    parser.add_argument("--out", type=pathlib.Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    rows, cols = args.rows.split(","), args.cols.split(",")
    text = summary_table(group_runs(find_results(args.root), rows, cols, args.metric), rows, cols)
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return text


if __name__ == "__main__":
    main()
