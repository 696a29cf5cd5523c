"""``--task translation_lets``: fairseq's translation task whose update is a LETS step.

A fairseq task owns the train step (``train_step`` per micro-batch, ``optimizer_step`` per update), so the
SAM passes are run here; the optimizer that holds ``rho`` is ``--optimizer lets_adam`` (:mod:`.optimizer`).
:class:`LETSTaskMixin` is the whole orchestration and works for any fairseq task whose ``train_step`` is
fairseq's (a forward with the criterion, ``optimizer.backward``): ``translation_lets`` is it on
``translation``. With an optimizer of fairseq's own (``--optimizer adam``) the task is ``translation``
unchanged (ERM). (No ``from __future__ import annotations`` here: fairseq reads the config's field types.)
"""

import dataclasses
from typing import Optional

from fairseq import utils
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from .optimizer import FairseqLETSAdam
from .step import LETSStep
from .validation import validation_batches

SUPPORTED_DDP_BACKENDS = ("pytorch_ddp", "c10d")


@dataclasses.dataclass
class LETSTaskConfig:
    """The task's LETS flag, and what it reads from the rest of fairseq's configuration (no flag of their own).

    ``Optional[...]``, not ``... | None``: fairseq's argument parser understands only the former.
    """

    lets_val_subset: Optional[str] = dataclasses.field(  # noqa: UP045
        default=None,
        metadata={
            "help": "The subset the LETS validation batches come from (the paper's: the training set; default "
            "--train-subset), batched by --max-tokens / --batch-size"
        },
    )
    seed: int = II("common.seed")
    clip_norm: float = II("optimization.clip_norm")
    use_bmuf: bool = II("optimization.use_bmuf")
    max_tokens: Optional[int] = II("dataset.max_tokens")  # noqa: UP045
    batch_size: Optional[int] = II("dataset.batch_size")  # noqa: UP045
    required_batch_size_multiple: int = II("dataset.required_batch_size_multiple")
    cpu: bool = II("common.cpu")
    fp16: bool = II("common.fp16")
    bf16: bool = II("common.bf16")
    amp: bool = II("common.amp")
    optimizer: Optional[str] = II("optimizer._name")  # noqa: UP045
    ddp_backend: str = II("distributed_training.ddp_backend")
    distributed_world_size: int = II("distributed_training.distributed_world_size")


class LETSTaskMixin:
    """A fairseq task whose update is a LETS step with ``--optimizer lets_adam`` (:mod:`.step`)."""

    runs_sam_passes = True  # what --optimizer lets_adam checks

    def __init__(self, cfg, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        check_precision(cfg)
        check_distributed(cfg)
        self._lets_step = LETSStep()
        self._criterion = None
        self._validation = None  # (dataset, ValidationBatches), built at the first hyper step

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **kwargs):
        """fairseq's own train step (SAM's ascent pass), remembering the micro-batch for the passes to come."""
        loss, sample_size, logging_output = super().train_step(
            sample, model, criterion, optimizer, update_num, ignore_grad, **kwargs
        )
        if isinstance(optimizer, FairseqLETSAdam):
            self._lets_step.remember(sample, ignore_grad, loss)
            self._criterion = criterion
        return loss, sample_size, logging_output

    def optimizer_step(self, optimizer, model, update_num):
        if not isinstance(optimizer, FairseqLETSAdam):
            return super().optimizer_step(optimizer, model, update_num)
        self._lets_step.finish(
            optimizer, model, self._criterion, self.cfg.clip_norm, lambda: self._validation_batch(model, update_num)
        )

    def _validation_batch(self, model, update_num: int) -> dict:
        """Validation batch ``update_num`` (:mod:`.validation`), on the model's device."""
        dataset = self.dataset(self.cfg.lets_val_subset or self.cfg.train_subset)
        if self._validation is None or self._validation[0] is not dataset:  # a new epoch's shard of the data
            batches = validation_batches(
                self,
                self.cfg.lets_val_subset or self.cfg.train_subset,
                model,
                self.cfg.max_tokens,
                self.cfg.batch_size,
                self.cfg.required_batch_size_multiple,
                self.cfg.seed,
            )
            self._validation = (dataset, batches)
        sample = self._validation[1].batch(update_num)
        device = next(model.parameters()).device
        return sample if device.type == "cpu" else _to(sample, device)


def check_precision(cfg) -> None:
    """fp32 on a CPU (fairseq trains in half precision on GPUs only) and with ``--optimizer lets_adam``: fairseq's
    half-precision optimizers step fp32 master copies of the weights, which SAM's perturbation would not reach."""
    for flag in ("fp16", "bf16", "amp"):
        if getattr(cfg, flag) and (cfg.cpu or cfg.optimizer == "lets_adam"):
            where = "on a CPU (--cpu)" if cfg.cpu else "with --optimizer lets_adam"
            raise ValueError(
                f"--{flag} is not supported {where}: train in fp32 (drop --{flag}); fairseq's half-precision "
                "optimizers step fp32 master copies of the weights, which SAM's perturbation would not reach"
            )


def check_distributed(cfg) -> None:
    """Several workers under fairseq's DDP (``pytorch_ddp``) only: the other back ends reduce or shard the
    gradients where SAM's passes cannot follow."""
    if cfg.distributed_world_size > 1 and str(getattr(cfg.ddp_backend, "value", cfg.ddp_backend)) not in (
        SUPPORTED_DDP_BACKENDS
    ):
        raise ValueError(
            f"--ddp-backend {cfg.ddp_backend} is not supported with LETS: use --ddp-backend pytorch_ddp (the default)"
        )
    if cfg.use_bmuf:
        raise ValueError("--use-bmuf is not supported with LETS (BMUF steps each worker on its own gradient)")


def _to(sample: dict, device):
    return utils.apply_to_sample(lambda tensor: tensor.to(device), sample)


@dataclasses.dataclass
class TranslationLETSConfig(TranslationConfig, LETSTaskConfig):
    pass


@register_task("translation_lets", dataclass=TranslationLETSConfig)
class TranslationLETSTask(LETSTaskMixin, TranslationTask):
    """fairseq's ``translation`` with LETS steps (``--optimizer lets_adam``)."""
