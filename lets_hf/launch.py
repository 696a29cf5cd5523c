"""How many processes the launcher was asked for, against how many run.

``accelerate launch --num_processes 2 --cpu script.py`` starts one process: without ``--multi_gpu``,
accelerate's simple launcher runs the script once and hands the number to nobody (it sets only
``MASTER_ADDR``/``MASTER_PORT``), so the run is silently a single-process one. The multi-process launchers
(``--multi_gpu``, ``torchrun``) set ``WORLD_SIZE``. The scripts compare the two and warn; the command that
gives N processes on a CPU is :data:`CPU_PROCESSES_COMMAND`.
"""

from __future__ import annotations

import os

CPU_PROCESSES_COMMAND = "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N"
NUM_PROCESSES_FLAGS = ("--num_processes", "--num-processes")


def parent_command_line() -> list[str]:
    """The command line of the process that started this one (Linux's ``/proc``), or ``[]`` where unreadable."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            return [arg.decode(errors="replace") for arg in handle.read().split(b"\0") if arg]
    except OSError:
        return []


def requested_processes(environ=None, parent: list[str] | None = None) -> int | None:
    """The number of processes asked for: ``WORLD_SIZE`` where a launcher set it, else the ``--num_processes N``
    of the ``accelerate launch`` command that started this process (its options, before the script's path);
    None when neither says (a plain ``python script.py``, or a number taken from accelerate's config file)."""
    environ = os.environ if environ is None else environ
    if environ.get("WORLD_SIZE"):
        return int(environ["WORLD_SIZE"])
    parent = parent_command_line() if parent is None else parent
    start = next((i for i, arg in enumerate(parent) if "accelerate" in os.path.basename(arg)), None)
    if start is None:
        return None
    for i, arg in enumerate(parent[start + 1 :], start + 1):
        if arg.endswith(".py"):  # the launched script: what follows are its own arguments
            return None
        name, _, value = arg.partition("=")
        if name in NUM_PROCESSES_FLAGS:
            value = value or (parent[i + 1] if i + 1 < len(parent) else "")
            return int(value) if value.isdigit() else None
    return None


def process_count_warning(actual: int, requested: int | None) -> str | None:
    """What to tell the user when the run has another number of processes than was asked for, else None."""
    if requested is None or requested == actual:
        return None
    return (
        f"{requested} processes were asked for, but {actual} runs: `accelerate launch --cpu` (or without "
        f"--multi_gpu) starts a single process whatever --num_processes says. For {requested} processes on a CPU: "
        f"`{CPU_PROCESSES_COMMAND.replace(' N', f' {requested}')} <script> ...`"
    )
