"""Interleaved step timing with a spread, and what the machine was doing meanwhile.

A shared machine makes one block's time unreliable, but neighbouring blocks see about the same
load. So every method runs one block per round, in a shuffled order per round, and the ratio of
two methods is taken per round (paired) before its median: ``r_i = t_A,i / t_B,i``. The spread
of a ratio is a bootstrap 95% interval of that median (rounds resampled with replacement); the
spread of a time is its interquartile range.

On CPU the clock is the process's CPU time (``time.process_time``) by default: time spent
descheduled while another job runs is not counted, which removes most of the noise of a shared
machine with one compute thread (with more threads, idle OpenMP threads spinning would count).
Cache and memory-bandwidth contention still shows. On CUDA the clock is the wall clock between
``torch.cuda.synchronize`` calls.

The load is read from ``/proc/loadavg``: the 1-minute load average at the start and end of a
table, and before every block the number of runnable tasks other than this one
(``background``), whose mean says how busy the machine was while the table was taken. Only that mean
decides whether a table was quiet: the load average trails by minutes and counts a benchmark that
ran just before in the same chain (or this one), which is not load on this table.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

QUIET_LOAD = 0.5  # above this mean background load, a table is marked for re-recording on a quiet machine


def read_load() -> tuple[float, int]:
    """``(1-minute load average, runnable tasks other than this one)``; ``(nan, 0)`` off Linux."""
    try:
        fields = open("/proc/loadavg").read().split()
    except OSError:
        return float("nan"), 0
    return float(fields[0]), max(int(fields[3].split("/")[0]) - 1, 0)


@dataclass
class LoadRecord:
    """What else ran while a table was measured."""

    start: float = float("nan")
    end: float = float("nan")
    background: list[int] = field(default_factory=list)

    def sample(self) -> None:
        self.background.append(read_load()[1])

    @property
    def mean_background(self) -> float:
        return statistics.fmean(self.background) if self.background else float("nan")

    @property
    def quiet(self) -> bool:
        """Whether other runnable tasks averaged at most ``QUIET_LOAD`` over the table's samples."""
        return self.mean_background <= QUIET_LOAD

    def as_dict(self) -> dict:
        return {
            "loadavg_1min_start": self.start,
            "loadavg_1min_end": self.end,
            "background_runnable_mean": self.mean_background,
            "quiet": self.quiet,
        }

    def describe(self) -> str:
        text = (
            f"load average (1 min) {self.start:.2f} at the start, {self.end:.2f} at the end; "
            f"other runnable tasks per block {self.mean_background:.2f} on average"
        )
        return text if self.quiet else text + " -- to be re-recorded on a quiet machine"


def clock(device: torch.device, kind: str) -> Callable[[], float]:
    """The timer: ``cpu`` (process CPU time) or ``wall``; CUDA blocks are synchronised either way."""
    if kind not in ("cpu", "wall"):
        raise ValueError(f"clock must be 'cpu' or 'wall', got {kind!r}")
    read = time.process_time if kind == "cpu" else time.perf_counter
    if device.type != "cuda":
        return read

    def synchronised() -> float:
        torch.cuda.synchronize(device)
        return read()

    return synchronised


def interleaved(
    blocks: dict[str, Callable[[], None]],
    rounds: int,
    now: Callable[[], float],
    seed: int = 0,
    load: LoadRecord | None = None,
) -> dict[str, list[float]]:
    """Seconds per block of each named block function: a warm-up round, then ``rounds`` rounds with
    every block once, in a fresh random order per round. ``load`` samples the machine at every block."""
    order = list(blocks)
    for name in order:  # warm-up: allocations, caches, lazy initialisation
        blocks[name]()
    times: dict[str, list[float]] = {name: [] for name in order}
    shuffle = random.Random(seed)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for name in order:
            if load is not None:
                load.sample()
            start = now()
            blocks[name]()
            times[name].append(now() - start)
    return times


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)``; a single value gives itself three times."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def paired_ratio(
    a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Median of the per-round ratios ``a_i / b_i`` and a bootstrap 95% interval of that median."""
    ratios = [x / y for x, y in zip(a, b)]
    median = statistics.median(ratios)
    if len(ratios) < 2:
        return median, median, median
    draw = random.Random(seed)
    medians = sorted(statistics.median(draw.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return median, medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def ordering_warnings(
    times: dict[str, list[float]], passes: dict[str, float], families: dict[str, str] | None = None
) -> list[str]:
    """Pairs where a method with more forward+backward passes per step measured faster (paired median
    ratio below 1) than one with fewer: the table's noise is larger than that difference. With
    ``families``, only methods of one family (the same per-pass work) are compared, and each with
    ``"erm"``."""
    families = families or {}
    comparable = lambda a, b: "erm" in (families.get(a), families.get(b)) or families.get(a) == families.get(b)
    warnings = []
    for slow in times:
        for fast in times:
            if passes[slow] > passes[fast] and comparable(slow, fast):
                ratio = statistics.median(x / y for x, y in zip(times[slow], times[fast]))
                if ratio < 1:
                    warnings.append(
                        f"WARNING: {slow} ({passes[slow]:g} passes) measured faster than {fast} "
                        f"({passes[fast]:g} passes): ratio {ratio:.3f}"
                    )
    return warnings


def machine_line(device: torch.device, clock_kind: str) -> str:
    import platform

    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{what}; {torch.get_num_threads()} torch threads; torch {torch.__version__}; clock: {clock_kind}"
