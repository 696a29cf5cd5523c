"""LookSAM: Liu, Mai, Chen, Hsieh, You, "Towards Efficient and Scalable Sharpness-Aware
Minimization", CVPR 2022.

A full SAM step every ``k`` steps (k = 5 in the paper). There the SAM gradient ``g_s`` is split
into its part along the clean gradient ``g`` and the rest,
``g_v = g_s - (<g, g_s> / ||g||^2) g``, which is stored. On the steps in between, one
forward+backward gives ``g`` and the descent uses ``g + alpha (||g|| / ||g_v||) g_v``
(alpha = 0.7 in the paper). No official code exists; ``split`` says over what the inner products
and norms run:

- ``"whole"`` (the default): the whole gradient, all tensors together, as the paper's
  Algorithm 1 writes ``g``, ``g_s`` and ``g_v`` (vectors of the whole model).
- ``"tensor"``: each parameter tensor on its own, as the public implementations do
  (``pytorch_optimizer``'s ``LookSAM``, and the most used standalone one); a test checks it against
  ``pytorch_optimizer`` 4.1.

``whole`` stays the default because it is the paper's algorithm as written, which a reproduction of
the paper's baseline should get. The paper's layer-wise variant for LAMB (a per-layer rescaling
of the update) is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import choice, integer, non_negative
from ..foreach import copy_, dot, global_norm, safe_scale
from ..options import Option
from ..sharding import like
from .sam import SAM

LOOKSAM_SPLITS = ("whole", "tensor")
LOOKSAM_ALPHA = Option(
    "looksam_alpha",
    float,
    "LookSAM / AE-LookSAM: weight of the reused orthogonal gradient",
    arg="alpha",
    paper="Liu et al., CVPR 2022",
)
LOOKSAM_SPLIT = Option(
    "looksam_split",
    str,
    "LookSAM / AE-LookSAM: split g_s against g over the whole gradient "
    "(whole, the paper's Algorithm 1) or per tensor (tensor, as "
    "pytorch_optimizer)",
    arg="split",
    choices=LOOKSAM_SPLITS,
    paper="Liu et al., CVPR 2022",
)


class LookSAM(SAM):
    name, label, paper = "looksam", "LookSAM", "Liu et al., CVPR 2022"
    options = (
        Option("looksam_k", int, "LookSAM: a full SAM step every k steps", arg="k"),
        LOOKSAM_ALPHA,
        LOOKSAM_SPLIT,
    )
    needs_ascent_gradient = True

    def __init__(self, k: int = 5, alpha: float = 0.7, split: str = "whole"):
        self.k = integer("looksam_k", k, 1)
        self.alpha = non_negative("looksam_alpha", alpha)
        self.split = choice("looksam_split", split, LOOKSAM_SPLITS)
        self.orthogonal: dict[Tensor, Tensor] = {}  # g_v of the last SAM step, by parameter

    def plans_sam_step(self, step: int) -> bool:
        return step % self.k == 0

    def descent_gradient_(
        self, params: Sequence[Tensor], grads: Sequence[Tensor], ascent_grads: Sequence[Tensor]
    ) -> None:
        clean, grads = list(ascent_grads), list(grads)
        if self.split == "whole":  # <g, g_s> / ||g||^2
            along = [safe_scale(dot(clean, grads), dot(clean, clean))] * len(clean)
        else:
            along = [safe_scale(dot([g], [s]), dot([g], [g])) for g, s in zip(clean, grads)]
        stored = [self.orthogonal.setdefault(p, torch.empty_like(g)) for p, g in zip(params, grads)]
        copy_(stored, grads)
        torch._foreach_sub_(stored, torch._foreach_mul(clean, [a.to(clean[0].dtype) for a in along]))

    def erm_gradient_(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        pairs = [(g, self.orthogonal[p]) for p, g in zip(params, grads) if p in self.orthogonal]
        if not pairs:
            return  # no SAM step yet
        grads_with, stored = [g for g, _ in pairs], [v for _, v in pairs]
        if self.split == "whole":  # alpha ||g|| / ||g_v||
            scales = [self.alpha * safe_scale(global_norm(grads_with), global_norm(stored))] * len(stored)
        else:
            scales = [
                self.alpha * safe_scale(n, v)
                for n, v in zip(torch._foreach_norm(grads_with), torch._foreach_norm(stored))
            ]
        torch._foreach_add_(grads_with, torch._foreach_mul(stored, [s.to(stored[0].dtype) for s in scales]))

    def state_dict(self, params: list[Tensor]) -> dict[str, Any]:
        return {"orthogonal": {i: self.orthogonal[p].clone() for i, p in enumerate(params) if p in self.orthogonal}}

    def load_state_dict(self, state: dict[str, Any], params: list[Tensor]) -> None:
        self.orthogonal = {params[int(i)]: like(v, params[int(i)]) for i, v in state.get("orthogonal", {}).items()}

    def __repr__(self) -> str:
        return f"LookSAM(k={self.k}, alpha={self.alpha}, split={self.split!r})"
