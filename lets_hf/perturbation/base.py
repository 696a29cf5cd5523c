"""The lower level of SAM: how a gradient becomes a perturbation of the weights.

Every SAM variant perturbs the weights ``theta`` to ``theta + rho * d`` before its second
gradient, where the unit ascent direction ``d`` is the variant's own function of the gradient
``g`` (and, for some, of ``theta``). A :class:`PerturbationRule` computes ``rho * d`` in place of
the gradients it is given; the optimizer wrapper saves and restores the weights around it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from torch import Tensor


class PerturbationRule(ABC):
    """Turns gradients into the perturbation ``e = rho * d`` of one SAM variant.

    ``name`` is the variant's name on the command line (``--optim <name>``).
    """

    name: str

    @abstractmethod
    def perturbation_(self, params: Sequence[Tensor], grads: Sequence[Tensor], rho: Tensor) -> None:
        """Overwrite ``grads`` (holding ``g``) with ``rho * d``; ``rho`` is a 0-dim tensor.

        A zero gradient must give a zero perturbation, never NaN.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
