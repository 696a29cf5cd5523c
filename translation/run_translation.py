#!/usr/bin/env python
"""Train a Transformer on IWSLT'14 German-English with LETS and score it with BLEU (the paper's Table 8).

The shape of the transformers ``run_translation.py`` example (argument dataclasses,
``HfArgumentParser``, one ``main()``), with ``LETSSeq2SeqArguments`` and ``LETSSeq2SeqTrainer``
for the training side, so ``--optim lets_sam`` / ``lets_asam`` / ``sam`` / ``asam`` or any stock
name (ERM) picks the method. The model is fairseq's ``transformer_iwslt_de_en`` trained from
random weights; the data a folder in the layout of the standard IWSLT'14 preparation
(``prepare_iwslt14.sh``); the vocabulary is built from its training text; BLEU follows the
``--remove-bpe`` convention with beam 5. Defaults are the paper's (``TABLE8_PRESET``); any flag
overrides them. See ``translation/README.md`` for the commands.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import AutoTokenizer, DataCollatorForSeq2Seq, MarianMTModel, set_seed

from lets_hf.arguments import LETSArgumentParser, LETSSeq2SeqArguments, parse_sam_family
from lets_hf.checkpoints import checkpoint_to_resume
from lets_hf.launch import process_count_warning, requested_processes
from lets_hf.methods import method_label
from lets_hf.precision import training_precision
from lets_hf.trainer import LETSSeq2SeqTrainer
from translation.bleu import corpus_bleu, remove_bpe
from translation.data import ParallelSplit, read_splits
from translation.model import ArchitectureSizes, build_model
from translation.report import RESULTS_FILE, data_label, sample_of_hypotheses, write_run_report
from translation.vocabulary import build_joined_vocabulary, build_tokenizer, ids_to_text

logger = logging.getLogger(__name__)

# The paper's IWSLT'14 setup (ASAM's fairseq recipe): Adam (0.9, 0.98), lr 5e-4 with 4000 warmup
# updates then 1/sqrt(step), weight decay 1e-4 (decoupled, as fairseq's Adam), no clipping, label
# smoothing 0.1, 50 epochs, batches of ~4096 tokens (about 160 sentences of ~25 BPE units, grouped
# by length), beam 5 and up to 200 tokens.
TABLE8_PRESET = dict(
    learning_rate=5e-4,
    lr_scheduler_type="inverse_sqrt",
    warmup_steps=4000,
    adam_beta1=0.9,
    adam_beta2=0.98,
    weight_decay=1e-4,
    max_grad_norm=0.0,
    label_smoothing_factor=0.1,
    num_train_epochs=50,
    per_device_train_batch_size=160,
    per_device_eval_batch_size=128,
    train_sampling_strategy="group_by_length",
    predict_with_generate=True,
    generation_num_beams=5,
    generation_max_length=200,
    logging_steps=100,
    save_strategy="epoch",
    save_total_limit=2,
)
# the paper's rule at rho's Adam lr 1e-5, decayed exponentially (lets_hf/radius/presets.py): lets_* only, so that
# LETSArguments warns of no option the chosen --optim ignores
TABLE8_LEARNED_RADIUS = dict(lets_preset="paper_iwslt")


@dataclass
class ModelArguments:
    """The model: ``transformer_iwslt_de_en`` from random weights, or a folder saved by an earlier run."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A folder written by an earlier run (model and vocabulary), e.g. to score it with --do_predict; "
            "by default a new model is built from random weights and the vocabulary from the training split."
        },
    )
    d_model: int = field(default=512, metadata={"help": "Model width (transformer_iwslt_de_en: 512)."})
    layers: int = field(default=6, metadata={"help": "Encoder layers, and as many decoder layers (6)."})
    ffn_dim: int = field(default=1024, metadata={"help": "Feed-forward width (1024)."})
    attention_heads: int = field(default=4, metadata={"help": "Attention heads (4)."})
    dropout: float = field(default=0.3, metadata={"help": "Dropout (0.3)."})
    max_positions: int = field(default=1024, metadata={"help": "Longest sequence the positions cover (1024)."})

    def sizes(self) -> ArchitectureSizes:
        return ArchitectureSizes(
            d_model=self.d_model,
            layers=self.layers,
            ffn_dim=self.ffn_dim,
            attention_heads=self.attention_heads,
            dropout=self.dropout,
            max_positions=self.max_positions,
        )


@dataclass
class DataTrainingArguments:
    """The data: a folder of ``{split}.{lang}`` files (Moses-tokenized, lowercased, BPE with ``@@ ``)."""

    data_dir: str = field(metadata={"help": "The prepared corpus, e.g. iwslt14.tokenized.de-en/."})
    source_lang: str = field(default="de", metadata={"help": "Source language suffix."})
    target_lang: str = field(default="en", metadata={"help": "Target language suffix."})
    train_split: str = field(
        default="train",
        metadata={
            "help": "The split that trains the model (and builds the vocabulary). The paper's is train; a run on "
            "another split is labelled as such in its results."
        },
    )
    eval_split: str = field(
        default="valid", metadata={"help": "The split whose loss is measured with --do_eval or --eval_strategy."}
    )
    test_split: str = field(default="test", metadata={"help": "The split scored with BLEU (--do_predict)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training pairs."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N eval pairs."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep the first N test pairs."})
    max_source_length: int = field(default=1024, metadata={"help": "Truncate source sequences (units + </s>)."})
    max_target_length: int = field(default=1024, metadata={"help": "Truncate target sequences (units + </s>)."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace a finished run in --output_dir (otherwise --do_train refuses, and resumes an "
            "unfinished one from its newest complete checkpoint)."
        },
    )


def parse_arguments(argv: list[str] | None = None):
    """The three argument groups, with the paper's setup (``TABLE8_PRESET``) as defaults."""
    parser = LETSArgumentParser((ModelArguments, DataTrainingArguments, LETSSeq2SeqArguments))  # LETS flags in a group
    parser.set_defaults(**TABLE8_PRESET, average_tokens_across_devices=False)
    method = parse_sam_family(parser.parse_known_args(argv)[0].optim)  # (rule, learned?), None for ERM
    if method is not None and method[1]:
        parser.set_defaults(**TABLE8_LEARNED_RADIUS)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        parser.error("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    if model_args.model_name_or_path is None and not training_args.do_train:
        parser.error("a new model needs --do_train (or pass --model_name_or_path of a trained run)")
    return model_args, data_args, training_args


def read_corpus(data_args: DataTrainingArguments, training_args) -> dict[str, ParallelSplit | None]:
    """Read and check every split this run needs, before anything is built."""
    needs_eval = training_args.do_eval or training_args.eval_strategy != "no"
    wanted = {
        "train": (training_args.do_train, data_args.train_split, data_args.max_train_samples),
        "eval": (needs_eval, data_args.eval_split, data_args.max_eval_samples),
        "test": (training_args.do_predict, data_args.test_split, data_args.max_predict_samples),
    }
    splits = read_splits(
        data_args.data_dir,
        [split if used else None for used, split, _ in wanted.values()],
        data_args.source_lang,
        data_args.target_lang,
        [limit for _, _, limit in wanted.values()],
    )
    return dict(zip(wanted, splits))


def tokenize_split(split: ParallelSplit | None, tokenizer, data_args: DataTrainingArguments):
    """A ``datasets.Dataset`` of ``input_ids`` / ``attention_mask`` / ``labels`` for one split (None stays None)."""
    if split is None:
        return None
    source = tokenizer(split.source, max_length=data_args.max_source_length, truncation=True)
    target = tokenizer(text_target=split.target, max_length=data_args.max_target_length, truncation=True)
    return datasets.Dataset.from_dict({**source, "labels": target["input_ids"]})


def load_model_and_tokenizer(model_args: ModelArguments, training_args, train: ParallelSplit | None):
    """A saved run's model and vocabulary, or a new vocabulary from ``train`` and a new random model."""
    if model_args.model_name_or_path is not None:
        return (
            MarianMTModel.from_pretrained(model_args.model_name_or_path),
            AutoTokenizer.from_pretrained(model_args.model_name_or_path),
        )
    tokenizer = build_tokenizer(build_joined_vocabulary(train.source, train.target), model_args.max_positions)
    model = build_model(
        tokenizer,
        model_args.sizes(),
        num_beams=training_args.generation_num_beams,
        max_length=training_args.generation_max_length,
    )
    return model, tokenizer


def score_test_split(trainer: LETSSeq2SeqTrainer, dataset, test: ParallelSplit, output_dir: str) -> dict:
    """Beam-search the test split, write the hypotheses, and score them as fairseq's ``--remove-bpe`` does."""
    prediction = trainer.predict(dataset, metric_key_prefix="predict")
    # Seq2SeqTrainer gathers with `gather`, not `gather_for_metrics`: under DDP the rows that pad the
    # last batches to equal size stay, after the dataset's rows in order; drop them.
    generated = np.asarray(prediction.predictions)[: len(dataset)]
    hypotheses = [remove_bpe(ids_to_text(trainer.processing_class, ids)) for ids in generated]
    references = [remove_bpe(line) for line in test.target]
    bleu = corpus_bleu(hypotheses, references)
    if trainer.is_world_process_zero():
        with open(os.path.join(output_dir, "generated_predictions.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(hypotheses) + "\n")
    logger.info(
        "BLEU = %.2f on %s (%d sentences)  sacrebleu signature: %s",
        bleu.score,
        test.name,
        bleu.sentences,
        bleu.signature,
    )
    if trainer.is_world_process_zero():
        print(f"BLEU = {bleu.score:.2f}  {bleu.signature}", flush=True)
        print(sample_of_hypotheses(hypotheses, references), flush=True)
    return {**bleu.as_dict(), "predict_loss": prediction.metrics.get("predict_loss")}


def run_summary(data_args, training_args, corpus, trainer, timings, bleu, eval_metrics) -> dict:
    """The facts of a run that ``results.json`` records besides its curves."""
    model, tokenizer, lets = trainer.model, trainer.processing_class, trainer.lets_optimizer
    train, test = corpus["train"], corpus["test"]
    train_split = train.name if train is not None else None
    test_split = test.name if test is not None else None
    return {
        "method": method_label(training_args.optim),
        "optim": training_args.optim,
        "seed": training_args.seed,
        "bleu": bleu,
        "eval": eval_metrics,
        "data": {
            "dir": os.path.abspath(data_args.data_dir),
            "train_split": train_split,
            "test_split": test_split,
            "train_pairs": len(train) if train is not None else None,
            "test_pairs": len(test) if test is not None else None,
            "label": data_label(train_split or "unknown", test_split or "none"),
        },
        "model": {
            "parameters": model.num_parameters(only_trainable=True),
            "vocabulary": len(tokenizer),
            "config": {
                k: getattr(model.config, k)
                for k in (
                    "d_model",
                    "encoder_layers",
                    "decoder_layers",
                    "encoder_ffn_dim",
                    "encoder_attention_heads",
                    "dropout",
                )
            },
        },
        "training": {
            "rho_initial": training_args.rho,
            "radius": repr(lets.radius) if lets is not None else None,
            "learning_rate": training_args.learning_rate,
            "steps": trainer.state.global_step,
            "device": str(training_args.device),
            "precision": training_precision(training_args),
            "world_size": training_args.world_size,
        },
        "wall_time_seconds": timings,
    }


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args = parse_arguments(argv)
    logging.basicConfig(  # the script's own lines on the main process only; the others log errors
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if training_args.should_log else logging.ERROR,
    )
    mismatch = process_count_warning(training_args.world_size, requested_processes())
    if mismatch is not None:
        logger.warning(mismatch)
    try:
        training_precision(training_args)  # refuses --fp16 on a CPU
        # --do_train resumes an unfinished run and refuses a finished one (its results.json)
        checkpoint = (
            checkpoint_to_resume(training_args, data_args.overwrite_output_dir, RESULTS_FILE)
            if training_args.do_train
            else None
        )
        corpus = read_corpus(data_args, training_args)
    except ValueError as error:  # those, or a CorpusError
        raise SystemExit(f"run_translation.py: error: {error}") from None
    set_seed(training_args.seed)
    model, tokenizer = load_model_and_tokenizer(model_args, training_args, corpus["train"])
    logger.info("model: %d parameters, joined vocabulary of %d units", model.num_parameters(), len(tokenizer))
    train_dataset, eval_dataset, test_dataset = (
        tokenize_split(corpus[key], tokenizer, data_args) for key in ("train", "eval", "test")
    )
    collator = DataCollatorForSeq2Seq(
        tokenizer,
        model=model,
        label_pad_token_id=-100,
        pad_to_multiple_of=8 if training_args.fp16 or training_args.bf16 else None,
    )
    trainer = LETSSeq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=collator,
    )
    timings, bleu, eval_metrics, start = {}, None, None, time.perf_counter()
    if training_args.do_train:
        if checkpoint is not None:
            logger.info("resuming from %s", checkpoint)
        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        timings["train"] = time.perf_counter() - start
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()  # the loss only: no compute_metrics, so no generation
        trainer.save_metrics("eval", eval_metrics)
    if training_args.do_predict:
        predict_start = time.perf_counter()
        bleu = score_test_split(trainer, test_dataset, corpus["test"], training_args.output_dir)
        trainer.save_metrics("predict", {"predict_bleu": bleu["score"], "predict_bleu_signature": bleu["signature"]})
        timings["predict"] = time.perf_counter() - predict_start
    timings["total"] = time.perf_counter() - start
    summary = run_summary(data_args, training_args, corpus, trainer, timings, bleu, eval_metrics)
    if trainer.is_world_process_zero():
        return write_run_report(training_args.output_dir, trainer.state.log_history, summary)
    return summary


if __name__ == "__main__":
    main()
