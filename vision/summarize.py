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
import statistics
import sys
from typing import Dict, List, Sequence, Tuple

IGNORED_FIELDS = {"seed", "output_dir", "data_dir", "resume", "download", "num_workers", "save_every",
                  "keep_checkpoints"}


def find_results(root: pathlib.Path) -> List[dict]:
    """Every ``results.json`` under ``root``."""
    found = [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]
    if not found:
        raise ValueError(f"no results.json under {root}")
    return found


def _key(config: dict, fields: Sequence[str]) -> Tuple:
    missing = [f for f in fields if f not in config]
    if missing:
        raise ValueError(f"unknown configuration field(s) {missing}; choose from {sorted(config)}")
    return tuple(config[f] for f in fields)


def group_runs(results: List[dict], rows: Sequence[str], cols: Sequence[str],
               metric: str) -> Dict[Tuple, Dict[Tuple, List[float]]]:
    """``{row key: {column key: [metric of each seed]}}``, checking that each cell holds one setup."""
    table: Dict[Tuple, Dict[Tuple, List[float]]] = {}
    setups: Dict[Tuple, dict] = {}
    for result in results:
        config = result["config"]
        row, col = _key(config, rows), _key(config, cols)
        setup = {k: v for k, v in config.items() if k not in IGNORED_FIELDS}
        if setups.setdefault((row, col), setup) != setup:
            diff = sorted(k for k in setup if setup[k] != setups[(row, col)].get(k))
            raise ValueError(f"cell {row} x {col} mixes runs that differ in {diff}; add them to --rows or --cols")
        table.setdefault(row, {}).setdefault(col, []).append(100 * result[metric])
    return table


def format_cell(values: List[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def markdown_table(table: Dict[Tuple, Dict[Tuple, List[float]]], rows: Sequence[str], cols: Sequence[str]) -> str:
    columns = sorted({c for cells in table.values() for c in cells}, key=str)
    header = [" / ".join(rows)] + ["/".join(map(str, c)) for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in sorted(table, key=str):
        cells = [format_cell(table[row].get(c, [])) for c in columns]
        lines.append("| " + " | ".join([" / ".join(map(str, row))] + cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description="Tables (mean ± std over seeds, Markdown) from vision/train.py runs.")
    parser.add_argument("root", type=pathlib.Path, help="a folder searched recursively for results.json")
    parser.add_argument("--rows", default="dataset,model", help="comma-separated configuration fields")
    parser.add_argument("--cols", default="method", help="comma-separated configuration fields")
    parser.add_argument("--metric", choices=("final_test_acc", "best_test_acc"), default="final_test_acc")
    parser.add_argument("--out", type=pathlib.Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    rows, cols = args.rows.split(","), args.cols.split(",")
    text = markdown_table(group_runs(find_results(args.root), rows, cols, args.metric), rows, cols)
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return text


if __name__ == "__main__":
    main()
