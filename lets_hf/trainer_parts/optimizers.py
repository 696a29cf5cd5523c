"""The optimizers inside accelerate's wrapper (``AcceleratedOptimizer.optimizer``), outermost first."""

from __future__ import annotations

import torch


def optimizer_chain(optimizer) -> list[torch.optim.Optimizer]:
    """``[optimizer, optimizer.optimizer, ...]`` down to the first without a wrapped ``optimizer`` (empty for None).

    Under the SAM family the chain ends ``..., LETSOptimizer`` (whose base optimizer is ``base_optimizer``)."""
    chain = []
    while optimizer is not None:
        chain.append(optimizer)
        optimizer = getattr(optimizer, "optimizer", None)
    return chain
