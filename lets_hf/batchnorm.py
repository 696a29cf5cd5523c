"""Keep BatchNorm running statistics out of SAM's extra forward passes.

SAM's second pass runs at perturbed weights and LETS's hyper passes on other batches; their
batch statistics must not enter the running averages, so that only the clean first pass moves
them, as in a plain training loop. Turning ``track_running_stats`` off for a pass makes
BatchNorm normalise with the batch's statistics and leave the running buffers (and
``num_batches_tracked``) exactly as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm layers of ``model`` in training mode do not update their statistics."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats and m.training]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True
