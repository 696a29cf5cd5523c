"""LETS: the radius learned by a hypergradient (Wang, Jiang, Fu, Zhang, "Enhancing
Sharpness-Aware Minimization by Learning Perturbation Radius", ECCV 2024, Algorithm 1).

``rho = exp(nu)`` keeps the radius positive. Given the hypergradient ``h = d objective / d rho``
(see :mod:`lets_hf.radius.objectives`), ``nu`` takes one Adam step on ``h * rho`` (the chain rule
through ``exp``), with betas (0.9, 0.999) and learning rate ``lr * lr_decay^k`` at the k-th update
(the paper's exponential schedule); ``rho`` is then clamped to ``[rho_min, rho_max]``.

Adam's epsilon. Adam's step ``lr * m_hat / (sqrt(v_hat) + eps)`` does not depend on the size of
the gradient, except through ``eps``. The paper's ``diag`` hypergradients are tiny (1e-9 to 1e-7
on small models), the same order as the usual ``eps = 1e-8``, which would silently shrink or
cancel every update. The default here is ``eps = 0`` (an update of 0 while ``v_hat`` is exactly
0), so that ``lr`` alone sets how far ``log rho`` can move, about ``lr`` per step, whatever the
hypergradient's scale. The size of ``h`` differs between ``lets_hvp`` modes by orders of
magnitude but, with ``eps = 0``, only its sign pattern over steps matters; the right ``lr`` still
depends on the mode and objective (how noisy that sign is), so retune it per mode.

A hypergradient that is not finite leaves ``rho`` and Adam's state untouched (the update is
masked on the device, with no host sync).

Cheaper hyper steps (options; the defaults are the paper's rule):

- ``interval = k``: a hyper step after every k-th optimizer step only, with ``b`` and the gap of
  that step; the other steps are plain SAM (no buffers, no extra passes).
- ``train_term = "next"``: the training loss and gradient at ``theta_{t+1}`` are taken from the
  next step's ascent pass (same weights, the next training batch) instead of a pass of their
  own, so only the validation pass is extra. It is an unbiased estimate of the same quantity on a
  different batch; the update for step t lands at the start of step t+1 (and the last step's
  update is dropped). With ``objective="val"`` there is no training term at all.
- ``val_term = "next"`` (``objective="val"`` only): the validation loss and gradient at
  ``theta_{t+1}`` are the next step's ascent pass too, ``h_t = -eta <grad L(B_{t+1}; theta_{t+1}), J b_t>``:
  the next training batch is the validation batch, so the hyper step costs no pass at all (ours). It is
  the validation-loss objective with validation batches drawn from the training set (as the ``robust``
  preset's are by default), one fresh batch per update; the update lands as with ``train_term="next"``.

The descent step (``descent``): the paper differentiates an SGD step (``sgd``); ``adam`` follows
Adam's / AdamW's step instead (:mod:`lets_hf.radius.descent`).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import Tensor

from ..checks import choice, integer, non_negative, number, positive
from ..options import Option
from .base import RHO, RHO_MIN, LearnedRadius, check_radius, check_state_keys, state_dtype
from .descent import DESCENT_FORMS, get_descent
from .estimators import HypergradientEstimator, get_estimator
from .hvp import HVP_MODES, get_hvp
from .objectives import OBJECTIVES, get_objective
from .presets import DEFAULT_PRESET, PRESET_OPTIONS, radius_settings

_STATE_KEYS = ("log_rho", "exp_avg", "exp_avg_sq", "updates")
TRAIN_TERMS = ("same", "next")
MAX_LOG_FACTOR = math.log(sys.float_info.max)  # exp of more overflows a float
VAL_TERMS = ("own", "next")


def _state_scalar(key: str, value: Any) -> float:
    """A checkpointed scalar of rho's state: a finite 0-dim floating-point tensor, or a finite number."""
    if isinstance(value, Tensor):
        if value.dim() != 0 or not value.is_floating_point():
            raise ValueError(
                f"LETSRadius state {key!r} must be a 0-dim floating-point tensor, got shape "
                f"{tuple(value.shape)} and dtype {value.dtype}"
            )
        value = value.item()
    return number(f"LETSRadius state {key!r}", value)


class LETSRadius(LearnedRadius):
    """A radius learned by Adam on ``log rho`` from the LETS hypergradient.

    With ``warmup_updates`` ``W > 0`` the radius applied is warmed up, ``rho_k = s_k exp(log rho)`` with
    ``s_k = min(1, (k + 1) / W)`` after ``k`` hyper updates, and ``log rho`` (the end of that low-dimensional
    schedule) is learned from the hypergradient at the radius applied: ``d L / d log rho = h s_k exp(log rho) =
    h rho_k``. Ours (issue 28): on the digits proxy it lifts the starts far from the best radius, whose first
    steps are otherwise spent at a radius the hypergradient has not corrected yet
    (``benchmarks/results/digits_proxy/README.md``).
    """

    name, paper = "lets", "Wang et al., ECCV 2024"
    options = (
        RHO,
        RHO_MIN,
        Option("rho_max", float, "Upper clamp of the learned radius"),
        *PRESET_OPTIONS,
        Option(
            "lets_hvp",
            str,
            "How b = H d is formed: diag (the paper's), finite_difference, exact; default: the preset's",
            arg="hvp",
            choices=tuple(sorted(HVP_MODES)),
            default=None,
        ),
        Option(
            "lets_objective",
            str,
            "Upper objective: gap2 (the paper's, 1/2 gap^2), gap, val (Table 6); default: the preset's",
            arg="objective",
            choices=tuple(sorted(OBJECTIVES)),
            default=None,
        ),
        Option(
            "lets_descent",
            str,
            "The descent step the hypergradient differentiates: sgd (the paper's theta - eta "
            "g_hat) or adam (through Adam/AdamW's step; needs an Adam-family base optimizer)",
            arg="descent",
            choices=tuple(sorted(DESCENT_FORMS)),
            paper="adam: ours",
        ),
        Option("lets_interval", int, "A hyper step after every k-th optimizer step", arg="interval", paper="ours"),
        Option(
            "lets_train_term",
            str,
            "Training term at theta_{t+1}: its own pass (same, the paper's) or the next "
            "step's ascent pass (next: one pass less)",
            arg="train_term",
            choices=TRAIN_TERMS,
            paper="next: ours",
        ),
        Option(
            "lets_val_term",
            str,
            "Validation term at theta_{t+1} (lets_objective val only): its own pass on a validation batch (own) "
            "or the next step's ascent pass on the next training batch (next: no extra pass at all); default: "
            "the preset's (own unless it says)",
            arg="val_term",
            choices=VAL_TERMS,
            default=None,
            paper="next: ours",
        ),
    )

    def __init__(
        self,
        rho: float = 0.05,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 0.0,
        lr_decay: float = 1.0,
        rho_min: float = 1e-4,
        rho_max: float = 5.0,
        hvp: str = "diag",
        objective: str = "gap2",
        interval: int = 1,
        train_term: str = "same",
        descent: str = "sgd",
        val_term: str = "own",
        estimator: str | None = None,
        estimator_options: dict[str, Any] | None = None,
        warmup_updates: int = 0,
    ):
        rho = check_radius("rho", rho)
        self.warmup_updates = integer("warmup_updates", warmup_updates, 0)
        self.lr = positive("rho_lr", lr)
        self.rho_min = check_radius("rho_min", rho_min)
        self.rho_max = check_radius("rho_max", rho_max)
        if self.rho_min > self.rho_max:
            raise ValueError(f"rho_min ({rho_min}) must be <= rho_max ({rho_max})")
        if not self.rho_min <= rho <= self.rho_max:
            raise ValueError(f"rho ({rho}) must lie in [rho_min, rho_max] = [{rho_min}, {rho_max}]")
        self.lr_decay = number("rho_lr_decay", lr_decay, "in (0, 1] (a factor per update)", lambda x: 0 < x <= 1)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas (rho's Adam) must be two numbers in [0, 1), got {betas!r}")
        self.betas = tuple(
            number(f"betas[{i}] (rho's Adam)", b, "a number in [0, 1)", lambda x: 0 <= x < 1)
            for i, b in enumerate(betas)
        )
        self.eps = non_negative("eps (rho's Adam)", eps)
        self.interval = integer("lets_interval", interval, 1)
        self.train_term = choice("lets_train_term", train_term, TRAIN_TERMS)
        self.hvp = get_hvp(hvp)
        self.descent = get_descent(descent)
        self.objective = get_objective(objective)
        self.val_term = choice("lets_val_term", val_term, VAL_TERMS)
        if self.val_term == "next" and self.objective.name != "val":
            raise ValueError(
                f"lets_val_term='next' needs lets_objective='val', got {self.objective.name!r}: the gap objectives "
                "compare a validation batch with the training batch, and the next batch is a training batch"
            )
        if estimator is not None and (train_term, val_term) != ("same", "own"):
            raise ValueError(
                f"estimator={estimator!r} selects the hypergradient estimator: leave lets_train_term and lets_val_term "
                f"at their defaults, got {train_term!r} and {val_term!r}"
            )
        self.estimator_name, self.estimator_options = estimator, dict(estimator_options or {})
        self._estimator = self.build_estimator()
        self._rho_given = rho
        self._state = {
            "log_rho": torch.tensor(math.log(rho), dtype=torch.float64),
            "exp_avg": torch.zeros((), dtype=torch.float64),
            "exp_avg_sq": torch.zeros((), dtype=torch.float64),
            "updates": torch.zeros((), dtype=torch.float64),
        }

    @classmethod
    def from_options(
        cls,
        preset: str = DEFAULT_PRESET,
        total_steps: int | None = None,
        base_optimizer: type | None = None,
        **overrides: Any,
    ) -> LETSRadius:
        """The controller of ``preset`` with ``overrides`` (:func:`~lets_hf.radius.presets.radius_settings`);
        ``total_steps`` (the run's optimizer steps) feeds the horizon-aware rate, ``base_optimizer`` (a class)
        the choice of ``auto``."""
        return cls(**radius_settings(preset, total_steps=total_steps, base_optimizer=base_optimizer, **overrides))

    def _on(self, device: torch.device) -> dict[str, Tensor]:
        dtype = state_dtype(device)
        if self._state["log_rho"].device != device or self._state["log_rho"].dtype != dtype:
            self._state = {k: v.to(device=device, dtype=dtype) for k, v in self._state.items()}
        return self._state

    def warmup_scale(self, updates: float) -> float:
        """``s_k = min(1, (k + 1) / W)`` after ``k`` hyper updates (1 without a warm-up)."""
        return min(1.0, (updates + 1) / self.warmup_updates) if self.warmup_updates else 1.0

    def rho_tensor(self, device: torch.device) -> Tensor:
        """The radius applied, on ``device`` (tensor operations only: no host sync, warmed up or not)."""
        state = self._on(device)
        rho = state["log_rho"].exp()
        if self.warmup_updates:
            rho = rho * ((state["updates"] + 1) / self.warmup_updates).clamp(max=1.0)
        return rho

    @property
    def rho(self) -> float:
        """The radius applied now; until ``log rho`` moves, exactly the ``rho`` given times the warm-up's ``s_k``
        (not ``exp(log rho)``, 0.05000000000000001)."""
        log_rho = float(self._state["log_rho"])
        learned = self._rho_given if log_rho == math.log(self._rho_given) else math.exp(log_rho)
        return learned * self.warmup_scale(self.updates)

    @property
    def updates(self) -> int:
        """How many hyper steps have changed ``rho`` (non-finite ones do not count)."""
        return int(self._state["updates"])

    def extra_passes_per_step(self, val_scale: float = 1.0) -> float:
        """Forward+backward passes the hyper steps add per optimizer step, on average: on every ``interval``-th
        step the validation pass (``val_scale`` passes for a validation batch of ``val_scale`` training batches;
        none with ``val_term="next"``) and the training pass at ``theta_{t+1}`` where the objective runs one."""
        validation = 0.0 if self.val_term_from_next_step else val_scale
        return (validation + int(self.hyper_train_pass)) / self.interval

    def build_estimator(self) -> HypergradientEstimator:
        """The estimator ``estimator`` names; by default the one ``train_term`` and ``val_term`` select:
        ``next_val``, ``next_train`` (a training term from the next step, where the objective has one), or the
        paper's ``one_step``."""
        name = self.estimator_name or (
            "next_val"
            if self.val_term == "next"
            else "next_train"
            if self.train_term == "next" and self.objective.needs_train_loss
            else "one_step"
        )
        parts = dict(hvp=self.hvp, descent=self.descent, objective=self.objective, interval=self.interval)
        return get_estimator(name, **parts, **self.estimator_options)

    def travel(self, total_steps: int) -> float:
        """How far ``log rho`` can move over a run of ``total_steps`` optimizer steps: ``sum_k lr * lr_decay^k`` over
        the run's ``U = total_steps // interval`` updates (Adam moves ``log rho`` by its rate per update when its
        gradient ``h * rho`` keeps its sign and size; a gradient that grows from update to update lengthens Adam's
        steps, by at most ``(1 - beta1) / sqrt(1 - beta2)``, 3.16 for the default betas)."""
        updates = total_steps // self.interval
        decay = self.lr_decay
        return self.lr * (updates if decay == 1 else (1 - decay**updates) / (1 - decay))

    def reach(self, total_steps: int) -> float:
        """The largest factor by which ``rho`` can change over a run of ``total_steps`` optimizer steps,
        ``exp(travel)`` (:meth:`travel`); ``math.inf`` where that is beyond a float (``rho_lr x updates`` over
        about 709, e.g. ``rho_lr`` 1e-2 over 71k hyper updates): ``rho_lr`` then lets ``rho`` cross its whole
        clamp range ``[rho_min, rho_max]`` in a small part of the run."""
        travel = self.travel(total_steps)
        return math.exp(travel) if travel < MAX_LOG_FACTOR else math.inf

    def stuck_warning(self, total_steps: int, threshold: float = 1.1) -> str | None:
        """A message when ``rho`` cannot change by more than ``threshold`` over the run (see :meth:`reach`)."""
        factor = self.reach(total_steps)
        if factor >= threshold:
            return None
        updates = max(total_steps // self.interval, 1)
        return (
            f"the learned radius can change by at most a factor {factor:.3f} over this run ({updates} hyper "
            f"updates at rho_lr {self.lr:g}, decay {self.lr_decay:g}): it will stay near rho_0 = {self.rho:g}, "
            f"which makes LETS-SAM SAM at rho_0. Raise rho_lr to about {math.log(10) / updates:.2g} (a factor "
            f"10 over the run), or set rho_travel (e.g. --lets_preset robust) so that the rate follows the "
            f"run's length"
        )

    def update(self, hypergradient: Tensor) -> None:
        """One Adam step on ``log rho`` with gradient ``hypergradient * rho`` (``rho`` the radius applied);
        skipped if not finite."""
        s = self._on(hypergradient.device)
        beta1, beta2 = self.betas
        rho = self.rho_tensor(hypergradient.device)
        grad = hypergradient.to(rho.dtype) * rho
        finite = torch.isfinite(grad)
        grad = torch.where(finite, grad, torch.zeros_like(grad))
        exp_avg = beta1 * s["exp_avg"] + (1 - beta1) * grad
        exp_avg_sq = beta2 * s["exp_avg_sq"] + (1 - beta2) * grad * grad
        updates = s["updates"] + 1
        m_hat = exp_avg / (1 - beta1**updates)
        denom = (exp_avg_sq / (1 - beta2**updates)).sqrt() + self.eps
        step = torch.where(
            denom > 0, m_hat / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(denom)
        )
        lr = self.lr * self.lr_decay ** s["updates"]
        log_rho = (s["log_rho"] - lr * step).clamp(math.log(self.rho_min), math.log(self.rho_max))
        new = {"log_rho": log_rho, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "updates": updates}
        self._state = {k: torch.where(finite, new[k], s[k]) for k in _STATE_KEYS}

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self._state.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state after checking it (one host read at load time): exactly the keys of
        :meth:`state_dict`, each a finite 0-dim floating-point tensor (or a number), ``log_rho`` in
        ``[log rho_min, log rho_max]``, ``exp_avg_sq`` >= 0 and ``updates`` a whole number >= 0."""
        check_state_keys(state, _STATE_KEYS, "LETSRadius")
        values = {k: _state_scalar(k, state[k]) for k in _STATE_KEYS}
        low, high = math.log(self.rho_min), math.log(self.rho_max)
        slack = 1e-6 * max(1.0, abs(low), abs(high))  # a state clamped in float32 (MPS) may sit one ulp outside
        log_rho = values["log_rho"]
        if not low - slack <= log_rho <= high + slack:
            raise ValueError(
                f"LETSRadius state 'log_rho' = {log_rho!r} (rho = {math.exp(log_rho):.4g}) is outside "
                f"[log rho_min, log rho_max] = [{low:.4g}, {high:.4g}] (rho in [{self.rho_min}, "
                f"{self.rho_max}]): a corrupted checkpoint, or one saved with another range"
            )
        if values["exp_avg_sq"] < 0:
            raise ValueError(f"LETSRadius state 'exp_avg_sq' must be >= 0, got {values['exp_avg_sq']!r}")
        if values["updates"] < 0 or values["updates"] != int(values["updates"]):
            raise ValueError(f"LETSRadius state 'updates' must be a whole number >= 0, got {values['updates']!r}")
        reference = self._state["log_rho"]
        self._state = {k: torch.tensor(values[k], dtype=reference.dtype, device=reference.device) for k in _STATE_KEYS}

    def __repr__(self) -> str:
        return (
            f"LETSRadius(rho={self.rho:.4g}, lr={self.lr}, lr_decay={self.lr_decay}, hvp={self.hvp.name!r}, "
            f"objective={self.objective.name!r}, rho_range=[{self.rho_min}, {self.rho_max}], interval={self.interval}, "
            f"train_term={self.train_term!r}, val_term={self.val_term!r}, descent={self.descent.name!r}, "
            f"estimator={self.estimator.name!r}, warmup_updates={self.warmup_updates})"
        )
