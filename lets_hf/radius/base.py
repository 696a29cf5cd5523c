"""The upper level of SAM: where the radius ``rho`` comes from.

A radius controller owns ``rho`` and nothing else; it does not know which perturbation rule uses
it, so every SAM variant combines with every controller. ``rho`` lives in a 0-dim float64 tensor
on the parameters' device, so that using and updating it never waits on the host; the ``rho``
property reads it back (a host sync: call it at logging steps).

Every radius given by a user or read from a checkpoint is a finite number in ``(0, RHO_LIMIT]``.
A radius is a distance in weight space, the norm of the perturbation of all weights together;
the published ones are 0.05 (SAM) to 2 (ASAM, in its normalised coordinates), and LETS clamps at
``rho_max = 5`` by default. ``RHO_LIMIT = 100`` is about the norm of all the weights of a ResNet-18
at initialisation (112; WRN-28-10: 163): a perturbation that large replaces the network instead of
probing its neighbourhood, so a larger value is a mistake (``1e30`` for ``1e-3``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..checks import positive
from ..options import Option
from .estimators import HypergradientEstimator, get_estimator

if TYPE_CHECKING:
    from .descent import DescentJacobian
    from .hvp import HessianVectorProduct
    from .objectives import UpperObjective

RHO_LIMIT = 100.0
# The options every controller with a radius shares (declared once, here).
RHO = Option("rho", float, "The fixed radius (sam, asam, ...) or the initial one (lets_*)")
RHO_MIN = Option(
    "rho_min", float, "Lower clamp of the learned radius; with --rho_schedule lr, the radius at a learning rate of 0"
)


def check_radius(name: str, value: Any) -> float:
    """``float(value)`` for a radius (``rho``, ``rho_min``, ``rho_max``): a finite number in ``(0, RHO_LIMIT]``."""
    return positive(name, value, RHO_LIMIT)


def check_state_keys(state: Any, expected: Sequence[str], owner: str) -> None:
    """A checkpointed state is a dict with exactly the keys ``expected``; else a ValueError naming them."""
    if not isinstance(state, dict):
        raise ValueError(f"{owner} state must be a dict with the keys {list(expected)}, got {type(state).__name__}")
    missing, unexpected = [k for k in expected if k not in state], sorted(set(state) - set(expected), key=str)
    if missing or unexpected:
        raise ValueError(
            f"{owner} state has missing keys {missing} and unexpected keys {unexpected} (expected "
            f"{list(expected)}); is this checkpoint from this kind of radius?"
        )


def state_dtype(device: torch.device) -> torch.dtype:
    """float64 for the controller's scalars, float32 where the device has no float64 (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


class RadiusController(ABC):
    """Supplies ``rho`` to the optimizer wrapper; ``learns`` says whether a hyper step updates it (True exactly for
    a :class:`LearnedRadius`, the interface the optimizer drives a learned controller through).

    ``name`` is the controller's name (``--rho_schedule`` for those that do not learn), ``paper`` where it comes
    from, ``options`` its command-line options (:class:`~lets_hf.options.Option`; defaults: the constructor's).
    """

    name: str
    paper: str = ""
    options: tuple[Option, ...] = ()
    learns: bool = False

    @abstractmethod
    def rho_tensor(self, device: torch.device) -> Tensor:
        """The current ``rho`` as a 0-dim tensor on ``device``."""

    @property
    def rho(self) -> float:
        """The current ``rho`` as a Python float (a host sync)."""
        return float(self.rho_tensor(torch.device("cpu")))

    def observe_learning_rate(self, lr: float) -> None:
        """Told the base optimizer's learning rate before each perturbation (for schedules that follow it)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only, so that ``torch.load(weights_only=True)`` reads it back."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LearnedRadius(RadiusController):
    """The contract between :class:`~lets_hf.optimizer.LETSOptimizer` and a radius learned by a hyper step.

    The optimizer reads only these members (:class:`~lets_hf.radius.LETSRadius` is one implementation):

    - ``hvp`` (a :class:`~lets_hf.radius.hvp.HessianVectorProduct`): how ``b = H d`` is formed;
    - ``descent`` (a :class:`~lets_hf.radius.descent.DescentJacobian`): ``J`` of the base step, ``b -> J b``;
    - ``objective`` (a :class:`~lets_hf.radius.objectives.UpperObjective`): the upper objective, its
      differentiation (``objective.backward``) and the factor of ``<a, b>``;
    - :attr:`estimator` (a :class:`~lets_hf.radius.estimators.HypergradientEstimator`, built once by
      :meth:`build_estimator`; default: the paper's one-step rule): the hyper step's buffers, stages and passes,
      which :attr:`train_term_from_next_step`, :attr:`val_term_from_next_step` and :attr:`hyper_train_pass` read;
    - :meth:`update`: the hypergradient ``h = d objective / d rho`` (a 0-dim tensor, averaged over
      ranks, possibly not finite) changes ``rho``;
    - :meth:`stuck_warning`: read by the Trainer before training.
    """

    learns = True
    hvp: HessianVectorProduct
    descent: DescentJacobian
    objective: UpperObjective

    def build_estimator(self) -> HypergradientEstimator:
        """The estimator of this radius (called once, by :attr:`estimator`): the one-step rule by default."""
        return get_estimator("one_step", hvp=self.hvp, descent=self.descent, objective=self.objective)

    @property
    def estimator(self) -> HypergradientEstimator:
        if vars(self).get("_estimator") is None:
            self._estimator = self.build_estimator()
        return self._estimator

    @property
    def train_term_from_next_step(self) -> bool:
        """Whether the training term of the hypergradient comes from the next step's ascent pass."""
        return "train" in self.estimator.next_ascent_terms and self.objective.needs_train_loss

    @property
    def val_term_from_next_step(self) -> bool:
        """Whether the validation term comes from the next step's ascent pass (then no validation batches)."""
        return not self.estimator.validation_pass

    @property
    def hyper_train_pass(self) -> bool:
        """Whether the hyper step runs a training pass of its own at ``theta_{t+1}``: the objective has a
        training term and it does not come from the next step's ascent pass."""
        return self.estimator.training_pass

    @abstractmethod
    def update(self, hypergradient: Tensor) -> None:
        """Change ``rho`` from ``h = d objective / d rho`` (on the parameters' device; skip a non-finite one)."""

    def stuck_warning(self, total_steps: int) -> str | None:
        """A message when ``rho`` cannot move over a run of ``total_steps`` steps (default: None)."""
        return None


LEARNED_MEMBERS = ("hvp", "descent", "objective")


def check_learned_radius(radius: LearnedRadius) -> None:
    """A ValueError naming the members of :class:`LearnedRadius` that ``radius`` does not set."""
    missing = [name for name in LEARNED_MEMBERS if getattr(radius, name, None) is None]
    if missing:
        raise ValueError(
            f"radius {type(radius).__name__} is a LearnedRadius but does not set {missing} "
            f"(see lets_hf.radius.base.LearnedRadius)"
        )
