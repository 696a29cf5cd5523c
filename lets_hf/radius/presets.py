"""Named settings of the LETS controller, and the horizon-aware rho learning rate.

``paper``: the rule of Wang et al. (ECCV 2024): the ``gap2`` objective, the ``diag`` Hessian
approximation, rho's Adam learning rate 1e-4 (no decay).

``robust``: the setting that learned one radius from every starting point in this project's
measurements (``docs/measurements.md``, "Before this code: the design study"): the validation-loss objective
``val`` (the paper's Table 6, first row), whose hypergradient changes sign with rho;
``b = (g_hat - g) / rho`` (``finite_difference``), which tracks the exact product; and a rate set
by the run's length, ``lr = travel / U`` for ``U`` hyper updates with ``travel = 24`` (``log rho``
can move about ``travel`` over the run, since Adam moves it about ``lr`` per update), decayed
geometrically to ``0.1`` of itself at the last update. It needs no training-loss pass at
``theta_{t+1}``: one extra forward+backward per step.

Every value a preset sets can be overridden one by one; ``rho_lr`` overrides ``rho_travel`` and
``rho_lr_decay`` overrides ``rho_decay_total``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

PRESETS: Dict[str, Dict[str, Any]] = {
    "paper": {"hvp": "diag", "objective": "gap2", "rho_lr": 1e-4, "rho_lr_decay": 1.0},
    "robust": {"hvp": "finite_difference", "objective": "val", "rho_travel": 24.0, "rho_decay_total": 0.1},
}
DEFAULT_PRESET = "paper"


def travel_rate(travel: float, total_updates: int) -> float:
    """``lr = travel / U``: Adam moves ``log rho`` about ``lr`` per update, so about ``travel`` per run."""
    if not travel > 0:
        raise ValueError(f"rho_travel must be > 0, got {travel!r}")
    return travel / total_updates


def decay_per_update(decay_total: float, total_updates: int) -> float:
    """The factor per update that makes the rate of the last of ``U`` updates ``decay_total`` times the first's."""
    if not 0 < decay_total <= 1:
        raise ValueError(f"rho_decay_total must be in (0, 1], got {decay_total!r}")
    return decay_total ** (1.0 / (total_updates - 1)) if total_updates > 1 else 1.0


def radius_settings(preset: str = DEFAULT_PRESET, total_steps: Optional[int] = None, interval: int = 1,
                    **overrides: Any) -> Dict[str, Any]:
    """``LETSRadius`` keyword arguments for ``preset`` with ``overrides`` (None means "the preset's").

    ``overrides`` take ``hvp``, ``objective``, ``rho_lr``, ``rho_lr_decay``, ``rho_travel``,
    ``rho_decay_total`` and any other ``LETSRadius`` argument (``rho``, ``rho_min``, ...).
    ``total_steps`` (the run's optimizer steps) is needed only by the horizon-aware rate.
    """
    if preset not in PRESETS:
        raise ValueError(f"lets_preset must be one of {sorted(PRESETS)}, got {preset!r}")
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = dict(PRESETS[preset])
    for explicit, horizon_aware in (("rho_lr", "rho_travel"), ("rho_lr_decay", "rho_decay_total")):
        if explicit in given and horizon_aware in given:
            raise ValueError(f"give {explicit} or {horizon_aware}, not both")
        if explicit in given:
            settings.pop(horizon_aware, None)
        if horizon_aware in given:
            settings.pop(explicit, None)
    settings.update(given)
    if "rho_travel" in settings or "rho_decay_total" in settings:
        if total_steps is None:
            raise ValueError("rho_travel and rho_decay_total need the run's total number of optimizer steps")
        updates = max(total_steps // interval, 1)
        if "rho_travel" in settings:
            settings["rho_lr"] = travel_rate(settings.pop("rho_travel"), updates)
        if "rho_decay_total" in settings:
            settings["rho_lr_decay"] = decay_per_update(settings.pop("rho_decay_total"), updates)
    lr = settings.pop("rho_lr", PRESETS["paper"]["rho_lr"])
    lr_decay = settings.pop("rho_lr_decay", 1.0)
    return {**settings, "lr": lr, "lr_decay": lr_decay, "interval": interval}
