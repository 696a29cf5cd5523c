"""LookSAM: Liu, Mai, Chen, Hsieh, You, "Towards Efficient and Scalable Sharpness-Aware
Minimization", CVPR 2022.

A full SAM step every ``k`` steps (k = 5 in the paper). There the SAM gradient ``g_s`` is split
into its part along the clean gradient ``g`` and the rest,
``g_v = g_s - (<g, g_s> / ||g||^2) g``, which is stored. On the steps in between, one
forward+backward gives ``g`` and the descent uses ``g + alpha (||g|| / ||g_v||) g_v``
(alpha = 0.7 in the paper). The paper's layer-wise variant (for LAMB) is not implemented.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor

from ..foreach import dot, global_norm, safe_scale
from .sam import SAM


class LookSAM(SAM):
    name = "looksam"
    needs_ascent_gradient = True

    def __init__(self, k: int = 5, alpha: float = 0.7):
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"looksam_k must be an integer >= 1, got {k!r}")
        if not alpha >= 0:
            raise ValueError(f"looksam_alpha must be >= 0, got {alpha!r}")
        self.k, self.alpha = k, float(alpha)
        self.orthogonal: Dict[Tensor, Tensor] = {}  # g_v of the last SAM step, by parameter

    def plans_sam_step(self, step: int) -> bool:
        return step % self.k == 0

    def descent_gradient_(self, params: Sequence[Tensor], grads: Sequence[Tensor],
                          ascent_grads: Sequence[Tensor]) -> None:
        clean, grads = list(ascent_grads), list(grads)
        along = safe_scale(dot(clean, grads), dot(clean, clean))  # <g, g_s> / ||g||^2
        stored = [self.orthogonal.setdefault(p, torch.empty_like(g)) for p, g in zip(params, grads)]
        torch._foreach_copy_(stored, grads)
        torch._foreach_add_(stored, torch._foreach_mul(clean, -along.to(clean[0].dtype)))

    def erm_gradient_(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        pairs = [(g, self.orthogonal[p]) for p, g in zip(params, grads) if p in self.orthogonal]
        if not pairs:
            return  # no SAM step yet
        grads_with, stored = [g for g, _ in pairs], [v for _, v in pairs]
        scale = self.alpha * safe_scale(global_norm(grads), global_norm(stored))
        torch._foreach_add_(grads_with, torch._foreach_mul(stored, scale.to(stored[0].dtype)))

    def state_dict(self, params: List[Tensor]) -> Dict[str, Any]:
        return {"orthogonal": {i: self.orthogonal[p].clone() for i, p in enumerate(params) if p in self.orthogonal}}

    def load_state_dict(self, state: Dict[str, Any], params: List[Tensor]) -> None:
        self.orthogonal = {params[int(i)]: v.to(params[int(i)]).clone()
                           for i, v in state.get("orthogonal", {}).items()}

    def __repr__(self) -> str:
        return f"LookSAM(k={self.k}, alpha={self.alpha})"
