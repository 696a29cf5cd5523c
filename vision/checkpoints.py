"""What a run leaves on disk, and how ``--resume`` finds its way back.

``output_dir/``
  ``config.json``                the run's configuration
  ``log.jsonl``                  one JSON record per epoch (train/test loss and accuracy, rho, the gap)
  ``checkpoints/epoch_NNNN/``    accelerate's ``save_state`` (the weights as safetensors, every
                                 process's RNG states) and ``run_state.pt``: the optimizer (its
                                 moments and rho with its Adam state), the LR schedule, the
                                 validation stream's position and the epoch, written last (its
                                 presence marks a complete checkpoint)
  ``model.safetensors``          the final weights; ``results.json`` the final numbers

No checkpoint runs code when it is read. ``run_state.pt`` holds the objects' ``state_dict()``s,
tensors and plain values only, and is read with ``torch.load(weights_only=True)``, which refuses
anything else. (accelerate's ``register_for_checkpointing`` would write each object to a
``custom_checkpoint_N.pkl`` and read it back with ``weights_only=False``, a full unpickler that
runs whatever a planted file asks; a checkpoint folder holding such a file is refused.)
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import RNG_STATE_NAME, load

from vision.config import ConfigError

CHECKPOINT_PREFIX = "epoch_"
RUN_STATE = "run_state.pt"
PICKLED_STATE = "custom_checkpoint_*.pkl"  # what register_for_checkpointing writes: never read here


class RunState:
    """The loop's own counters, checkpointed with the rest (``register_for_checkpointing``)."""

    def __init__(self):
        self.epoch = 0
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


def checkpoint_dir(output_dir: pathlib.Path, epoch: int) -> pathlib.Path:
    return output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{epoch:04d}"


def list_checkpoints(output_dir: pathlib.Path) -> list[pathlib.Path]:
    """Complete checkpoints (those with their run state written), oldest first."""
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [d for d in root.iterdir() if d.name.startswith(CHECKPOINT_PREFIX) and (d / RUN_STATE).is_file()]
    return sorted(found, key=lambda d: int(d.name[len(CHECKPOINT_PREFIX) :]))


def latest_checkpoint(output_dir: pathlib.Path) -> pathlib.Path | None:
    """The newest complete checkpoint; a ConfigError if any checkpoint folder holds a pickled object."""
    root = output_dir / "checkpoints"
    pickled = sorted(root.glob(f"{CHECKPOINT_PREFIX}*/{PICKLED_STATE}")) if root.is_dir() else []
    if pickled:
        raise ConfigError(
            f"--output_dir {output_dir}: {pickled[0]} is a pickled object, which can run code when it is "
            f"read; this script never writes or reads one (its state is in {RUN_STATE}, tensors and "
            f"plain values only). A checkpoint of an earlier version, or a planted file: it is not "
            f"loaded. Remove it to resume from the folder's {RUN_STATE}, or start a new --output_dir"
        )
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_run_state(accelerator: Accelerator, directory: pathlib.Path, objects: dict[str, Any]) -> None:
    """Write every object's ``state_dict()`` to ``directory/run_state.pt`` (main process; atomic: it marks the
    checkpoint complete). Raises if a state holds anything but tensors and plain values."""
    if not accelerator.is_main_process:
        return
    partial = directory / f"{RUN_STATE}.partial"
    torch.save({name: obj.state_dict() for name, obj in objects.items()}, partial)
    torch.load(partial, weights_only=True)  # what cannot be read back without running code is not written
    os.replace(partial, directory / RUN_STATE)


def load_run_state(directory: pathlib.Path, objects: dict[str, Any]) -> None:
    """Restore every object from ``directory/run_state.pt``, read with ``weights_only=True`` (no code runs)."""
    state = torch.load(directory / RUN_STATE, map_location="cpu", weights_only=True)
    held = sorted(state) if isinstance(state, dict) else repr(state)
    if held != sorted(objects):
        raise ConfigError(
            f"{directory / RUN_STATE} holds the states {held}, this run has {sorted(objects)}: resume "
            f"with the options the run was started with"
        )
    for name, obj in objects.items():
        obj.load_state_dict(state[name])


def unrestored_rng_state(checkpoint: pathlib.Path, process_index: int) -> str | None:
    """Why ``accelerator.load_state(checkpoint)`` did not restore this process's random number generators, or
    None when it did. accelerate only logs "Could not load random states" at info level and goes on when
    ``random_states_<rank>.pkl`` is missing or damaged; called right after ``load_state``, this reads the file as
    accelerate does (``weights_only=True``) and checks that torch's CPU generator now holds its state."""
    path = checkpoint / f"{RNG_STATE_NAME}_{process_index}.pkl"
    try:
        saved = load(path, map_location="cpu")["torch_manual_seed"]
    except Exception as error:  # what load_state swallowed, whatever it was
        return f"{path} could not be read ({type(error).__name__}: {error})"
    if not torch.equal(torch.get_rng_state(), saved):
        return f"torch's generator does not hold the state saved in {path}"
    return None


def prune_checkpoints(output_dir: pathlib.Path, keep: int) -> None:
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old)


class RunLog:
    """``log.jsonl``: one record per epoch, appended as the run goes."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate(self, epochs: int) -> None:
        """Keep the records of the first ``epochs`` epochs (a resumed run rewrites what came after)."""
        kept = [r for r in self.records() if r["epoch"] <= epochs]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
