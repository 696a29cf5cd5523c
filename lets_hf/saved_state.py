"""The saved form of a :class:`~lets_hf.optimizer.LETSOptimizer`'s state, and whether a saved state fits.

The state dict is the base optimizer's own (``{"state": ..., "param_groups": ...}``), so that
``torch.optim.AdamW.load_state_dict`` and the stock Hugging Face Trainer read it (a run can drop LETS and keep
its moments), with LETS's entry beside it under :data:`LETS_KEY`: ``base_optimizer`` (its class name),
``steps``, ``skipped_ascents``, and the states of the radius controller, the rule and the hypergradient
estimator. The form saved before (``{"base": ..., "radius": ..., "pending": ..., "step_lrs": ...}``) is read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.optim import Optimizer

LETS_KEY = "lets"  # LETS's entry in the state dict, beside the base optimizer's "state" and "param_groups"
# parameter-group keys that an optimizer's version or implementation adds, not what the optimizer is
_IMPLEMENTATION_KEYS = frozenset({"initial_lr", "foreach", "fused", "capturable", "differentiable"})


def split_state_dict(state: Any) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """``(the base optimizer's state dict, LETS's entry or None)`` of a saved optimizer state. The form saved before
    the base optimizer's state became the top level, ``{"base": ..., "radius": ..., "pending": ...}``, is read too."""
    if isinstance(state, Mapping) and {"base", "radius"} <= set(state):
        return state["base"], _current_entry({k: v for k, v in state.items() if k != "base"})
    if isinstance(state, Mapping) and {"state", "param_groups"} <= set(state):
        return state, None if state.get(LETS_KEY) is None else _current_entry(state[LETS_KEY])
    raise ValueError(
        "not an optimizer state dict: expected the keys 'state' and 'param_groups' (and LETS's entry 'lets'), got "
        f"{sorted(map(str, state)) if isinstance(state, Mapping) else type(state).__name__}"
    )


def _current_entry(lets: dict[str, Any]) -> dict[str, Any]:
    """LETS's entry with the estimator's state, from one saved before the estimators (``pending``, ``step_lrs``)."""
    if "estimator" in lets:
        return lets
    entry = {k: v for k, v in lets.items() if k not in ("pending", "step_lrs")}
    pending = lets.get("pending") or {}
    val_term = {k: pending[k] for k in ("val_loss", "val_total") if k in pending}
    entry["estimator"] = {"tangent": pending["b"], "lrs": lets["step_lrs"], **val_term} if pending else {}
    return entry


def _group_settings(base_state: Mapping[str, Any]) -> frozenset[str]:
    groups = base_state.get("param_groups") or [{}]
    return frozenset(groups[0]) - {"params"} - _IMPLEMENTATION_KEYS


def check_fits(base: Mapping[str, Any], lets: dict[str, Any] | None, base_optimizer: Optimizer) -> None:
    """A ValueError, before anything is loaded, for a state without LETS's entry or of another base optimizer than
    ``base_optimizer`` (named in the entry; compared by parameter-group settings in the older form)."""
    mine = type(base_optimizer).__name__
    if lets is None:
        raise ValueError(
            f"a stock optimizer's state dict, with no '{LETS_KEY}' entry: this LETSOptimizer (over {mine}) loads a "
            "LETSOptimizer's state; load a stock state into its base_optimizer instead"
        )
    saved, settings = lets.get("base_optimizer"), _group_settings(base)
    expected = _group_settings(base_optimizer.state_dict())
    if (saved is not None and saved != mine) or (saved is None and settings != expected):
        raise ValueError(
            f"the state dict is of a LETSOptimizer over {saved or 'another base optimizer'} (parameter-group "
            f"settings {sorted(settings)}); this one is over {mine} (settings {sorted(expected)}): build it with "
            "the base optimizer it was saved with"
        )
