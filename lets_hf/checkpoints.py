"""Which checkpoint a run resumes from, and what a checkpoint holds.

``Trainer._save_checkpoint`` writes a ``checkpoint-N`` folder file by file, none atomically: the
weights, ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt``, ``rng_state.pth``, and
``trainer_state.json`` last. A process killed during a save leaves a folder with files missing,
empty or cut short, and the stock ``resume_from_checkpoint=True`` takes the highest-numbered folder
whatever it holds. Here a run resumes from the newest checkpoint whose files are all there and
complete (each file is read as far as its format shows that the write finished: a safetensors
header that covers the file, a torch zip archive's central directory, a JSON document), and says
which folders it passed over and why.

Resuming also needs the optimizer state to be the one the run builds: a LETS state (``base``,
``radius``) loaded into a stock optimizer, a learned radius into a fixed one, or Adam's moments
into SGD fail deep inside the first step. :func:`optimizer_state_mismatch` says before training
what the checkpoint holds and what the run asks for.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from transformers.trainer import (
    FSDP_MODEL_NAME,
    OPTIMIZER_NAME,
    OPTIMIZER_NAME_BIN,
    SCALER_NAME,
    SCHEDULER_NAME,
    TRAINER_STATE_NAME,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import (
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

from .radius import RADII, FixedRadius, LearnedRadius, RadiusController
from .saved_state import split_state_dict

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    WEIGHTS_INDEX_NAME,
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
)
OPTIMIZER_FILES = (OPTIMIZER_NAME, SCHEDULER_NAME)  # the stock Trainer loads both or neither
FSDP_OPTIMIZER_NAME = os.path.splitext(OPTIMIZER_NAME_BIN)[
    0
]  # accelerate's FSDP optimizer: optimizer.bin, optimizer_0/
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_RNG_STATE = re.compile(r"^rng_state(_\d+)?\.pth$")
# Parameter-group flags torch fills in itself when it loads an older state, so they tell no optimizer from another.
_IMPLEMENTATION_FLAGS = {
    "params",
    "initial_lr",
    "foreach",
    "fused",
    "capturable",
    "differentiable",
    "maximize",
    "decoupled_weight_decay",
}
_TORCH_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "RMSprop", "Rprop")


# -- is a checkpoint complete? ---------------------------------------------------------------------
def file_problem(path: str) -> str | None:
    """Why the file at ``path`` cannot be loaded (missing, empty, cut short), or None when it is whole."""
    if not os.path.isfile(path):
        return "missing"
    if os.path.getsize(path) == 0:
        return "empty (0 bytes)"
    name = os.path.basename(path)
    try:
        if name.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, "pt"):
                pass
        elif name.endswith(".json"):
            with open(path) as handle:
                json.load(handle)
        elif not zipfile.is_zipfile(path):  # torch.save's archive: its central directory is written last
            return "cut short (no zip central directory: the write did not finish)"
    except Exception as error:  # noqa: BLE001 (every reader's own error means: not loadable)
        return f"not loadable ({type(error).__name__}: {error})"
    return None


def fsdp_saved(folder: str, name: str) -> bool:
    """Whether accelerate's FSDP save of ``name`` (the model's or the optimizer's) is in ``folder``: the full
    state dict ``<name>.bin`` whole, or the sharded one, ``<name>_0/``, whose ``.metadata`` (written last) is there."""
    return file_problem(os.path.join(folder, f"{name}.bin")) is None or os.path.isfile(
        os.path.join(folder, f"{name}_0", ".metadata")
    )


def _weights_problems(folder: str) -> list[str]:
    present = [name for name in WEIGHT_FILES if os.path.isfile(os.path.join(folder, name))]
    if not present and fsdp_saved(folder, FSDP_MODEL_NAME):
        return []
    if not present:
        return [f"no weights ({' or '.join(WEIGHT_FILES[:2])} missing)"]
    files = list(present)
    for index in (SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME):
        if index in present and file_problem(os.path.join(folder, index)) is None:
            with open(os.path.join(folder, index)) as handle:
                files += sorted(set(json.load(handle).get("weight_map", {}).values()))
    return [f"{name}: {problem}" for name in files if (problem := file_problem(os.path.join(folder, name))) is not None]


def missing_optimizer_files(folder: str) -> list[str]:
    """The optimizer/scheduler files the folder lacks (without them the optimizer's state restarts)."""
    return [
        name
        for name in OPTIMIZER_FILES
        if not os.path.isfile(os.path.join(folder, name))
        and not (name == OPTIMIZER_NAME and fsdp_saved(folder, FSDP_OPTIMIZER_NAME))
    ]


def checkpoint_problems(folder: str, with_optimizer: bool = True) -> list[str]:
    """What keeps ``folder`` from being resumed exactly; empty when the checkpoint is complete.

    The trainer state, the weights and every optimizer, scheduler, scaler and RNG file present must
    load; ``with_optimizer`` also requires the optimizer and scheduler files to be there.
    """
    if not os.path.isdir(folder):
        return ["not a folder"]
    problems = _weights_problems(folder)
    state = file_problem(os.path.join(folder, TRAINER_STATE_NAME))
    if state is not None:
        problems.append(f"{TRAINER_STATE_NAME}: {state}")
    others = [name for name in os.listdir(folder) if name in OPTIMIZER_FILES + (SCALER_NAME,) or _RNG_STATE.match(name)]
    problems += [
        f"{name}: {problem}"
        for name in sorted(others)
        if (problem := file_problem(os.path.join(folder, name))) is not None
    ]
    if with_optimizer:
        problems += [f"{name}: missing" for name in missing_optimizer_files(folder)]
    return problems


def checkpoint_folders(output_dir: str) -> list[str]:
    """The ``checkpoint-N`` folders in ``output_dir``, newest (highest N) first."""
    if not os.path.isdir(output_dir):
        return []
    found = [
        (int(match.group(1)), name)
        for name in os.listdir(output_dir)
        if (match := _CHECKPOINT.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    ]
    return [os.path.join(output_dir, name) for _, name in sorted(found, reverse=True)]


def newest_complete_checkpoint(output_dir: str, with_optimizer: bool = True) -> str | None:
    """The newest checkpoint in ``output_dir`` with no :func:`checkpoint_problems`; None if there is none.

    Each newer folder passed over is named in a warning with its problems (a save cut short by a
    kill leaves such a folder). Raises ValueError when folders exist but none is complete.
    """
    skipped = []
    for folder in checkpoint_folders(output_dir):
        problems = checkpoint_problems(folder, with_optimizer)
        if not problems:
            return folder
        logger.warning("not resuming from %s, it is incomplete (a save cut short?): %s", folder, "; ".join(problems))
        skipped.append(f"{folder}: {'; '.join(problems)}")
    if skipped:
        raise ValueError(
            f"no complete checkpoint in {output_dir} to resume from:\n  "
            + "\n  ".join(skipped)
            + "\nPass resume_from_checkpoint=<folder> to take one of them anyway, or start afresh."
        )
    return None


def resolve_resume_checkpoint(resume_from_checkpoint, output_dir: str, with_optimizer: bool = True) -> str | None:
    """``Trainer.train``'s ``resume_from_checkpoint`` made a folder: ``True`` becomes the newest complete
    checkpoint of ``output_dir``; a folder given by name must have loadable weights and trainer state
    (a missing optimizer state is allowed there: the trainer warns what restarts). ValueError otherwise."""
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    if resume_from_checkpoint is True:
        folder = newest_complete_checkpoint(output_dir, with_optimizer)
        if folder is None:  # Trainer's message, then ours
            raise ValueError(
                f"No valid checkpoint found in output directory ({output_dir}): resume_from_checkpoint=True, but it "
                "holds no checkpoint-* folder"
            )
        return folder
    problems = checkpoint_problems(str(resume_from_checkpoint), with_optimizer=False)
    if problems:  # Trainer's message, then ours
        raise ValueError(
            f"Can't find a valid checkpoint at {resume_from_checkpoint}: {'; '.join(problems)}."
            " Give an earlier checkpoint, or resume_from_checkpoint=True for the newest complete one."
        )
    return str(resume_from_checkpoint)


def checkpoint_to_resume(args, overwrite: bool, finished_file: str) -> str | None:
    """The checkpoint a script's run resumes from, for scripts with ``--overwrite_output_dir``.

    ``args`` is the run's ``TrainingArguments``. An ``args.output_dir`` holding ``finished_file`` (what a
    complete run writes last) is a finished run: ValueError, unless ``overwrite``. Otherwise a given
    ``args.resume_from_checkpoint`` is resolved by :func:`resolve_resume_checkpoint`; with none given, an
    unfinished run resumes from the newest complete checkpoint (None: start afresh), and ``overwrite``
    starts afresh whatever is there. The optimizer files are required unless ``args.save_only_model``.
    """
    output_dir, given, with_optimizer = args.output_dir, args.resume_from_checkpoint, not args.save_only_model
    if not overwrite and os.path.isfile(os.path.join(output_dir, finished_file)):
        raise ValueError(
            f"{output_dir} already holds a finished run ({finished_file}); pass "
            "--overwrite_output_dir to replace it, or choose another --output_dir"
        )
    if given is not None or overwrite:
        return resolve_resume_checkpoint(given, output_dir, with_optimizer)
    return newest_complete_checkpoint(output_dir, with_optimizer)


def last_logged(folder: str, key: str) -> float | None:
    """The last value of ``key`` in the checkpoint's ``trainer_state.json`` log history (None if never logged)."""
    with open(os.path.join(folder, TRAINER_STATE_NAME)) as handle:
        history = json.load(handle).get("log_history", [])
    return next((row[key] for row in reversed(history) if key in row), None)


# -- does the optimizer state fit the run? ---------------------------------------------------------
def _group_settings(state: Mapping[str, Any]) -> frozenset:
    groups = state.get("param_groups") or [{}]
    return frozenset(groups[0]) - _IMPLEMENTATION_FLAGS


def _torch_optimizer_names(settings: frozenset) -> list[str]:
    """The ``torch.optim`` classes whose parameter groups carry exactly these settings."""
    probe = [torch.nn.Parameter(torch.zeros(1))]
    return [
        name
        for name in _TORCH_OPTIMIZERS
        if _group_settings({"param_groups": [getattr(torch.optim, name)(probe).defaults]}) == settings
    ]


def _describe_base(state: Mapping[str, Any]) -> str:
    settings = _group_settings(state)
    names = _torch_optimizer_names(settings)
    what = " or ".join(f"torch.optim.{name}" for name in names) if names else "an optimizer"
    return f"{what} (settings {', '.join(sorted(settings))})"


def _default_controllers() -> list[RadiusController]:
    """One controller of each registered kind (:data:`lets_hf.radius.RADII`) with its default settings (a kind
    without defaults for every setting is passed over)."""
    built = []
    for controller in RADII.values():
        try:
            built.append(controller())
        except TypeError:
            continue
    return built


def _describe_radius(state: Mapping[str, Any]) -> str:
    """The kind of a saved radius state (the registered controller whose ``state_dict`` has its keys) and, where
    that controller's ``load_state_dict`` takes it, its ``rho``. Only the controllers' public interface is used."""
    for radius in _default_controllers():
        if set(radius.state_dict()) != set(state):
            continue
        try:
            radius.load_state_dict(dict(state))
            value = f"rho={radius.rho:.4g}"
        except (ValueError, KeyError, TypeError) as error:
            value = f"not loadable: {error}"
        if isinstance(radius, LearnedRadius):
            return f"a learned radius ({radius.name.upper()}, {value})"
        return f"a fixed radius ({value})" if isinstance(radius, FixedRadius) else f"a {radius.name} radius ({value})"
    return f"a radius schedule ({', '.join(sorted(map(str, state))) or 'no state'})"


def describe_optimizer_state(state: Any) -> str:
    """In words: a SAM-family state (its radius, its base optimizer) or a stock optimizer's."""
    if isinstance(state, Mapping) and {"base", "radius"} <= set(state):
        return f"a SAM-family state with {_describe_radius(state['radius'])} over {_describe_base(state['base'])}"
    if isinstance(state, Mapping) and {"state", "param_groups"} <= set(state):
        return f"a stock optimizer's state: {_describe_base(state)}"
    keys = f" with keys {sorted(map(str, state))}" if isinstance(state, Mapping) else ""
    return f"no optimizer state (a {type(state).__name__}{keys})"


def _layout(state: Any):
    """What must agree between a saved and a built optimizer state: its form and the base settings."""
    if isinstance(state, Mapping) and {"base", "radius"} <= set(state):
        return "sam", _group_settings(state["base"])
    if isinstance(state, Mapping) and {"state", "param_groups"} <= set(state):
        return "stock", _group_settings(state)
    return None


def optimizer_state_mismatch(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """Why ``saved`` (a loaded ``optimizer.pt``) cannot be loaded into ``optimizer``, or None when it fits.

    ``optimizer`` is the innermost one the run built: a :class:`~lets_hf.optimizer.LETSOptimizer`
    or a stock torch optimizer. Both must be SAM-family states or both stock ones, the base
    optimizer's parameter-group settings must be the same, and the saved radius state must have the keys of the
    run's controller's ``state_dict`` (a learned radius meets a learned one, a fixed one a fixed one; its values
    are the controller's ``load_state_dict``'s to check).
    """
    current = _sections(optimizer.state_dict())
    if _layout(saved) is not None and _layout(saved) == _layout(current):
        if _layout(saved)[0] == "stock" or set(saved["radius"]) == set(current["radius"]):
            return None
    return f"it holds {describe_optimizer_state(saved)}; this run builds {describe_optimizer_state(current)}"


def dropped_sam_state(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """What a stock ``optimizer`` leaves behind when it resumes from a SAM-family ``saved`` state over the same base
    settings (it loads the base optimizer's state, the moments too, and drops the rest), or None when that is not the
    case."""
    current = _sections(optimizer.state_dict())
    if _layout(saved) is None or _layout(current) != ("stock", _layout(saved)[1]) or _layout(saved)[0] != "sam":
        return None
    return _describe_radius(saved["radius"])


def load_optimizer_state(folder: str) -> dict[str, Any]:
    """``optimizer.pt`` memory-mapped (tensors are read only when used), for :func:`optimizer_state_mismatch`."""
    return _sections(torch.load(os.path.join(folder, OPTIMIZER_NAME), map_location="cpu", weights_only=True, mmap=True))


def _sections(state: Any) -> Any:
    """A LETS optimizer state as the checks above read it, ``{"base": ..., "radius": ..., ...}``
    (:func:`lets_hf.optimizer.split_state_dict`); any other state as it is."""
    try:
        base, lets = split_state_dict(state)
    except ValueError:
        return state
    return state if lets is None else {"base": base, **lets}
