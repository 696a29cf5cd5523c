#!/usr/bin/env python
"""Fine-tune a model (the paper's DeBERTa-base by default) on a GLUE task with ERM, SAM, ASAM or LETS.

The shape of the transformers ``examples/pytorch/text-classification/run_glue.py``, with
``LETSArguments`` and ``LETSTrainer`` for training. A complete command:

    accelerate launch glue/run_glue.py --optim lets_sam

trains ``microsoft/deberta-base`` on MRPC with the paper's setup (``--glue_preset paper``, see
``glue/presets.py``) and writes ``runs/glue/mrpc/lets_sam-seed42/``: ``glue_results.json`` (every
metric, rho's initial and final value and its trajectory with the gap's, the wall time),
``rho_trajectory.png``, the model and ``trainer_state.json``. Offline:

    python glue/run_glue.py --task_name rte --data_dir ../shared/data/glue \
        --model_name_or_path /path/to/local/model --optim lets_asam

See ``glue/README.md`` for Table 9's commands and ``glue/summarize.py`` for the table of results.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

import transformers
from transformers import DataCollatorWithPadding, default_data_collator, set_seed

from glue.data import hold_out, load_glue, with_label_noise
from glue.errors import GlueInputError
from glue.metrics import compute_metrics_for
from glue.model import load_model_and_tokenizer
from glue.presets import PRESETS, preset_defaults
from glue.results import RESULTS_FILE, SPLIT_PREFIXES, WallClock, build_results, run_label, write_results
from glue.tasks import TASKS, GlueTask, get_task
from lets_hf.arguments import LETSArgumentParser, LETSArguments
from lets_hf.checkpoints import checkpoint_to_resume
from lets_hf.launch import process_count_warning, requested_processes
from lets_hf.precision import training_precision
from lets_hf.radius import LETSRadius
from lets_hf.trainer import LETSTrainer

logger = logging.getLogger("run_glue")


@dataclass
class ModelArguments:
    """Which model to fine-tune."""

    model_name_or_path: str = field(
        default="microsoft/deberta-base",
        metadata={"help": "A Hub id or a local folder (config.json, weights, tokenizer files)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are stored."})
    save_final_model: bool = field(
        default=True, metadata={"help": "Save the fine-tuned model and tokenizer into --output_dir at the end."}
    )


@dataclass
class DataTrainingArguments:
    """Which data, how it is prepared, and which setup (preset) fills the training defaults."""

    task_name: str = field(default="mrpc", metadata={"help": f"One of {', '.join(TASKS)}."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "A classic glue_data/ folder (<TASK>/train.tsv, dev.tsv); otherwise files or the Hub."},
    )
    train_file: str | None = field(default=None, metadata={"help": "A CSV/JSON training file (hub column names)."})
    validation_file: str | None = field(default=None, metadata={"help": "A CSV/JSON validation file."})
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every input to max_seq_length (default: pad each batch to its longest input)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training rows."})
    train_label_noise: float = field(
        default=0.0,
        metadata={
            "help": "Flip this fraction of the training labels (after --max_train_samples) to another class; the "
            "eval splits stay clean. The noise is drawn with --label_noise_seed, not --seed."
        },
    )
    label_noise_seed: int = field(default=0, metadata={"help": "Seed of the flipped labels' choice."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N rows of each eval split."})
    lets_val_split_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Hold this fraction of the training split out for LETS validation batches; the model trains on "
            "the rest (for every --optim, so ERM and SAM runs stay comparable). 0: batches from the training "
            "set itself, as in the paper."
        },
    )
    glue_preset: str = field(
        default="paper",
        metadata={
            "help": "Training defaults: 'paper' (Table 11 + glue/presets.py) or 'none' (stock TrainingArguments). "
            "Flags on the command line override them.",
            "choices": list(PRESETS),
        },
    )
    run_label: str | None = field(
        default=None,
        metadata={
            "help": "The run's row name in glue/summarize.py tables "
            "(default: method, radius, LETS rule, held-out split)."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace a finished run in --output_dir (otherwise the script refuses, and resumes an "
            "unfinished one from its last checkpoint)."
        },
    )


def default_output_dir(task: GlueTask, optim: str, seed: int) -> str:
    """``runs/glue/<task>/<optim>-seed<seed>`` under the current directory."""
    return os.path.join("runs", "glue", task.name, f"{optim}-seed{seed}")


def parse_arguments(argv: list[str] | None) -> tuple[ModelArguments, DataTrainingArguments, LETSArguments]:
    """Parse the command line; the preset and the output folder become defaults that flags override."""
    parser = LETSArgumentParser((ModelArguments, DataTrainingArguments, LETSArguments))  # LETS flags in a group
    known, _ = parser.parse_known_args(argv)
    task = get_task(known.task_name)
    parser.set_defaults(
        do_train=True,
        do_eval=True,
        average_tokens_across_devices=False,
        output_dir=default_output_dir(task, known.optim, known.seed),
        **preset_defaults(known.glue_preset, task.name, known.optim),
    )
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(argv)
        training_precision(training_args)  # refuses --fp16 on a CPU
    except ValueError as error:  # a field's own check (e.g. an invalid LETS setting)
        raise GlueInputError(str(error)) from None
    data_args.task_name = task.name  # "SST-2" -> "sst2"
    return model_args, data_args, training_args


def resume_checkpoint(training_args: LETSArguments, overwrite: bool) -> str | None:
    """The checkpoint to resume from (:func:`~lets_hf.checkpoints.checkpoint_to_resume`: the newest complete one
    in ``--output_dir`` unless one is given); refuses to overwrite a finished run unless asked to."""
    try:
        return checkpoint_to_resume(training_args, overwrite, RESULTS_FILE)
    except ValueError as error:
        raise GlueInputError(str(error)) from None


def prepare_datasets(task: GlueTask, data_args: DataTrainingArguments, seed: int):
    """(train, LETS held-out or None, {eval split: dataset}), raw text, subsampled and split as asked."""
    raw = load_glue(task, data_args.data_dir, data_args.train_file, data_args.validation_file)
    train = raw["train"]
    if data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if data_args.train_label_noise:
        train = with_label_noise(train, data_args.train_label_noise, data_args.label_noise_seed)
    held_out = None
    if data_args.lets_val_split_fraction:
        train, held_out = hold_out(train, data_args.lets_val_split_fraction, seed)
    evals = {split: raw[split] for split in task.eval_splits if split in raw}
    if data_args.max_eval_samples is not None:
        evals = {split: data.select(range(min(data_args.max_eval_samples, len(data)))) for split, data in evals.items()}
    return train, held_out, evals


def tokenize(dataset, task: GlueTask, tokenizer, data_args: DataTrainingArguments):
    """Token ids of the task's text column(s), truncated to ``max_seq_length``; the text columns dropped."""
    if dataset is None:
        return None
    padding = "max_length" if data_args.pad_to_max_length else False

    def encode(batch):
        texts = [batch[column] for column in task.text_columns]
        return tokenizer(*texts, padding=padding, max_length=data_args.max_seq_length, truncation=True)

    return dataset.map(encode, batched=True, remove_columns=list(task.text_columns), desc="tokenizing")


def run_settings(
    training_args: LETSArguments, data_args: DataTrainingArguments, trainer: LETSTrainer, train, held_out
) -> dict:
    """What a reader of the results needs to know about the run: batch, schedule, data, the radius rule."""
    settings = {
        "learning_rate": training_args.learning_rate,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "world_size": training_args.world_size,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "global_steps": trainer.state.global_step,
        "train_rows": len(train),
        "train_label_noise": data_args.train_label_noise,
        "lets_val_rows": len(held_out) if held_out is not None else None,
        "max_seq_length": data_args.max_seq_length,
        "glue_preset": data_args.glue_preset,
        "precision": training_precision(training_args),
    }
    radius = getattr(trainer.lets_optimizer, "radius", None)
    if isinstance(radius, LETSRadius):  # its settings, as the run used them
        settings.update(
            {
                "lets_preset": training_args.lets_preset,
                "rho_lr": radius.lr,
                "rho_lr_decay": radius.lr_decay,
                "lets_hvp": radius.hvp.name,
                "lets_objective": radius.objective.name,
                "lets_interval": radius.interval,
                "lets_train_term": radius.train_term,
                "lets_val_term": radius.val_term,
                "lets_descent": radius.descent.name,
                "rho_updates": radius.updates,
                "lets_val_source": validation_source(training_args, held_out),
            }
        )
    return settings


def validation_source(training_args: LETSArguments, held_out) -> str:
    """Where the run's LETS validation batches came from, for its results."""
    if training_args.lets_val_term == "next":
        return "next training batch"
    return "held-out" if held_out is not None else training_args.lets_val_source


def run(argv: list[str] | None = None) -> dict:
    """Train, evaluate and write the run's results; returns the content of ``glue_results.json``."""
    start = time.perf_counter()
    model_args, data_args, training_args = parse_arguments(argv)
    task = get_task(data_args.task_name)
    logging.basicConfig(  # the script's own lines on the main process only; the others log errors
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if training_args.should_log else logging.ERROR,
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    mismatch = process_count_warning(training_args.world_size, requested_processes())
    if mismatch is not None:
        logger.warning(mismatch)
    if data_args.lets_val_split_fraction and training_args.lets_val_source == "eval":
        raise GlueInputError("--lets_val_split_fraction and --lets_val_source eval exclude each other")
    if data_args.lets_val_split_fraction and training_args.lets_val_term == "next":
        raise GlueInputError(
            "--lets_val_split_fraction and --lets_val_term next exclude each other (next takes the next training "
            "batch as the validation batch)"
        )
    checkpoint = resume_checkpoint(training_args, data_args.overwrite_output_dir)

    set_seed(training_args.seed)  # before the model: its new classifier head is drawn from the seeded generator
    model, tokenizer = load_model_and_tokenizer(task, model_args.model_name_or_path, model_args.cache_dir)
    train, held_out, evals = prepare_datasets(task, data_args, training_args.seed)
    with training_args.main_process_first(desc="tokenizing"):
        train, held_out = (tokenize(data, task, tokenizer, data_args) for data in (train, held_out))
        evals = {split: tokenize(data, task, tokenizer, data_args) for split, data in evals.items()}
    collator = (
        default_data_collator
        if data_args.pad_to_max_length
        else DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=8 if training_args.fp16 or training_args.bf16 else None
        )
    )

    try:  # LETSTrainer refuses setups it cannot run (too few LETS validation rows, DeepSpeed, FSDP, ...)
        trainer = LETSTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            eval_dataset=evals[task.eval_splits[0]],
            processing_class=tokenizer,
            data_collator=collator,
            compute_metrics=compute_metrics_for(task),
            lets_val_dataset=held_out,
        )
    except ValueError as error:
        raise GlueInputError(str(error)) from None
    clock = WallClock(start, resumed_from=checkpoint)
    trainer.add_callback(clock)
    logger.info(
        "%s: %d training rows, %s LETS held-out rows, eval %s; output %s",
        task.display_name,
        len(train),
        len(held_out) if held_out is not None else "no",
        {k: len(v) for k, v in evals.items()},
        training_args.output_dir,
    )
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    metrics = {**trainer.train(resume_from_checkpoint=checkpoint).metrics, "train_samples": len(train)}
    if model_args.save_final_model:
        trainer.save_model()
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)  # train_results.json and all_results.json, as transformers' run_glue.py
    trainer.save_state()
    eval_metrics = {}
    for split, data in evals.items():
        eval_metrics.update(trainer.evaluate(eval_dataset=data, metric_key_prefix=SPLIT_PREFIXES[split]))
        eval_metrics[f"{SPLIT_PREFIXES[split]}_samples"] = len(data)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)  # eval_results.json, added to all_results.json
    metrics.update(eval_metrics)

    optimizer = trainer.lets_optimizer
    settings = run_settings(training_args, data_args, trainer, train, held_out)
    results = build_results(
        task,
        label=data_args.run_label
        or run_label(
            training_args.optim,
            training_args.rho,
            data_args.lets_val_split_fraction,
            training_args.lets_preset,
            training_args.rho_lr,
            training_args.lets_descent,
        ),
        optim=training_args.optim,
        seed=training_args.seed,
        model=model_args.model_name_or_path,
        rho_initial=training_args.rho if optimizer is not None else None,
        rho_final=optimizer.rho if optimizer is not None else None,
        metrics=metrics,
        log_history=trainer.state.log_history,
        wall_time_s=clock.elapsed_s,
        settings=settings,
    )
    if trainer.is_world_process_zero():
        plot = write_results(training_args.output_dir, results, trainer.state.log_history)
        logger.info(
            "scores %s, rho %s -> %s, %.1f s; wrote %s%s",
            results["scores"],
            results["rho_initial"],
            results["rho_final"],
            results["wall_time_s"],
            os.path.join(training_args.output_dir, RESULTS_FILE),
            f" and {plot}" if plot else "",
        )
    return results


def main(argv: list[str] | None = None) -> dict:
    """``run`` with bad input reported as one line on stderr (exit status 2) instead of a traceback."""
    try:
        return run(argv)
    except GlueInputError as error:
        print(f"run_glue.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
