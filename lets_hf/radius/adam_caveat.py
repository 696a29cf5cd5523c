"""What was measured of a learned radius over an Adam-family base optimizer, said where it matters.

Under SGD the one-step hypergradient (``--lets_preset robust_next``, what ``auto`` picks there) reaches the best
fixed radius from every start at SAM's cost; under Adam and AdamW (where users fine-tune) no setting tried did, on a
noisy-label image proxy or on noisy SST-2 (issue 28; ``benchmarks/results/digits_proxy/README.md``,
``glue/results/noisy/README.md``, the summary in ``docs/faq.md``). :func:`adam_family_caveat` says so, in one
message, for a learned radius over such an optimizer; ``LETSTrainer`` logs it once per run.
"""

from __future__ import annotations

import torch

# The torch optimizers whose step divides by a running root mean square of the gradient (Kingma & Ba, 2015).
ADAM_FAMILY: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.Adamax,
)
MEASUREMENTS = "benchmarks/results/digits_proxy/README.md and docs/faq.md"


def adam_family_caveat(base_optimizer: torch.optim.Optimizer, perturbation: str) -> str | None:
    """The measured caveat for a learned radius with ``perturbation`` (``"sam"``, ``"asam"``, ...) over
    ``base_optimizer``; None unless that optimizer is of :data:`ADAM_FAMILY`."""
    if not isinstance(base_optimizer, ADAM_FAMILY):
        return None
    by_rule = {
        "sam": "LETS-SAM settled 2.5-6x below SAM's best radius from every start, with or without a warm-up of the "
        "radius, and scored up to 3.9 points below it; ",
        "asam": "LETS-ASAM ended at 1.1-1.5x ASAM's best radius from every start but scored 0.5-1.9 points below "
        "SAM's best, and on noisy SST-2 it drove rho to its floor or grew it while the model stayed at chance; ",
    }
    return (
        f"a learned radius over {type(base_optimizer).__name__} has not been measured to reach the best fixed "
        f"radius: on a noisy-label image proxy {by_rule.get(perturbation, '')}on noisy SST-2 (AdamW) the final "
        "radii of LETS-SAM from four starts ended a factor 4 to 19,000 apart. Under an Adam-family optimizer a "
        f"small grid of fixed radii (--optim {perturbation if perturbation in by_rule else 'sam'} --rho ...) is "
        f"the measured choice; a learned radius was measured to work under SGD. See {MEASUREMENTS}"
    )
