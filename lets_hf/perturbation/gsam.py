"""GSAM: Zhuang, Gong, Yuan, Cui, Adam, Dvornek, Tatikonda, Duncan, Liu, "Surrogate Gap Guided
Sharpness-Aware Minimization", ICLR 2022.

The ascent is SAM's. The descent gradient adds a step that lowers the surrogate gap without
raising the perturbed loss: decompose the clean gradient ``g`` into its parts parallel and
orthogonal to the perturbed gradient ``g_hat``,
``g_perp = g - (<g, g_hat> / ||g_hat||^2) g_hat``, and descend along ``g_hat - alpha * g_perp``
(``alpha = 0`` is SAM). The paper's rho proportional to the learning rate is a radius schedule,
:class:`~lets_hf.radius.LRProportionalRadius`, not part of this rule. With LETS, ``b`` is the
derivative in rho of that whole descent gradient ``u = (1 + alpha p) g_hat - alpha g`` with
``p = <g, g_hat> / ||g_hat||^2`` (``g`` does not depend on rho): from ``b_hat = d g_hat / d rho``,
``du / d rho = (1 + alpha p) b_hat + alpha g_hat (<g, b_hat> - 2 p <g_hat, b_hat>) / ||g_hat||^2``.
Paper and official code agree on this decomposition; ``alpha`` defaults to 0.4, the official
example's value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..checks import non_negative
from ..foreach import dot, safe_scale
from ..options import Option
from .sam import SAM


class GSAM(SAM):
    name, label, paper = "gsam", "GSAM", "Zhuang et al., ICLR 2022"
    options = (Option("gsam_alpha", float, "GSAM's surrogate-gap weight (the official example's)", arg="alpha"),)
    needs_ascent_gradient = True

    def __init__(self, alpha: float = 0.4):
        self.alpha = non_negative("gsam_alpha", alpha)

    def descent_gradient_(
        self, params: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        grads, clean = list(grads), list(ascent_grads)
        projection = safe_scale(dot(clean, grads), dot(grads, grads))  # p = <g, g_hat> / ||g_hat||^2
        # g_hat - alpha * (g - projection * g_hat) = (1 + alpha * projection) g_hat - alpha g
        torch._foreach_mul_(grads, (1 + self.alpha * projection).to(grads[0].dtype))
        torch._foreach_add_(grads, clean, alpha=-self.alpha)

    def descent_derivative_(
        self, params: Sequence[Tensor], b: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        b, grads, clean = list(b), list(grads), list(ascent_grads)
        squared = dot(grads, grads)
        projection = safe_scale(dot(clean, grads), squared)
        slope = safe_scale(dot(clean, b) - 2 * projection * dot(grads, b), squared)  # dp / d rho
        torch._foreach_mul_(b, (1 + self.alpha * projection).to(b[0].dtype))
        torch._foreach_add_(b, torch._foreach_mul(grads, (self.alpha * slope).to(b[0].dtype)))

    def __repr__(self) -> str:
        return f"GSAM(alpha={self.alpha})"
