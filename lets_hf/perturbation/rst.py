"""RST: Zhao, Zhang, Hu, "Randomized Sharpness-Aware Training for Boosting Computational
Efficiency in Deep Learning", 2022.

Each step is a SAM step with probability ``p`` (0.5 in the paper) and an ERM step otherwise, a
Bernoulli draw from a generator seeded by ``(seed, step)``: every rank of a distributed run and a
resumed run draw the same schedule without communicating. The paper also studies schedules of
``p``; the constant one is implemented.
"""

from __future__ import annotations

import torch

from ..checks import number
from ..options import Option
from ..seeding import step_generator
from .sam import SAM


class RST(SAM):
    name, label, paper = "rst", "RST", "Zhao et al., 2022"
    options = (Option("rst_p", float, "RST's probability of a SAM step", arg="p"),)

    def __init__(self, p: float = 0.5, seed: int = 0):
        self.p, self.seed = number("rst_p", p, "in [0, 1]", lambda x: 0 <= x <= 1), int(seed)

    def plans_sam_step(self, step: int) -> bool:
        return bool(torch.rand((), generator=step_generator(self.seed, step)) < self.p)

    def __repr__(self) -> str:
        return f"RST(p={self.p})"
