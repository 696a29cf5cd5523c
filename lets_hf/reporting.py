"""How runs are reported: the methods' order, mean ± std over seeds, Markdown tables.

The experiments' summaries (``glue/summarize.py``, ``translation/summarize.py``,
``vision/summarize.py``, ``benchmarks/digits_noisy.py``) format their tables here. A method is named
by :func:`lets_hf.methods.method_label` (``ERM``, ``SAM``, ``LETS-ASAM``, ...); rows follow the
paper's order: ERM, then each variant (in :data:`~lets_hf.perturbation.PERTURBATIONS`' order) before
its LETS twin. A spread is the sample standard deviation (``n - 1``) over seeds.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

from .methods import LEARNED_PREFIX, method_label
from .perturbation import PERTURBATIONS

# ERM, SAM, LETS-SAM, ASAM, LETS-ASAM, GSAM, ...
METHOD_ORDER = (
    method_label("erm"),
    *(method_label(prefix + name) for name in PERTURBATIONS for prefix in ("", LEARNED_PREFIX)),
)
# a run label's starting radius, as glue/run_glue.py (``rho0=``) and the benchmarks (``rho_0=``) write it
_START = re.compile(r"rho_?0=[^,)]*(, )?")


def method_rank(label: str) -> tuple[int, str]:
    """Sort key of a row whose label starts with a method name (``"LETS-SAM (rho0=0.1)"``): the paper's order."""
    method = label.split(" ", 1)[0]
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), label)


def without_start_radius(label: str) -> str:
    """A run label without its starting radius, the rule it learns with: ``LETS-SAM (rho0=0.1, robust)``
    and ``LETS-SAM robust (rho_0=0.01)`` become ``LETS-SAM (robust)`` and ``LETS-SAM robust``."""
    return _START.sub("", label).replace(" ()", "").replace(", )", ")")


def mean_std(values: Sequence[float], fmt: str = ".1f", std_fmt: str | None = None) -> str:
    """``"85.3 ± 0.4"``: the mean and the sample std (std in ``std_fmt``, default ``fmt``); one value alone."""
    if not values:
        raise ValueError("mean_std: no values")
    mean = format(statistics.mean(values), fmt)
    return mean if len(values) == 1 else f"{mean} ± {format(statistics.stdev(values), std_fmt or fmt)}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (no trailing newline); every row has one cell per column of ``header``."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"markdown_table: a row has {len(row)} cells for {len(header)} columns: {list(row)}")
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(row) + " |" for row in rows]
    )
