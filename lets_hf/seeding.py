"""Every seeded random stream of the project, derived in one place from the run's ``--seed``.

Two derivations, each kept bit for bit because recorded runs depend on them:

* :func:`mix_seed` (splitmix64-style) folds several integers into one 63-bit seed, so that streams
  that differ in any part never coincide. Streams are told apart by a name (a constant here) or by
  their position: ``mix_seed(seed, pass)`` orders the training set of vision's pass ``pass``,
  ``mix_seed(seed, pass, batch, rank)`` draws that batch's augmentation,
  ``mix_seed(VALIDATION_STREAM, seed, pass)`` orders the LETS validation batches
  (:mod:`lets_hf.validation`) and ``mix_seed(seed, TRAIN_EVAL_STREAM)`` picks the training examples
  evaluated each epoch for the gap ``L(test) - L(train)``.
* :func:`step_generator` gives a perturbation rule its draws of optimizer step ``step`` (RST's coin,
  ESAM's random subset of weights): ``seed * 1_000_003 + step``, the same on every rank. It predates
  :func:`mix_seed`; the recorded five-step runs of every ``--optim`` name (``tests/data/five_steps.json``)
  and the published ESAM / RST runs draw from it, so it stays as it is.

:func:`generator` is the CPU ``torch.Generator`` of a :func:`mix_seed` stream.
"""

from __future__ import annotations

import torch

_MIX = 0x9E3779B97F4A7C15  # the golden-ratio constant of splitmix64
_STEP_STRIDE = 1_000_003  # a prime larger than any run's number of optimizer steps

VALIDATION_STREAM = 0x4C455453  # "LETS": the validation batches of the hyper step
TRAIN_EVAL_STREAM = 7  # vision: the training examples evaluated each epoch


def mix_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (splitmix64-style), for seeding torch generators."""
    value = 0
    for part in parts:
        value = (value ^ (int(part) + _MIX + (value << 6) + (value >> 2))) & 0xFFFFFFFFFFFFFFFF
        value = ((value ^ (value >> 31)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return value >> 1


def generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with ``mix_seed(*parts)``."""
    return torch.Generator().manual_seed(mix_seed(*parts))


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator that depends on ``(seed, step)`` only: every rank draws the same numbers."""
    return torch.Generator().manual_seed(seed * _STEP_STRIDE + step)
