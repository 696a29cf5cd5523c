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

The descent step (``descent``): the paper differentiates an SGD step (``sgd``); ``adam`` follows
Adam's / AdamW's step instead (:mod:`lets_hf.radius.descent`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from .base import RadiusController, check_positive, state_dtype
from .descent import get_descent
from .hvp import get_hvp
from .objectives import get_objective

_STATE_KEYS = ("log_rho", "exp_avg", "exp_avg_sq", "updates")
TRAIN_TERMS = ("same", "next")


class LETSRadius(RadiusController):
    """A radius learned by Adam on ``log rho`` from the LETS hypergradient."""

    learns = True

    def __init__(self, rho: float = 0.05, lr: float = 1e-4, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 0.0, lr_decay: float = 1.0, rho_min: float = 1e-4, rho_max: float = 5.0,
                 hvp: str = "diag", objective: str = "gap2", interval: int = 1, train_term: str = "same",
                 descent: str = "sgd"):
        rho = check_positive("rho", rho)
        self.lr = check_positive("rho_lr", lr)
        self.rho_min = check_positive("rho_min", rho_min)
        self.rho_max = check_positive("rho_max", rho_max)
        if self.rho_min > self.rho_max:
            raise ValueError(f"rho_min ({rho_min}) must be <= rho_max ({rho_max})")
        if not self.rho_min <= rho <= self.rho_max:
            raise ValueError(f"rho ({rho}) must lie in [rho_min, rho_max] = [{rho_min}, {rho_max}]")
        if not (0 < lr_decay <= 1):
            raise ValueError(f"rho_lr_decay must be in (0, 1] (a factor per update), got {lr_decay!r}")
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"rho betas must be two numbers in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"rho eps must be >= 0, got {eps!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.lr_decay = float(lr_decay)
        if not (isinstance(interval, int) and interval >= 1):
            raise ValueError(f"lets_interval must be an integer >= 1, got {interval!r}")
        if train_term not in TRAIN_TERMS:
            raise ValueError(f"lets_train_term must be one of {list(TRAIN_TERMS)}, got {train_term!r}")
        self.hvp = get_hvp(hvp)
        self.descent = get_descent(descent)
        self.objective = get_objective(objective)
        self.interval = interval
        self.train_term = train_term
        self._state = {"log_rho": torch.tensor(math.log(rho), dtype=torch.float64),
                       "exp_avg": torch.zeros((), dtype=torch.float64),
                       "exp_avg_sq": torch.zeros((), dtype=torch.float64),
                       "updates": torch.zeros((), dtype=torch.float64)}

    def _on(self, device: torch.device) -> Dict[str, Tensor]:
        dtype = state_dtype(device)
        if self._state["log_rho"].device != device or self._state["log_rho"].dtype != dtype:
            self._state = {k: v.to(device=device, dtype=dtype) for k, v in self._state.items()}
        return self._state

    def rho_tensor(self, device: torch.device) -> Tensor:
        return self._on(device)["log_rho"].exp()

    @property
    def rho(self) -> float:
        return math.exp(float(self._state["log_rho"]))

    @property
    def updates(self) -> int:
        """How many hyper steps have changed ``rho`` (non-finite ones do not count)."""
        return int(self._state["updates"])

    @property
    def train_term_from_next_step(self) -> bool:
        """Whether the training term of the hypergradient comes from the next step's ascent pass."""
        return self.train_term == "next" and self.objective.needs_train_loss

    def hyper_step_due(self, step_number: int) -> bool:
        """Whether optimizer step number ``step_number`` (1-based) gets a hyper step."""
        return step_number % self.interval == 0

    def reach(self, total_steps: int) -> float:
        """The largest factor by which ``rho`` can change over a run of ``total_steps`` optimizer steps.

        Adam moves ``log rho`` by its rate per update when its gradient ``h * rho`` keeps its sign and size,
        so over the run's ``U = total_steps // interval`` updates ``log rho`` travels about
        ``sum_k lr * lr_decay^k``; the factor is ``exp`` of that. (A gradient that grows from update to update
        lengthens Adam's steps, by at most ``(1 - beta1) / sqrt(1 - beta2)``, 3.16 for the default betas.)
        """
        updates = total_steps // self.interval
        decay = self.lr_decay
        travel = self.lr * (updates if decay == 1 else (1 - decay ** updates) / (1 - decay))
        return math.exp(travel)

    def stuck_warning(self, total_steps: int, threshold: float = 1.1) -> Optional[str]:
        """A message when ``rho`` cannot change by more than ``threshold`` over the run (see :meth:`reach`)."""
        factor = self.reach(total_steps)
        if factor >= threshold:
            return None
        updates = max(total_steps // self.interval, 1)
        return (f"the learned radius can change by at most a factor {factor:.3f} over this run ({updates} hyper "
                f"updates at rho_lr {self.lr:g}, decay {self.lr_decay:g}): it will stay near rho_0 = {self.rho:g}, "
                f"which makes LETS-SAM SAM at rho_0. Raise rho_lr to about {math.log(10) / updates:.2g} (a factor "
                f"10 over the run), or set rho_travel (e.g. --lets_preset robust) so that the rate follows the "
                f"run's length")

    def update(self, hypergradient: Tensor) -> None:
        """One Adam step on ``log rho`` with gradient ``hypergradient * rho``; skipped if not finite."""
        s = self._on(hypergradient.device)
        beta1, beta2 = self.betas
        rho = s["log_rho"].exp()
        grad = hypergradient.to(rho.dtype) * rho
        finite = torch.isfinite(grad)
        grad = torch.where(finite, grad, torch.zeros_like(grad))
        exp_avg = beta1 * s["exp_avg"] + (1 - beta1) * grad
        exp_avg_sq = beta2 * s["exp_avg_sq"] + (1 - beta2) * grad * grad
        updates = s["updates"] + 1
        m_hat = exp_avg / (1 - beta1 ** updates)
        denom = (exp_avg_sq / (1 - beta2 ** updates)).sqrt() + self.eps
        step = torch.where(denom > 0, m_hat / torch.where(denom > 0, denom, torch.ones_like(denom)),
                           torch.zeros_like(denom))
        lr = self.lr * self.lr_decay ** s["updates"]
        log_rho = (s["log_rho"] - lr * step).clamp(math.log(self.rho_min), math.log(self.rho_max))
        new = {"log_rho": log_rho, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "updates": updates}
        self._state = {k: torch.where(finite, new[k], s[k]) for k in _STATE_KEYS}

    def state_dict(self) -> Dict[str, Any]:
        return {k: v.detach().clone() for k, v in self._state.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"LETS radius state is missing {missing}; is this a LETS checkpoint?")
        device = self._state["log_rho"].device
        self._state = {k: torch.as_tensor(state[k]).to(device=device, dtype=self._state[k].dtype).clone()
                       for k in _STATE_KEYS}

    def __repr__(self) -> str:
        return (f"LETSRadius(rho={self.rho:.4g}, lr={self.lr}, lr_decay={self.lr_decay}, hvp={self.hvp.name!r}, "
                f"objective={self.objective.name!r}, rho_range=[{self.rho_min}, {self.rho_max}], interval={self.interval}, "
                f"train_term={self.train_term!r}, descent={self.descent.name!r})")
