#!/usr/bin/env python
"""Table 8 from a folder of runs: BLEU mean ± std over seeds per method, as Markdown.

    python translation/summarize.py runs/iwslt14 [--output runs/iwslt14/table8.md]

Every ``results.json`` under the folder (one per run, as ``run_translation.py`` writes them) is one
seed of one method. Runs are grouped by method and by data label, so a run trained on ``valid`` is
never averaged with the paper's protocol; the paper's own numbers stand in a column of their own.
The std is the sample standard deviation (n - 1) over seeds; with one seed it is left out.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from lets_hf.reporting import markdown_table, mean_std, method_rank

PAPER_TABLE8 = {"ERM": 34.60, "SAM": 34.70, "LETS-SAM": 34.85, "ASAM": 34.60, "LETS-ASAM": 34.72}


def load_runs(folder: str) -> list[dict]:
    """Every ``results.json`` under ``folder`` that holds a BLEU score."""
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(Path(folder).rglob("results.json"))]
    return [run for run in runs if run.get("bleu")]


def group_runs(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs keyed by ``(data label, method)``."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["data"]["label"], run["method"])].append(run)
    return groups


def table(runs: list[dict]) -> str:
    """The Markdown table: one row per (data, method), BLEU and final rho over seeds, the paper's BLEU."""
    rows = []
    ordered = sorted(group_runs(runs).items(), key=lambda item: (item[0][0], method_rank(item[0][1])))
    for (label, method), group in ordered:
        rhos = [run["rho_final"] for run in group if run.get("rho_final") is not None]
        seeds = ", ".join(str(run["seed"]) for run in group)
        bleu = mean_std([run["bleu"]["score"] for run in group], ".2f")
        rho = mean_std(rhos, ".4g") if rhos else "-"
        paper = "-" if method not in PAPER_TABLE8 else f"{PAPER_TABLE8[method]:.2f}"
        rows.append([label, method, seeds, bleu, rho, paper])
    header = ["data (train->scored)", "method", "seeds", "BLEU", "final rho", "paper's BLEU (Table 8, train->test)"]
    signatures = sorted({run["bleu"]["signature"] for run in runs})
    return "\n".join(
        [
            markdown_table(header, rows),
            "",
            "BLEU: sacrebleu " + "; ".join(signatures) + " (tokenized, lowercased, BPE removed)",
        ]
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder holding run folders (each with a results.json)")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    runs = load_runs(args.folder)
    if not runs:
        parser.error(f"no results.json with a BLEU score under {args.folder}")
    markdown = table(runs)
    if args.output:
        Path(args.output).write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    return markdown


if __name__ == "__main__":
    main()
