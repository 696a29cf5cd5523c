"""What a run leaves on disk, and how ``--resume`` finds its way back.

``output_dir/``
  ``config.json``                the run's configuration
  ``log.jsonl``                  one JSON record per epoch (train/test loss and accuracy, rho, the gap)
  ``checkpoints/epoch_NNNN/``    accelerate's ``save_state``: weights, the optimizer (its moments and
                                 rho with its Adam state), the LR schedule, the validation stream's
                                 position, the epoch, and every process's RNG states
  ``model.safetensors``          the final weights; ``results.json`` the final numbers
"""
from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any, Dict, List, Optional

CHECKPOINT_PREFIX = "epoch_"


class RunState:
    """The loop's own counters, checkpointed with the rest (``register_for_checkpointing``)."""

    def __init__(self):
        self.epoch = 0
        self.step = 0

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


def checkpoint_dir(output_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    return output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{epoch:04d}"


def list_checkpoints(output_dir: pathlib.Path) -> List[pathlib.Path]:
    """Complete checkpoints (those with their run state written), oldest first."""
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir() if d.name.startswith(CHECKPOINT_PREFIX) and any(d.glob("custom_checkpoint_*"))]
    return sorted(found, key=lambda d: int(d.name[len(CHECKPOINT_PREFIX):]))


def latest_checkpoint(output_dir: pathlib.Path) -> Optional[pathlib.Path]:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: pathlib.Path, keep: int) -> None:
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old)


class RunLog:
    """``log.jsonl``: one record per epoch, appended as the run goes."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def records(self) -> List[Dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs (a resumed run rewrites what came after)."""
        kept = [r for r in self.records() if r["epoch"] <= epochs]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: Dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
