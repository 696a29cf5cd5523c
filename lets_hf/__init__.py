"""lets_hf: SAM-family training with a learned perturbation radius (LETS, ECCV 2024).

The math is plain PyTorch (:mod:`lets_hf.perturbation`, :mod:`lets_hf.radius`,
:class:`LETSOptimizer`); the Hugging Face Trainer front end lives in :mod:`lets_hf.trainer`.
"""
from .batchnorm import frozen_batchnorm_stats
from .optimizer import LETSOptimizer
from .perturbation import ASAM, SAM, PerturbationRule, get_perturbation
from .radius import FixedRadius, LETSRadius, RadiusController

__version__ = "0.1.0"

__all__ = ["ASAM", "FixedRadius", "LETSOptimizer", "LETSRadius", "PerturbationRule", "RadiusController", "SAM",
           "frozen_batchnorm_stats", "get_perturbation"]
