"""Arithmetic on lists of tensors, one fused ``torch._foreach_*`` call per list.

Every rule of the library works on the parameters of a model as a list of tensors; these
helpers keep that work to one kernel launch per list (per device and dtype) instead of one per
tensor, and return 0-dim tensors so that nothing waits on the host. On sharded (FSDP2) tensors the norm
and the dot product are global, summed over every rank's shards (:mod:`lets_hf.sharding`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from . import sharding


def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """The 2-norm of all tensors taken together, ``sqrt(sum_i ||t_i||^2)``, as a 0-dim tensor."""
    if not tensors:
        return torch.zeros(())
    if sharding.contains_sharded(tensors):
        return sharding.sum_over_shards(lambda local: _norm(local) ** 2, tensors).sqrt()
    return _norm(tensors)


def _norm(tensors: Sequence[Tensor]) -> Tensor:
    norms = torch._foreach_norm(list(tensors))
    device = tensors[0].device
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))


def dot(a: Sequence[Tensor], b: Sequence[Tensor], *, into_a: bool = False) -> Tensor:
    """The inner product ``sum_i <a_i, b_i>`` of two aligned tensor lists, as a 0-dim float64 tensor.

    Tensor by tensor: the temporary products are one tensor's size at a time, not the whole list's
    (a model's worth of memory at the peak of a LETS step, ``benchmarks/peak_memory.py``). With
    ``into_a`` the products are written into ``a`` (a list the caller no longer needs), so that the
    only temporary is the float64 copy that the sum makes of one tensor; the value is the same bit for bit."""
    if not a:
        return torch.zeros((), dtype=torch.float64)
    partial_sum = functools.partial(_dot, into_a=into_a)
    if sharding.contains_sharded(a):
        return sharding.sum_over_shards(partial_sum, a, b)
    return partial_sum(a, b)


def _dot(a: Sequence[Tensor], b: Sequence[Tensor], into_a: bool) -> Tensor:
    device = a[0].device
    product = torch.Tensor.mul_ if into_a else torch.mul
    return torch.stack([product(x, y).sum(dtype=torch.float64).to(device) for x, y in zip(a, b)]).sum()


def copy_(targets: Sequence[Tensor], sources: Sequence[Tensor]) -> None:
    """Copy ``sources`` into ``targets`` element for element (bit-exact)."""
    if targets:  # DTensors have no _foreach_copy_: their shards are copied
        torch._foreach_copy_(sharding.local(targets), sharding.local(sources))


def safe_scale(numerator: Tensor, norm: Tensor) -> Tensor:
    """``numerator / norm``, or 0 where ``norm`` is 0 or not finite (a zero gradient, or a finite one whose norm
    overflowed). A NaN or inf inside the gradient survives the product (``NaN * 0`` is NaN): ``first_step`` skips
    the ascent before a rule ever sees such a gradient."""
    usable = torch.isfinite(norm) & (norm > 0)
    return torch.where(usable, numerator / torch.where(usable, norm, torch.ones_like(norm)), torch.zeros_like(norm))
