"""How the descent step carries rho into theta_{t+1}: ``d theta_{t+1} / d rho = -eta J b``.

LETS differentiates the upper objective at ``theta_{t+1}`` through the descent step taken with the
SAM gradient ``g_hat(rho)``, whose derivative is ``b = d g_hat / d rho`` (:mod:`.hvp`). The
paper (Wang et al., ECCV 2024, Algorithm 1) writes that step as SGD's,
``theta_{t+1} = theta_t - eta g_hat``, so ``J = I`` (``sgd``). With ``torch.optim.SGD`` as the base
optimizer, ``sgd`` is exact: torch steps by ``-eta u`` with ``d = g_hat + lambda theta_t`` (weight
decay ``lambda``; negated under ``maximize``), the buffer ``m = d`` at its first step and
``m = mu m + (1 - dampening) d`` after, and ``u = m``, or ``u = d + mu m`` with ``nesterov``. Only
``g_hat`` depends on rho, so per tensor ``J = c I`` with ``c = k``, or ``c = 1 + mu k`` with nesterov,
where ``k = 1`` at the buffer's first step and ``1 - dampening`` after (``c = 1`` without momentum;
``-c`` under ``maximize``). Plain momentum without dampening or nesterov gives ``c = 1``, the
paper's form; ``c`` is read from the buffer's state before the step. With another base optimizer,
``sgd`` is the paper's ``J = I`` as an approximation. Adam and AdamW (Kingma & Ba 2015;
Loshchilov & Hutter 2019) step by ``-eta m_hat / D`` with ``m = beta1 m + (1 - beta1) g_hat``,
``v = beta2 v + (1 - beta2) g_hat^2``, ``m_hat = m / c1``, ``v_hat = v / c2``
(``c_i = 1 - beta_i^t``) and ``D = sqrt(v_hat) + eps``; their decoupled weight decay does not
depend on rho. The chain rule through that step (``adam``) gives the diagonal

    J b = (1 - beta1) / c1 * b / D  -  m_hat / D^2 * (1 - beta2) g_hat b / (c2 sqrt(v_hat)),

read from the optimizer's moments after its step. Under AdamW the ``sgd`` form is only the
first term's direction without Adam's per-coordinate scale ``1 / D``; on the GLUE evidence
workload it pointed the wrong way on 8 of 30 steps against a finite difference through the real
step, ``adam`` on 3 (``benchmarks/base_optimizer_hypergradient.py``). Gradient clipping by norm,
applied before the step, is not differentiated (as in the paper).
"""

from __future__ import annotations

from abc import ABC

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..checks import choice


class DescentJacobian(ABC):
    """Turns ``b`` into ``J b`` in place after the base optimizer's step (``eta`` is applied later, per group)."""

    name: str

    def check(self, base_optimizer: Optimizer) -> None:
        """Raise ValueError where this form does not describe ``base_optimizer``'s step."""

    def before_step(self, b: dict[Tensor, Tensor], base_optimizer: Optimizer) -> None:
        """Just before the base optimizer's step: the part of ``J`` that depends on the state before it."""

    def apply_(self, b: dict[Tensor, Tensor], base_optimizer: Optimizer) -> None:
        """After the step: ``b[p] <- J b[p]`` for every parameter ``p`` in ``b``, with ``g_hat`` in ``p.grad``."""


class SGDJacobian(DescentJacobian):
    """``J = I``, the paper's SGD step; ``J = c I`` per tensor for ``torch.optim.SGD`` (module docstring)."""

    name = "sgd"

    @torch.no_grad()
    def before_step(self, b, base_optimizer) -> None:
        if not isinstance(base_optimizer, torch.optim.SGD):
            return
        for group in base_optimizer.param_groups:
            for p in group["params"]:
                if p in b:
                    b[p].mul_(self.factor(group, base_optimizer.state[p].get("momentum_buffer") is not None))

    @staticmethod
    def factor(group, has_buffer: bool) -> float:
        """``c``: the derivative of torch's SGD update ``u`` by ``g_hat``, per tensor."""
        momentum = group.get("momentum", 0.0)
        k = 1 - group.get("dampening", 0.0) if has_buffer else 1.0
        c = (1 + momentum * k if group.get("nesterov") else k) if momentum else 1.0
        return -c if group.get("maximize") else c


class AdamJacobian(DescentJacobian):
    """The diagonal ``J`` of an Adam / AdamW step (module docstring)."""

    name = "adam"

    def check(self, base_optimizer: Optimizer) -> None:
        if not isinstance(base_optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            raise ValueError(
                f"lets_descent 'adam' needs an Adam or AdamW base optimizer, got "
                f"{type(base_optimizer).__name__}; use 'sgd' (the paper's form) for others"
            )
        for group in base_optimizer.param_groups:
            if group.get("amsgrad") or group.get("maximize"):
                raise ValueError("lets_descent 'adam' does not cover amsgrad or maximize; turn them off or use 'sgd'")
            if group.get("weight_decay") and not group.get("decoupled_weight_decay"):
                raise ValueError(
                    "lets_descent 'adam' covers decoupled weight decay only (AdamW); Adam's L2 "
                    "weight_decay adds theta to the moments' gradient. Use AdamW or 'sgd'"
                )

    @torch.no_grad()
    def apply_(self, b, base_optimizer) -> None:
        for group in base_optimizer.param_groups:
            for p in group["params"]:
                if p in b and p.grad is not None:
                    self.product_(base_optimizer.state[p], p.grad, b[p], group)

    @staticmethod
    def product_(state, g_hat: Tensor, b: Tensor, group, second_term: bool = True) -> None:
        """``b <- J b = first - second`` for one tensor (module docstring), or ``b <- first`` without
        ``second_term``; both terms 0 where ``v`` is still 0 (no gradient yet, where ``sqrt(v)`` has no derivative).

        In place, with two temporaries of ``b``'s size (``sqrt(v_hat)`` is recomputed rather than kept): on a
        model whose word embedding is most of its parameters a temporary per factor would be several times
        the parameters' bytes at the peak of a step (``benchmarks/peak_memory.py``). The operations and their
        order are those of the formula, so the result is the same bit for bit."""
        beta1, beta2 = group["betas"]
        step = state["step"]  # a tensor, on the device for fused/capturable AdamW: no host sync
        c1, c2 = 1 - beta1**step, 1 - beta2**step
        tiny, eps, v = torch.finfo(b.dtype).tiny, group["eps"], state["exp_avg_sq"]
        scratch = torch.empty_like(b)

        def root_v():  # sqrt(v_hat), into scratch
            return torch.div(v, c2, out=scratch).sqrt_()

        not_started = (root_v() > 0).logical_not_()
        second = None
        if second_term:  # m_hat / D^2 * (1 - beta2) g_hat b / (c2 sqrt(v_hat)), D = sqrt(v_hat) + eps
            second = torch.div(state["exp_avg"], c1)
            second.div_(root_v().add_(eps).clamp_min_(tiny).pow_(2)).mul_(1 - beta2).mul_(g_hat).mul_(b)
            second.div_(root_v().clamp_min_(tiny).mul_(c2)).masked_fill_(not_started, 0.0)
        b.mul_((1 - beta1) / c1).div_(root_v().add_(eps).clamp_min_(tiny)).masked_fill_(not_started, 0.0)  # first
        if second is not None:
            b.sub_(second)


DESCENT_FORMS = {form.name: form for form in (SGDJacobian, AdamJacobian)}


def get_descent(name: str) -> DescentJacobian:
    """The form called ``name``: ``sgd`` (the paper's) or ``adam``."""
    return DESCENT_FORMS[choice("lets_descent", name, sorted(DESCENT_FORMS))]()
