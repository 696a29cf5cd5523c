"""``--optimizer lets_adam``: fairseq's Adam as the base optimizer of a :class:`~lets_hf.LETSOptimizer`.

fairseq builds its optimizer from ``--optimizer`` before it loads a checkpoint, and saves and loads the
optimizer's ``state_dict`` in ``checkpoint_last.pt``. Registered here, the optimizer is the place where
``rho``, its Adam state, the rule's state and the step counters enter and leave fairseq's checkpoints:
``state_dict`` is :meth:`LETSOptimizer.state_dict <lets_hf.LETSOptimizer.state_dict>`. The flags are
fairseq's Adam's (``--adam-betas``, ``--adam-eps``, ``--weight-decay``) and one per option of the
SAM family (:func:`lets_hf.methods.method_options`: ``--lets-optim``, ``--rho``, ``--lets-preset``,
``--asam-xi``, ...), declared once in ``lets_hf`` and turned into fairseq flags here.

The step itself is the task's (:mod:`.task`): fairseq's ``Trainer`` computes the ascent gradient ``g``,
normalises it (``multiply_grads``) and measures it (``clip_grad_norm``); this optimizer records that
normalisation, so that the task normalises the perturbed pass the same way, and does not clip ``g``
(clipping the ascent gradient would change ``b`` and the rules that use its size): ``--clip-norm``
clips ``g_hat``, the gradient of the base step, in :meth:`clip_descent_gradient`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from fairseq import utils
from fairseq.dataclass import ChoiceEnum
from fairseq.optim import register_optimizer
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig
from fairseq.tasks import TASK_REGISTRY
from omegaconf import II

from lets_hf import LETSOptimizer
from lets_hf.methods import SAM_FAMILY, build_method, method_options

DEFAULT_PRESET = "paper_iwslt"  # the paper's IWSLT'14 rule, as translation/run_translation.py's default


def _flag_field(option) -> tuple[str, Any, dataclasses.Field]:
    """A fairseq dataclass field (``--asam-xi`` on the command line) for one :class:`lets_hf.options.Option`."""
    default = DEFAULT_PRESET if option.name == "lets_preset" else option.default
    kind = ChoiceEnum(list(option.choices)) if option.choices else option.type
    kind = Optional[kind] if default is None else kind  # noqa: UP045 (fairseq reads typing.Optional, not X | None)
    return option.name, kind, dataclasses.field(default=default, metadata={"help": option.described()})


LETSAdamConfig = dataclasses.make_dataclass(
    "LETSAdamConfig",
    [
        (
            "lets_optim",
            ChoiceEnum(SAM_FAMILY),
            dataclasses.field(
                default="lets_sam",
                metadata={
                    "help": "The SAM-family method: sam, asam, ... (fixed --rho) or lets_* (rho learned by LETS)"
                },
            ),
        ),
        *(_flag_field(option) for option in method_options().values()),
        # from the rest of fairseq's configuration (no flag of their own)
        ("seed", int, dataclasses.field(default=II("common.seed"))),
        ("max_update", int, dataclasses.field(default=II("optimization.max_update"))),
        ("task", str, dataclasses.field(default=II("task._name"))),
    ],
    bases=(FairseqAdamConfig,),
)


def _value(value: Any) -> Any:
    """A configuration value as Python sees it (fairseq's choice enums are their strings)."""
    return getattr(value, "value", value)


@register_optimizer("lets_adam", dataclass=LETSAdamConfig)
class FairseqLETSAdam(FairseqAdam):
    """fairseq's Adam (decoupled weight decay, fairseq's own implementation) inside a ``LETSOptimizer``."""

    def __init__(self, cfg, params):
        check_task(cfg)
        params = list(params)
        super().__init__(cfg, params)
        if cfg.max_update and cfg.max_update > 0:
            total_steps = int(cfg.max_update)
        else:
            total_steps = None
        values = {name: _value(getattr(cfg, name)) for name in method_options()}
        try:
            rule, radius = build_method(
                _value(cfg.lets_optim),
                values,
                seed=cfg.seed,
                total_steps=total_steps,
                base_optimizer=type(self._optimizer),
            )
        except ValueError as error:
            if total_steps is None and "total number of optimizer steps" in str(error):
                raise ValueError(
                    f"--lets-preset {values['lets_preset']} sets rho's rate from the run's length: give --max-update "
                    "(or set --rho-lr and --rho-lr-decay)"
                ) from error
            raise
        self._optimizer = LETSOptimizer(
            params, type(self._optimizer), perturbation=rule, radius=radius, **self.optimizer_config
        )
        self.gradient_multiplier: float | None = None  # what fairseq's Trainer multiplied the ascent gradient by

    @property
    def lets(self) -> LETSOptimizer:
        return self._optimizer

    def multiply_grads(self, c) -> None:
        """fairseq's Trainer normalises the ascent gradient here (``world size / sample size``): remembered for
        the perturbed pass and the hyper passes, which the task normalises the same way."""
        self.gradient_multiplier = c
        super().multiply_grads(c)

    def clip_grad_norm(self, max_norm, aggregate_norm_fn=None):
        """The norm of the gradient in ``.grad``, unclipped: fairseq's Trainer calls this on the ascent gradient
        ``g``, which SAM never clips. ``--clip-norm`` clips ``g_hat`` (:meth:`clip_descent_gradient`)."""
        return utils.clip_grad_norm_(self.params, 0.0, aggregate_norm_fn)

    def clip_descent_gradient(self, max_norm: float):
        """fairseq's clipping (``--clip-norm``) of ``g_hat``, the gradient the base step takes; returns its norm."""
        return utils.clip_grad_norm_(self.params, max_norm)


def check_task(cfg) -> None:
    """``--optimizer lets_adam`` needs a task that runs SAM's passes (``runs_sam_passes``: :mod:`.task`)."""
    if not getattr(TASK_REGISTRY.get(cfg.task), "runs_sam_passes", False):
        lets_tasks = sorted(name for name, cls in TASK_REGISTRY.items() if getattr(cls, "runs_sam_passes", False))
        raise ValueError(
            f"--optimizer lets_adam needs a task that runs SAM's passes: --task {' or '.join(lets_tasks)} "
            f"(got --task {cfg.task})"
        )
