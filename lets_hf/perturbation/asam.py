"""ASAM: Kwon, Kim, Park, Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
Learning of Deep Neural Networks", ICML 2021.

The perturbation region is scaled by the normalisation operator ``T = diag(|theta| + xi)``, which
gives ``e = rho * T^2 g / ||T g||``. As in the official code, ``T`` applies to weight tensors and
is 1 on the rest. The official code picks "weight tensors" by the name containing ``weight``
(which includes norm-layer gains); this module takes a predicate on the tensor, by default
``p.ndim > 1`` (matrices and convolution kernels). Pass :func:`named_weight_filter` to follow the
official code's naming rule exactly, or ``lambda p: True`` for ``T`` on every tensor (the form of
``pytorch_optimizer``'s ``adaptive=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..checks import non_negative
from ..foreach import global_norm, safe_scale
from ..options import Option
from .base import PerturbationRule

TensorFilter = Callable[[Tensor], bool]


def is_weight_matrix(param: Tensor) -> bool:
    """The default ASAM filter: matrices and convolution kernels (``ndim > 1``)."""
    return param.ndim > 1


def named_weight_filter(model: nn.Module) -> TensorFilter:
    """The official ASAM filter: parameters of ``model`` whose name contains ``"weight"``."""
    weight_ids = {id(p) for name, p in model.named_parameters() if "weight" in name}
    return lambda param: id(param) in weight_ids


class ASAM(PerturbationRule):
    """``d = T^2 g / ||T g||`` with ``T = |theta| + xi`` on tensors that ``weight_filter`` accepts."""

    name, label, paper = "asam", "ASAM", "Kwon et al., ICML 2021"
    options = (Option("asam_xi", float, "ASAM's xi in T = |theta| + xi", arg="xi"),)

    def __init__(self, xi: float = 0.01, weight_filter: TensorFilter = is_weight_matrix):
        self.xi = non_negative("asam_xi", xi)
        if not callable(weight_filter):
            raise ValueError(f"weight_filter must be a callable taking a tensor, got {weight_filter!r}")
        self.weight_filter = weight_filter

    def perturbation_(self, params: Sequence[Tensor], grads: Sequence[Tensor], rho: Tensor) -> None:
        scaled = [(p, g) for p, g in zip(params, grads) if self.weight_filter(p)]
        weights = [p for p, _ in scaled]
        weight_grads = [g for _, g in scaled]
        if weights:
            t = torch._foreach_abs(weights)
            torch._foreach_add_(t, self.xi)
            torch._foreach_mul_(weight_grads, t)  # T g
        scale = safe_scale(rho, global_norm(grads))  # rho / ||T g||
        if weights:
            torch._foreach_mul_(weight_grads, t)  # T^2 g
        torch._foreach_mul_(list(grads), scale.to(grads[0].dtype))

    def __repr__(self) -> str:
        return f"ASAM(xi={self.xi})"
