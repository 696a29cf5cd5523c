"""``LETSArguments``: ``TrainingArguments`` that also accept the SAM family on ``--optim``.

``--optim lets_sam`` (or ``lets_asam``) trains with the learned radius of LETS (Wang et al.,
ECCV 2024); ``--optim sam`` / ``asam`` with a fixed ``--rho``; every stock name (``adamw_torch``,
``sgd``, ...) means plain ERM, unchanged. The SAM family's descent step is taken by
``--lets_base_optim`` (a stock name). Stock ``TrainingArguments`` turns ``optim`` into an enum of
stock names, so the field is redeclared here with the full list of choices; the saved
``training_args.json`` keeps the name the user gave (``"optim": "lets_sam"``).

The fields of the rules' and controllers' options (``rho``, ``lets_preset``, ``asam_xi``, ...) are
made from their declarations (:func:`lets_hf.methods.method_options`), with their help, choices and
defaults, and built into a rule and a controller by :mod:`lets_hf.methods`; this module adds the
Trainer's own fields (``optim``, ``lets_base_optim``, ``lets_ascent``, ``lets_val_*``).

``LETSArguments`` is one dataclass (``LETSArguments(output_dir=..., optim="lets_sam")``);
:class:`LETSArgumentParser`, an ``HfArgumentParser``, shows its LETS options in ``--help`` under a
titled group of their own (``HfArgumentParser`` groups whole dataclasses only).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from transformers import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments
from transformers.training_args import OptimizerNames

from .checks import SuggestingParser, choice
from .methods import (
    FIXED_RADIUS_OPTIMIZERS,
    LEARNED_PREFIX,
    LEARNED_RADIUS_OPTIMIZERS,
    SAM_FAMILY,
    SAMFamily,
    build_radius,
    describe_optims,
    ignored_options_message,
    method_options,
    option_readers,
    options_read,
    parse_sam_family,
)
from .options import Option
from .parallel import ASCENTS
from .perturbation import PerturbationRule, build_perturbation
from .radius import RadiusController
from .radius.presets import AUTO

STOCK_OPTIMIZERS = [name.value for name in OptimizerNames]
TORCH_ADAMW = ("adamw_torch", "adamw_torch_fused")  # the stock names of torch.optim.AdamW
VAL_SOURCES = ("train", "eval")
PROBE_HORIZON = 1000  # the run length assumed to check the options of a run whose length is not known yet
# The Trainer's own LETS fields, and the --optim names that read them (the rules' and controllers' options:
# lets_hf.methods.options_read).
TRAINER_FIELD_READERS = {
    "lets_base_optim": SAM_FAMILY,
    "lets_ascent": SAM_FAMILY,
    "lets_val_source": LEARNED_RADIUS_OPTIMIZERS,
    "lets_val_batch_size": LEARNED_RADIUS_OPTIMIZERS,
}
__all__ = [
    "FIXED_RADIUS_OPTIMIZERS",
    "LEARNED_PREFIX",
    "LEARNED_RADIUS_OPTIMIZERS",
    "LETSArgumentParser",
    "LETSArguments",
    "LETSArgumentsMixin",
    "LETSSeq2SeqArguments",
    "SAM_FAMILY",
    "STOCK_OPTIMIZERS",
    "parse_sam_family",
]


def option_field(option: Option) -> tuple[str, Any, Any]:
    """A dataclass field (name, type, ``field``) for ``option``, with its help and choices for ``HfArgumentParser``."""
    metadata: dict[str, Any] = {"help": option.described()}
    if option.choices:
        metadata["choices"] = list(option.choices)
    # Optional[...], not `X | None`: a type built at run time, which HfArgumentParser reads as optional
    kind = option.type if option.default is not None else Optional[option.type]  # noqa: UP045
    return option.name, kind, field(default=option.default, metadata=metadata)


# The fields of the rules' and controllers' options, made from their declarations (lets_hf/methods.py).
SAMFamilyOptions = dataclasses.make_dataclass(
    "SAMFamilyOptions", [option_field(option) for option in method_options().values()]
)
SAMFamilyOptions.__doc__ = "One field per option of the SAM family's rules and radius controllers (their modules)."
SAMFamilyOptions.__module__ = __name__  # so that pickle finds it


@dataclass
class LETSArgumentsMixin(SAMFamilyOptions):
    """The SAM/LETS fields shared by :class:`LETSArguments` and :class:`LETSSeq2SeqArguments`: the options the
    rules and the controllers declare (:class:`SAMFamilyOptions`), and those of the Trainer's step below."""

    optim: str = field(
        default=OptimizerNames.ADAMW_TORCH_FUSED.value,
        metadata={
            "help": f"Optimizer. SAM family, learned radius (LETS): {', '.join(LEARNED_RADIUS_OPTIMIZERS)}. "
            f"SAM family, fixed --rho: {', '.join(FIXED_RADIUS_OPTIMIZERS)}. "
            f"Stock names (plain ERM, as in TrainingArguments): {', '.join(STOCK_OPTIMIZERS)}.",
            "choices": SAM_FAMILY + STOCK_OPTIMIZERS,
            "metavar": "NAME",
        },
    )
    lets_base_optim: str = field(
        default="adamw_torch",
        metadata={
            "help": "The optimizer that takes the SAM family's descent step: one of the stock names of --optim "
            "(e.g. adamw_torch, sgd).",
            "choices": STOCK_OPTIMIZERS,
            "metavar": "STOCK_NAME",
        },
    )
    lets_ascent: str | None = field(
        default=None,
        metadata={
            "help": "Where the ascent gradient comes from under several processes: per_worker (DDP's default, under "
            "no_sync) or global (synced, as one process on the whole batch; the only choice under FSDP2).",
            "choices": list(ASCENTS),
        },
    )
    lets_val_source: str = field(
        default="train",
        metadata={
            "help": "Where LETS validation batches come from when no lets_val_dataset is given: the training set "
            "(the paper's choice) or, only if asked, the eval_dataset.",
            "choices": list(VAL_SOURCES),
        },
    )
    lets_val_batch_size: int | None = field(
        default=None,
        metadata={"help": "Validation batch size for the hyper step (default: per_device_train_batch_size)."},
    )

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
        self._warn_on_ignored_options()

    def _check_names(self) -> None:
        listed = {"optim": f"the SAM family {SAM_FAMILY} or a stock optimizer {STOCK_OPTIMIZERS}"}
        for name, allowed in (
            ("optim", SAM_FAMILY + STOCK_OPTIMIZERS),
            ("lets_base_optim", STOCK_OPTIMIZERS),
            ("lets_val_source", VAL_SOURCES),
        ):
            value = getattr(self, name)
            choice(name, getattr(value, "value", value), allowed, listed.get(name, ""))
        if self.lets_ascent is not None:
            choice("lets_ascent", self.lets_ascent, ASCENTS)
        for option in method_options().values():  # lets_preset, lets_hvp, ...: one message for every name
            value = getattr(self, option.name)
            if option.choices and value is not None:
                choice(option.name, value, option.choices)

    def _check_lets_fields(self) -> None:
        if self.lets_descent == "adam" and self.lets_base_optim not in TORCH_ADAMW:
            raise ValueError(
                f"lets_descent 'adam' differentiates torch's AdamW step: lets_base_optim must be one of "
                f"{list(TORCH_ADAMW)}, got {self.lets_base_optim!r}"
            )
        if self.lets_val_batch_size is not None and self.lets_val_batch_size < 1:
            raise ValueError(f"lets_val_batch_size must be >= 1, got {self.lets_val_batch_size}")
        if self.sam_family is not None:  # build both once, so that bad values fail before training
            self.probe_radius()
            self.build_perturbation(total_steps=self._probe_horizon)
        if self.validation_from_next_batch and (
            self.lets_val_source != "train" or self.lets_val_batch_size is not None
        ):
            source = "given" if self.lets_val_term else f"from lets_preset {self.lets_preset!r}"
            raise ValueError(
                f"lets_val_term 'next' takes the next training batch as the validation batch: leave lets_val_source "
                f"('train') and lets_val_batch_size (None) at their defaults, got {self.lets_val_source!r} and "
                f"{self.lets_val_batch_size!r} (lets_val_term 'next' {source})"
            )

    def ignored_options(self) -> dict[str, str]:
        """``{name: which optims read it}`` for each LETS option set away from its default that this ``optim``
        does not read (``optim="sam", rho_lr=0.01``: rho is fixed, so no option of the learned radius counts)."""
        optim = str(getattr(self.optim, "value", self.optim))
        read = options_read(optim, self.rho_schedule)
        read |= {name for name, readers in TRAINER_FIELD_READERS.items() if optim in readers}
        ignored = {}
        for declared in fields(LETSArgumentsMixin):
            name = declared.name
            if name != "optim" and name not in read and getattr(self, name) != declared.default:
                readers = TRAINER_FIELD_READERS.get(name)
                ignored[name] = describe_optims(list(readers)) if readers else option_readers(name)
        return ignored

    def _warn_on_ignored_options(self) -> None:
        """A warning, one line per ignored option with the optims that read it (before any training)."""
        ignored = self.ignored_options()
        if not ignored:
            return
        optim = str(getattr(self.optim, "value", self.optim))
        warnings.warn(ignored_options_message(optim, ignored, vars(self)), UserWarning, stacklevel=4)

    @property
    def sam_family(self) -> SAMFamily | None:
        """The rule and whether the radius is learned, for a SAM-family ``optim``; None for ERM."""
        return parse_sam_family(getattr(self.optim, "value", self.optim))

    def option_value(self, name: str) -> Any:
        """The value of the rules' and controllers' option ``name`` (a field made from their declarations, which a
        type checker does not see); KeyError for a name no rule or controller declares."""
        if name not in method_options():
            raise KeyError(f"{name!r} is not an option of the SAM family's rules or radius controllers")
        return getattr(self, name)

    def build_perturbation(self, total_steps: int | None = None) -> PerturbationRule:
        """The variant's rule with its options; ``total_steps`` feeds AE-SAM's threshold schedule."""
        return build_perturbation(self.sam_family.rule, vars(self), seed=self.seed, total_steps=total_steps)

    def build_radius(self, total_steps: int | None = None) -> RadiusController:
        """The radius controller; ``total_steps`` (optimizer steps) feeds the horizon-aware rate, the base
        optimizer's class (as Trainer resolves ``lets_base_optim``) ``lets_preset auto``."""
        learned = self.sam_family.learned
        base = self.base_optimizer_class() if learned and self.lets_preset == AUTO else None
        return build_radius(
            learned, vars(self), total_steps=total_steps, learning_rate=self.learning_rate, base_optimizer=base
        )

    def base_optimizer_class(self) -> type:
        """The class ``lets_base_optim`` names, as ``Trainer.get_optimizer_cls_and_kwargs`` resolves it."""
        from transformers import Trainer

        return Trainer.get_optimizer_cls_and_kwargs(self.base_optimizer_arguments())[0]

    @property
    def validation_from_next_batch(self) -> bool:
        """A learned radius whose validation term is the next training batch (``lets_val_term`` next, given or
        from the preset): it draws no validation batches."""
        return self.sam_family is not None and self.sam_family.learned and self.probe_radius().val_term == "next"

    @property
    def _probe_horizon(self) -> int:
        return self.max_steps if self.max_steps > 0 else PROBE_HORIZON

    def probe_radius(self) -> RadiusController:
        """The controller as built to check the options before the run's length is known (``max_steps``, else
        ``PROBE_HORIZON`` steps: the presets with a horizon need one); its modes (``hvp``, ...) are the run's."""
        return self.build_radius(total_steps=self._probe_horizon)

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
LETS_GROUP_DESCRIPTION = (
    "Pick the method with --optim: ERM, SAM/ASAM and their variants with a fixed --rho, "
    "or lets_* with the learned radius; the other options set the radius and the variants."
)
TRAINER_GROUP_TITLE = "Trainer options (transformers TrainingArguments)"
USAGE = "%(prog)s [-h] [--optim NAME] [--rho RHO] [OPTION ...]  (listed below: LETS first, the Trainer's last)"


class LETSArgumentParser(HfArgumentParser, SuggestingParser):
    """``HfArgumentParser`` whose ``--help`` starts with the LETS options of a LETS dataclass.

    Parsing is ``HfArgumentParser``'s; the help differs: a one-line usage (``usage=`` to replace it) instead of
    argparse's list of every flag, then the fields of :class:`LETSArgumentsMixin` in the group
    ``LETS_GROUP_TITLE``, then each other dataclass's fields (a script's own) in a group of its own, then the
    stock ``TrainingArguments`` fields last. A mistyped choice gets one short line, the closest name first
    (:class:`~lets_hf.checks.SuggestingParser`).
    """

    def __init__(self, dataclass_types=None, **kwargs):
        types = dataclass_types if isinstance(dataclass_types, (list, tuple)) else [dataclass_types]
        has_lets = any(isinstance(dtype, type) and issubclass(dtype, LETSArgumentsMixin) for dtype in types)
        if has_lets:
            kwargs.setdefault("usage", USAGE)
        super().__init__(dataclass_types, **kwargs)
        if has_lets:
            self._group_options()

    def _group_options(self) -> None:
        lets_names = {f.name for f in fields(LETSArgumentsMixin)}
        groups = [(self.add_argument_group(LETS_GROUP_TITLE, LETS_GROUP_DESCRIPTION), lets_names)]
        for dtype in self.dataclass_types:
            names = {f.name for f in fields(dtype) if f.init} - lets_names
            if issubclass(dtype, TrainingArguments):
                groups.append((self.add_argument_group(TRAINER_GROUP_TITLE), names))
            else:
                summary = (dtype.__doc__ or "").strip().splitlines()[:1]
                groups.append((self.add_argument_group(dtype.__name__, summary[0] if summary else None), names))
        groups.sort(key=lambda pair: pair[0].title == TRAINER_GROUP_TITLE)  # the stock options last
        for group, names in groups:
            self._action_groups.remove(group)
            for other in self._action_groups:
                group._group_actions.extend(action for action in other._group_actions if action.dest in names)
                other._group_actions[:] = [action for action in other._group_actions if action.dest not in names]
        self._action_groups.extend(group for group, _ in groups)
