"""``LETSArguments``: ``TrainingArguments`` that also accept the SAM family on ``--optim``.

``--optim lets_sam`` (or ``lets_asam``) trains with the learned radius of LETS (Wang et al.,
ECCV 2024); ``--optim sam`` / ``asam`` with a fixed ``--rho``; every stock name (``adamw_torch``,
``sgd``, ...) means plain ERM, unchanged. The SAM family's descent step is taken by
``--lets_base_optim`` (a stock name). Stock ``TrainingArguments`` turns ``optim`` into an enum of
stock names, so the field is redeclared here with the full list of choices; the saved
``training_args.json`` keeps the name the user gave (``"optim": "lets_sam"``).

``LETSArguments`` is one dataclass (``LETSArguments(output_dir=..., optim="lets_sam")``);
:class:`LETSArgumentParser`, an ``HfArgumentParser``, shows its LETS options in ``--help`` under a
titled group of their own (``HfArgumentParser`` groups whole dataclasses only).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Optional, Tuple

from transformers import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments
from transformers.training_args import OptimizerNames

from .checks import choice
from .parallel import ASCENTS
from .perturbation import (ESAM_FORMS, LOOKSAM_SPLITS, PERTURBATIONS, VARIANT_OPTIONS, PerturbationRule,
                           build_perturbation)
from .radius import (DEFAULT_PRESET, DESCENT_FORMS, HVP_MODES, OBJECTIVES, PRESETS, FixedRadius, LETSRadius,
                     LRProportionalRadius, RadiusController, radius_settings)
from .radius.lets import TRAIN_TERMS

STOCK_OPTIMIZERS = [name.value for name in OptimizerNames]
TORCH_ADAMW = ("adamw_torch", "adamw_torch_fused")  # the stock names of torch.optim.AdamW
LEARNED_PREFIX = "lets_"
FIXED_RADIUS_OPTIMIZERS = sorted(PERTURBATIONS)
LEARNED_RADIUS_OPTIMIZERS = sorted(LEARNED_PREFIX + name for name in PERTURBATIONS)
SAM_FAMILY = FIXED_RADIUS_OPTIMIZERS + LEARNED_RADIUS_OPTIMIZERS
VAL_SOURCES = ("train", "eval")
RHO_SCHEDULES = ("constant", "lr")


def parse_sam_family(optim: str) -> Optional[Tuple[str, bool]]:
    """``"lets_asam" -> ("asam", True)``, ``"sam" -> ("sam", False)``; None for a stock (ERM) name."""
    learned = optim.startswith(LEARNED_PREFIX)
    rule = optim[len(LEARNED_PREFIX):] if learned else optim
    return (rule, learned) if rule in PERTURBATIONS else None


@dataclass
class LETSArgumentsMixin:
    """The SAM/LETS fields shared by :class:`LETSArguments` and :class:`LETSSeq2SeqArguments`."""

    optim: str = field(default=OptimizerNames.ADAMW_TORCH_FUSED.value, metadata={
        "help": f"Optimizer. SAM family, learned radius (LETS): {', '.join(LEARNED_RADIUS_OPTIMIZERS)}. "
                f"SAM family, fixed --rho: {', '.join(FIXED_RADIUS_OPTIMIZERS)}. "
                f"Stock names (plain ERM, as in TrainingArguments): {', '.join(STOCK_OPTIMIZERS)}.",
        "choices": SAM_FAMILY + STOCK_OPTIMIZERS, "metavar": "NAME"})
    lets_base_optim: str = field(default="adamw_torch", metadata={
        "help": "The optimizer that takes the SAM family's descent step: one of the stock names of --optim "
                "(e.g. adamw_torch, sgd).", "choices": STOCK_OPTIMIZERS, "metavar": "STOCK_NAME"})
    rho: float = field(default=0.05, metadata={"help": "The fixed radius (sam/asam) or the initial one (lets_*)."})
    lets_preset: str = field(default=DEFAULT_PRESET, metadata={
        "help": "Settings of the learned radius: paper (gap2, diag, rho_lr 1e-4) or robust (val, "
                "finite_difference, rho_travel 24, rho_decay_total 0.1). Each can be overridden below.",
        "choices": sorted(PRESETS)})
    rho_lr: Optional[float] = field(default=None, metadata={"help": "Adam learning rate of log(rho) (lets_*)."})
    rho_lr_decay: Optional[float] = field(default=None, metadata={
        "help": "Factor applied to rho_lr after each update."})
    rho_travel: Optional[float] = field(default=None, metadata={
        "help": "Horizon-aware rho_lr = rho_travel / (number of hyper updates of the run)."})
    rho_decay_total: Optional[float] = field(default=None, metadata={
        "help": "Horizon-aware decay: rho_lr falls geometrically to this fraction at the last update."})
    rho_min: float = field(default=1e-4, metadata={"help": "Lower clamp of the learned radius."})
    rho_max: float = field(default=5.0, metadata={"help": "Upper clamp of the learned radius."})
    lets_hvp: Optional[str] = field(default=None, metadata={
        "help": "How b = H d is formed: diag (paper), finite_difference, exact.", "choices": sorted(HVP_MODES)})
    lets_objective: Optional[str] = field(default=None, metadata={
        "help": "Upper objective: gap2 (paper, 1/2 gap^2), gap, val (Table 6).", "choices": sorted(OBJECTIVES)})
    lets_descent: str = field(default="sgd", metadata={
        "help": "The descent step the hypergradient differentiates: sgd (the paper's theta - eta g_hat) or adam "
                "(through Adam/AdamW's step; needs an Adam-family --lets_base_optim).",
        "choices": sorted(DESCENT_FORMS)})
    lets_interval: int = field(default=1, metadata={"help": "A hyper step after every k-th optimizer step."})
    lets_train_term: str = field(default="same", metadata={
        "help": "Training term at theta_{t+1}: its own pass (same, the paper's) or the next step's ascent pass "
                "(next: one pass less).", "choices": list(TRAIN_TERMS)})
    rho_schedule: str = field(default="constant", metadata={
        "help": "Fixed-radius methods: a constant rho, or rho proportional to the learning rate between rho_min "
                "and rho (GSAM's schedule).", "choices": list(RHO_SCHEDULES)})
    asam_xi: float = field(default=0.01, metadata={"help": "ASAM's xi in T = |theta| + xi."})
    gsam_alpha: Optional[float] = field(default=None, metadata={"help": "GSAM's surrogate-gap weight (0.4)."})
    esam_beta: Optional[float] = field(default=None, metadata={"help": "ESAM's share of perturbed tensors (0.5)."})
    esam_gamma: Optional[float] = field(default=None, metadata={
        "help": "ESAM's share of examples kept by data selection; only 1 (no selection) in LETSTrainer."})
    esam_form: Optional[str] = field(default=None, metadata={
        "help": "ESAM's weight perturbation: official (Du et al.'s code: ascent norm over the selected tensors, "
                "every tensor descends with g_hat) or clean_unselected (norm over all, the others descend with g).",
        "choices": list(ESAM_FORMS)})
    rst_p: Optional[float] = field(default=None, metadata={"help": "RST's probability of a SAM step (0.5)."})
    looksam_k: Optional[int] = field(default=None, metadata={"help": "LookSAM: a full SAM step every k steps (5)."})
    looksam_alpha: Optional[float] = field(default=None, metadata={
        "help": "LookSAM / AE-LookSAM: weight of the reused orthogonal gradient (0.7)."})
    looksam_split: Optional[str] = field(default=None, metadata={
        "help": "LookSAM / AE-LookSAM: split g_s against g over the whole gradient (whole, the paper's Algorithm 1) "
                "or per tensor (tensor, as pytorch_optimizer).", "choices": list(LOOKSAM_SPLITS)})
    ae_delta: Optional[float] = field(default=None, metadata={"help": "AE-SAM: decay of the moving averages (0.9)."})
    ae_lambda1: Optional[float] = field(default=None, metadata={"help": "AE-SAM: threshold factor at the start (1)."})
    ae_lambda2: Optional[float] = field(default=None, metadata={"help": "AE-SAM: threshold factor at the end (-1)."})
    lets_ascent: Optional[str] = field(default=None, metadata={
        "help": "Where the ascent gradient comes from under several processes: per_worker (DDP's default, under "
                "no_sync) or global (synced, as one process on the whole batch; the only choice under FSDP2).",
        "choices": list(ASCENTS)})
    lets_val_source: str = field(default="train", metadata={
        "help": "Where LETS validation batches come from when no lets_val_dataset is given: the training set "
                "(the paper's choice) or, only if asked, the eval_dataset.", "choices": list(VAL_SOURCES)})
    lets_val_batch_size: Optional[int] = field(default=None, metadata={
        "help": "Validation batch size for the hyper step (default: per_device_train_batch_size)."})

    def __post_init__(self):
        self._check_names()  # before the stock checks, whose enum error names neither the field nor the SAM family
        family = parse_sam_family(getattr(self.optim, "value", self.optim))
        if family is None:
            super().__post_init__()
        else:
            chosen, self.optim = self.optim, self.lets_base_optim
            super().__post_init__()
            self.optim = chosen
        self._check_lets_fields()

    def _check_names(self) -> None:
        listed = {"optim": f"the SAM family {SAM_FAMILY} or a stock optimizer {STOCK_OPTIMIZERS}"}
        for name, allowed in (("optim", SAM_FAMILY + STOCK_OPTIMIZERS), ("lets_base_optim", STOCK_OPTIMIZERS),
                              ("lets_val_source", VAL_SOURCES), ("rho_schedule", RHO_SCHEDULES)):
            value = getattr(self, name)
            choice(name, getattr(value, "value", value), allowed, listed.get(name, ""))
        if self.lets_ascent is not None:
            choice("lets_ascent", self.lets_ascent, ASCENTS)

    def _check_lets_fields(self) -> None:
        if self.lets_descent == "adam" and self.lets_base_optim not in TORCH_ADAMW:
            raise ValueError(f"lets_descent 'adam' differentiates torch's AdamW step: lets_base_optim must be one of "
                             f"{list(TORCH_ADAMW)}, got {self.lets_base_optim!r}")
        if self.lets_val_batch_size is not None and self.lets_val_batch_size < 1:
            raise ValueError(f"lets_val_batch_size must be >= 1, got {self.lets_val_batch_size}")
        if self.sam_family is not None:  # build both once, so that bad values fail before training
            horizon = self.max_steps if self.max_steps > 0 else 1000
            self.build_radius(total_steps=horizon)
            self.build_perturbation(total_steps=horizon)

    @property
    def sam_family(self) -> Optional[Tuple[str, bool]]:
        """``(rule name, learned?)`` for a SAM-family ``optim``, None for ERM."""
        return parse_sam_family(getattr(self.optim, "value", self.optim))

    def build_perturbation(self, total_steps: Optional[int] = None) -> PerturbationRule:
        """The variant's rule with its options; ``total_steps`` feeds AE-SAM's threshold schedule."""
        rule, _ = self.sam_family
        options = {option: getattr(self, option) for options in VARIANT_OPTIONS.values() for option in options}
        return build_perturbation(rule, options, seed=self.seed, total_steps=total_steps)

    def build_radius(self, total_steps: Optional[int] = None) -> RadiusController:
        """The radius controller; ``total_steps`` (optimizer steps) feeds the horizon-aware rate."""
        _, learned = self.sam_family
        if not learned:
            if self.rho_schedule == "lr":
                return LRProportionalRadius(rho_max=self.rho, rho_min=self.rho_min, lr_max=self.learning_rate)
            return FixedRadius(self.rho)
        settings = radius_settings(self.lets_preset, total_steps=total_steps, interval=self.lets_interval,
                                   hvp=self.lets_hvp, objective=self.lets_objective, rho_lr=self.rho_lr,
                                   rho_lr_decay=self.rho_lr_decay, rho_travel=self.rho_travel,
                                   rho_decay_total=self.rho_decay_total)
        return LETSRadius(rho=self.rho, rho_min=self.rho_min, rho_max=self.rho_max, train_term=self.lets_train_term,
                          descent=self.lets_descent, **settings)

    def base_optimizer_arguments(self) -> TrainingArguments:
        """A copy of these arguments whose ``optim`` is the base optimizer, for the stock optimizer factory."""
        view = copy.copy(self)
        view.optim = OptimizerNames(self.lets_base_optim)
        return view


@dataclass
class LETSArguments(LETSArgumentsMixin, TrainingArguments):
    """``TrainingArguments`` + the SAM family on ``--optim`` (see the module docstring)."""


@dataclass
class LETSSeq2SeqArguments(LETSArgumentsMixin, Seq2SeqTrainingArguments):
    """``Seq2SeqTrainingArguments`` + the SAM family on ``--optim``."""


LETS_GROUP_TITLE = "LETS and the SAM family (lets_hf)"
LETS_GROUP_DESCRIPTION = ("Pick the method with --optim: ERM, SAM/ASAM and their variants with a fixed --rho, "
                          "or lets_* with the learned radius; the other options set the radius and the variants.")


class LETSArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` whose ``--help`` lists the LETS options of a LETS dataclass in a titled group.

    Parsing is ``HfArgumentParser``'s; only the help layout differs: the fields of
    :class:`LETSArgumentsMixin` move out of the stock options into the group ``LETS_GROUP_TITLE``.
    """

    def __init__(self, dataclass_types=None, **kwargs):
        super().__init__(dataclass_types, **kwargs)
        if any(isinstance(dtype, type) and issubclass(dtype, LETSArgumentsMixin) for dtype in self.dataclass_types):
            self._group_lets_options()

    def _group_lets_options(self) -> None:
        names = {f.name for f in fields(LETSArgumentsMixin)}
        group = self.add_argument_group(LETS_GROUP_TITLE, LETS_GROUP_DESCRIPTION)
        for other in self._action_groups:
            if other is not group:
                group._group_actions.extend(action for action in other._group_actions if action.dest in names)
                other._group_actions[:] = [action for action in other._group_actions if action.dest not in names]
