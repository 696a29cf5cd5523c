"""Radius controllers (the upper level): fixed, following the learning rate, or learned by LETS.

Each controller declares its options in its module (``options``); :data:`RADII` names them, and
``rho_schedule`` picks the controller of a fixed-radius method (``--rho_schedule lr``: GSAM's schedule).
"""

from ..options import Option
from .base import LearnedRadius, RadiusController
from .descent import DESCENT_FORMS, get_descent
from .fixed import FixedRadius
from .hvp import HVP_MODES, get_hvp
from .lets import LETSRadius
from .objectives import OBJECTIVES, get_objective
from .presets import DEFAULT_PRESET, PRESETS, radius_settings
from .scheduled import LRProportionalRadius

RADII = {radius.name: radius for radius in (FixedRadius, LRProportionalRadius, LETSRadius)}
RHO_SCHEDULES = tuple(name for name, radius in RADII.items() if not radius.learns)
RHO_SCHEDULE = Option(
    "rho_schedule",
    str,
    "Fixed-radius methods: a constant rho, or rho proportional to the learning "
    "rate between rho_min and rho (GSAM's schedule)",
    choices=RHO_SCHEDULES,
    default=RHO_SCHEDULES[0],
    paper="Zhuang et al., ICLR 2022",
)

__all__ = [
    "DEFAULT_PRESET",
    "DESCENT_FORMS",
    "FixedRadius",
    "HVP_MODES",
    "LearnedRadius",
    "LETSRadius",
    "LRProportionalRadius",
    "OBJECTIVES",
    "PRESETS",
    "RADII",
    "RHO_SCHEDULE",
    "RHO_SCHEDULES",
    "RadiusController",
    "get_descent",
    "get_hvp",
    "get_objective",
    "radius_settings",
]
