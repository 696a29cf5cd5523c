"""lets_hf: SAM-family training with a learned perturbation radius (LETS, ECCV 2024).

The math is plain PyTorch (:mod:`lets_hf.perturbation`, :mod:`lets_hf.radius`,
:class:`LETSOptimizer`); ``import lets_hf`` does not import transformers. The Hugging Face
front end (:mod:`lets_hf.trainer`, :mod:`lets_hf.arguments`) is exported here too, and imported
on first use: ``from lets_hf import LETSTrainer, LETSArguments``.
"""

import importlib

from .batchnorm import frozen_batchnorm_stats
from .optimizer import LETSOptimizer
from .perturbation import ASAM, SAM, PerturbationRule, get_perturbation
from .radius import FixedRadius, LearnedRadius, LETSRadius, RadiusController

__version__ = "0.1.0"

_HUGGING_FACE_EXPORTS = {
    "LETSTrainer": "trainer",
    "LETSSeq2SeqTrainer": "trainer",
    "LETSArguments": "arguments",
    "LETSSeq2SeqArguments": "arguments",
    "LETSArgumentParser": "arguments",
}

__all__ = [
    "ASAM",
    "FixedRadius",
    "LearnedRadius",
    "LETSOptimizer",
    "LETSRadius",
    "PerturbationRule",
    "RadiusController",
    "SAM",
    "frozen_batchnorm_stats",
    "get_perturbation",
    *_HUGGING_FACE_EXPORTS,
]


def __getattr__(name):
    """The Trainer front end, imported (with transformers) when one of its names is first asked for (PEP 562)."""
    if name not in _HUGGING_FACE_EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HUGGING_FACE_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HUGGING_FACE_EXPORTS))
