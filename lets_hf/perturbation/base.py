"""The lower level of SAM: how a gradient becomes a perturbation of the weights.

Every SAM variant perturbs the weights ``theta`` to ``theta + rho * d`` before its second
gradient, where the unit ascent direction ``d`` is the variant's own function of the gradient
``g`` (and, for some, of ``theta``). A :class:`PerturbationRule` computes ``rho * d`` in place of
the gradients it is given; the optimizer wrapper saves and restores the weights around it.

Variants that save compute take some steps as plain ERM steps (one forward+backward). They say
so through two decisions: :meth:`~PerturbationRule.plans_sam_step`, known before the first pass
(RST, LookSAM: the first pass then runs with the usual DDP sync), and
:meth:`~PerturbationRule.keeps_sam_step`, taken from the first pass's gradient (AE-SAM). A rule
may also change the gradient of the descent step (:meth:`~PerturbationRule.descent_gradient_`,
GSAM, LookSAM, ESAM's ``clean_unselected`` form) or of an ERM step (:meth:`~PerturbationRule.erm_gradient_`,
LookSAM). A rule that changes the descent gradient also gives its derivative in rho
(:meth:`~PerturbationRule.descent_derivative_`), so that LETS differentiates the step the rule takes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..distributed import LOCAL, Ranks
from ..options import Option


class PerturbationRule(ABC):
    """Turns gradients into the perturbation ``e = rho * d`` of one SAM variant.

    ``name`` is the variant's name on the command line (``--optim <name>``), ``label`` its name in
    tables (``"LookSAM"``; LETS-<label> with the learned radius), ``paper`` where it comes from, and
    ``options`` its command-line options (:class:`~lets_hf.options.Option`, one per constructor argument a
    user may set; their defaults are the constructor's).
    ``needs_ascent_gradient``: the wrapper keeps ``g`` for :meth:`descent_gradient_`.
    """

    name: str
    label: str
    paper: str = ""
    options: tuple[Option, ...] = ()
    needs_ascent_gradient: bool = False

    @abstractmethod
    def perturbation_(self, params: Sequence[Tensor], grads: Sequence[Tensor], rho: Tensor) -> None:
        """Overwrite ``grads`` (holding ``g``) with ``rho * d``; ``rho`` is a 0-dim tensor.

        ``g`` is finite (``first_step`` takes a stock step without ascent otherwise); a zero gradient
        must give a zero perturbation, never NaN.
        """

    def plans_sam_step(self, step: int) -> bool:
        """Before the first pass of optimizer step ``step`` (0-based): SAM (True) or ERM (False)?"""
        return True

    def keeps_sam_step(self, step: int, grads: Sequence[Tensor], ranks: Ranks = LOCAL) -> bool:
        """After the first pass of a planned SAM step, from ``g``: still SAM (True) or ERM? ``ranks``: the
        optimizer's collectives, for a decision that every rank of a distributed model must take alike."""
        return True

    def descent_gradient_(
        self, params: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        """After a SAM step's second pass: turn ``g_hat`` (in ``grads``) into the descent gradient."""

    def descent_derivative_(
        self, params: Sequence[Tensor], b: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        """On a LETS step, before :meth:`descent_gradient_`: turn ``b = d g_hat / d rho`` (in ``b``) into the
        derivative in rho of the descent gradient, with ``g_hat`` in ``grads`` and ``g`` in ``ascent_grads`` (empty
        unless ``needs_ascent_gradient``). The default, a descent along ``g_hat``, leaves ``b`` as it is."""

    def erm_gradient_(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        """On an ERM step: turn ``g`` (in ``grads``) into the descent gradient."""

    def state_dict(self, params: list[Tensor]) -> dict[str, Any]:
        """The rule's state (tensors by the index of their parameter in ``params``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], params: list[Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
