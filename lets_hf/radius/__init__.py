"""Radius controllers (the upper level): fixed, or learned by LETS."""
from .base import RadiusController
from .descent import DESCENT_FORMS, get_descent
from .fixed import FixedRadius
from .hvp import HVP_MODES, get_hvp
from .lets import LETSRadius
from .objectives import OBJECTIVES, get_objective
from .scheduled import LRProportionalRadius
from .presets import DEFAULT_PRESET, PRESETS, radius_settings

__all__ = ["DEFAULT_PRESET", "DESCENT_FORMS", "get_descent", "PRESETS", "radius_settings", "FixedRadius", "LRProportionalRadius", "HVP_MODES", "LETSRadius", "OBJECTIVES", "RadiusController", "get_hvp", "get_objective"]
