"""LETSTrainer keeps the Trainer's contract: logs, events, callbacks, loss normalisation, construction, imports.

Each test compares LETSTrainer with the stock ``transformers.Trainer`` on the same model, data and
arguments, or checks a user-facing promise of the README's Trainer section.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, fields

import pytest
import torch
from lets_testing import ROOT, tiny_deberta, token_dataset
from torch.utils.data import SequentialSampler
from trainer_helpers import SequentialLETSTrainer, lets_args, lm_dataset, tiny_gpt2
from transformers import Trainer, TrainerCallback, TrainingArguments

from experiment_utils.tiny_runs import stock_run_arguments
from lets_hf.arguments import SAM_FAMILY, STOCK_OPTIMIZERS, LETSArguments, LETSArgumentsMixin, LETSSeq2SeqArguments
from lets_hf.plots import radius_trajectory
from lets_hf.trainer import LETSTrainer
from lets_hf.trainer_parts.finished_run import FinishedRun
from lets_hf.trainer_parts.loss_tally import LossTally
from lets_hf.trainer_parts.report import RadiusProgress


class EventCounter(TrainerCallback):
    """Counts the callback events a run fires."""

    def __init__(self):
        self.events = {}

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: self.events.__setitem__(name, self.events.get(name, 0) + 1)
        return super().__getattribute__(name)


class GradientRecorder(TrainerCallback):
    """The gradient the optimizer steps with (after the SAM passes, clipping and unperturbing), per step."""

    def __init__(self):
        self.gradients = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]).clone())


def _state(path):
    return json.loads((path / "trainer_state.json").read_text())


# -- 1. no extra log entry ---------------------------------------------------------------------
def test_log_entries_and_events_are_the_trainers(tmp_path):
    """Same entries (steps and count) and the same number of on_log events as Trainer; rho starts in the first."""
    common = dict(max_steps=4, logging_steps=2)
    stock, lets = EventCounter(), EventCounter()
    erm = Trainer(
        model=tiny_deberta(),
        args=lets_args(tmp_path / "erm", optim="sgd", **common),
        train_dataset=token_dataset(32),
        callbacks=[stock],
    )
    erm.train()
    trainer = LETSTrainer(
        model=tiny_deberta(),
        args=lets_args(tmp_path / "lets", **common),
        train_dataset=token_dataset(32),
        callbacks=[lets],
    )
    trainer.train()
    assert lets.events == stock.events and lets.events["on_log"] == 3  # steps 2 and 4, the final metrics
    history = trainer.state.log_history
    assert [row["step"] for row in history] == [row["step"] for row in erm.state.log_history] == [2, 4, 4]
    assert [row["loss"] for row in history[:-1]]  # every entry but the final metrics has a loss
    assert history[0]["rho_start"] == pytest.approx(0.1, rel=1e-12) and "rho_start" not in history[1]
    assert history[0]["rho"] != pytest.approx(0.1, rel=1e-3)  # rho after step 2
    trajectory = radius_trajectory(history)
    assert trajectory["step"] == [0, 2, 4] and trajectory["rho"] == [
        history[0]["rho_start"],
        history[0]["rho"],
        history[1]["rho"],
    ]
    assert trajectory["lets_gap"] == [None, history[0]["lets_gap"], history[1]["lets_gap"]]


@pytest.mark.parametrize("logging_steps, save_steps", [(1, 3), (4, 2)])  # resumed after, and before, the first log
def test_resumed_log_history_equals_the_uninterrupted_one(tmp_path, logging_steps, save_steps):
    common = dict(
        max_steps=6,
        save_strategy="steps",
        save_steps=save_steps,
        logging_steps=logging_steps,
        lets_base_optim="adamw_torch",
        learning_rate=1e-3,
    )
    data = token_dataset(64)
    full = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path / "a", **common), train_dataset=data)
    full.train()
    resumed = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path / "b", **common), train_dataset=data)
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "out" / f"checkpoint-{save_steps}"))
    expected = _state(tmp_path / "a" / "out" / "checkpoint-6")["log_history"]
    history = _state(tmp_path / "b" / "out" / "checkpoint-6")["log_history"]
    if save_steps % logging_steps:  # Trainer's own loss average restarts at the checkpoint: compare the rest
        for row in expected[:1] + history[:1]:
            row.pop("loss")
    assert history == expected
    assert (
        expected[0]["rho_start"] == pytest.approx(0.1, rel=1e-12) and sum("rho_start" in row for row in expected) == 1
    )


# -- 2. construction without datasets ---------------------------------------------------------
def test_construction_needs_no_dataset(tmp_path):
    trainer = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path))  # evaluate/predict only, or data later
    assert trainer.evaluate(eval_dataset=token_dataset(16))["eval_loss"] > 0
    trainer.train_dataset = token_dataset(32)
    trainer.train()
    assert trainer.lets_optimizer.radius.updates == 4


def test_validation_source_is_checked_when_training_starts(tmp_path):
    trainer = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path, lets_val_source="eval"), train_dataset=token_dataset(32)
    )
    with pytest.raises(ValueError, match="lets_val_source='eval' needs a single eval_dataset"):
        trainer.train()
    assert trainer.state.global_step == 0


# -- 3. loss normalisation: Trainer's, under every --optim --------------------------------------
class SequentialTrainer(Trainer):
    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def lm_args(out, **overrides):
    """The causal-LM runs' arguments (Trainer's fields only): 2 steps of 2 x 4 accumulated micro-batches."""
    settings = dict(per_device_train_batch_size=2, gradient_accumulation_steps=4, max_steps=2, learning_rate=0.1)
    return stock_run_arguments(str(out), **{"max_grad_norm": 0.0, "optim": "sgd", **settings, **overrides})


def _lm_run(trainer_cls, args):
    recorder = GradientRecorder()
    trainer = trainer_cls(model=tiny_gpt2(), args=args, train_dataset=lm_dataset(), callbacks=[recorder])
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return trainer, losses, recorder.gradients


def test_stock_optim_is_the_trainer_exactly_for_a_causal_lm(tmp_path):
    """2 x 4 accumulation of a causal LM: the loss is a sum over num_items_in_batch, as Trainer computes it."""
    stock, stock_losses, stock_grads = _lm_run(SequentialTrainer, TrainingArguments(**lm_args(tmp_path / "a")))
    lets, losses, grads = _lm_run(SequentialLETSTrainer, LETSArguments(**lm_args(tmp_path / "b")))
    assert stock.model_accepts_loss_kwargs and lets.model_accepts_loss_kwargs
    assert losses == stock_losses and len(losses) == 2
    assert len(grads) == 2 and all(torch.equal(a, b) for a, b in zip(grads, stock_grads))


@pytest.mark.parametrize("optim", ["sam", "lets_sam"])
def test_sam_family_descent_is_normalised_as_the_trainer_normalises_erm(tmp_path, optim):
    """At rho -> 0, SAM's descent gradient is the ERM gradient: the same normalisation over num_items_in_batch."""
    _, erm_losses, erm_grads = _lm_run(SequentialTrainer, TrainingArguments(**lm_args(tmp_path / "a")))
    args = LETSArguments(
        **lm_args(tmp_path / "b", optim=optim),
        lets_base_optim="sgd",
        lets_preset="paper",
        rho=1e-6,
        rho_min=1e-8,
        rho_lr=1e-3,
    )
    lets, losses, grads = _lm_run(SequentialLETSTrainer, args)
    assert losses[0] == erm_losses[0]  # the ascent pass is the stock training_step at the same weights
    assert losses[1] == pytest.approx(erm_losses[1], rel=1e-5)
    for grad, erm in zip(grads, erm_grads):
        torch.testing.assert_close(grad, erm, rtol=1e-4, atol=1e-6)
    assert getattr(lets.lets_optimizer.radius, "updates", 0) == (2 if optim == "lets_sam" else 0)


# -- 4. callbacks ------------------------------------------------------------------------------
def test_callback_list_is_the_trainers_and_the_hyper_step_survives_removing_them(tmp_path):
    stock = Trainer(model=tiny_deberta(), args=lets_args(tmp_path, optim="sgd"), train_dataset=token_dataset(32))
    trainer = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path), train_dataset=token_dataset(32))
    kinds = lambda t: [type(callback) for callback in t.callback_handler.callbacks]
    ours = [LossTally, FinishedRun, RadiusProgress]  # the trainer's own parts, after Trainer's callbacks
    assert kinds(trainer) == kinds(stock) + ours
    for callback in list(trainer.callback_handler.callbacks):
        trainer.remove_callback(callback)
    trainer.train()
    assert trainer.lets_optimizer.radius.updates == 4 and trainer.rho != 0.1


# -- 7. rho's public home ----------------------------------------------------------------------
def test_rho_gap_and_hypergradient_are_public_and_rho_is_in_the_metrics(tmp_path):
    trainer = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path), train_dataset=token_dataset(32))
    assert trainer.rho is None and trainer.lets_gap is None  # no optimizer yet: train() builds it
    metrics = trainer.train().metrics
    optimizer = trainer.lets_optimizer
    assert trainer.rho == optimizer.rho == metrics["rho"] != 0.1
    assert trainer.rho_start == pytest.approx(0.1, rel=1e-12)
    assert trainer.lets_gap == float(optimizer.last_gap) and trainer.lets_hypergradient == float(
        optimizer.last_hypergradient
    )
    assert trainer.state.log_history[-1]["rho"] == metrics["rho"]  # the final entry too
    erm = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path, optim="sgd"), train_dataset=token_dataset(32))
    assert "rho" not in erm.train().metrics and erm.rho is None


def test_progress_bar_shows_rho(tmp_path, capsys):
    trainer = LETSTrainer(
        model=tiny_deberta(),
        args=lets_args(tmp_path, disable_tqdm=False, logging_steps=500),
        train_dataset=token_dataset(32),
    )
    trainer.train()
    bar = capsys.readouterr().err
    assert f"rho={trainer.rho:.4g}" in bar, bar[-500:]


# -- 8. imports --------------------------------------------------------------------------------
def test_top_level_exports_are_lazy():
    code = (
        "import sys, lets_hf\n"
        "assert 'transformers' not in sys.modules, 'import lets_hf imported transformers'\n"
        "from lets_hf import LETSTrainer, LETSArguments, LETSSeq2SeqTrainer, LETSSeq2SeqArguments\n"
        "import transformers, lets_hf.trainer, lets_hf.arguments\n"
        "assert issubclass(LETSTrainer, transformers.Trainer) and LETSTrainer is lets_hf.trainer.LETSTrainer\n"
        "assert issubclass(LETSArguments, transformers.TrainingArguments)\n"
        "assert {'LETSTrainer', 'LETSArguments'} <= set(dir(lets_hf)) <= set(dir(lets_hf)) | set(lets_hf.__all__)\n"
        "try:\n    lets_hf.LETSNothing\nexcept AttributeError as e:\n    print(e)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has no attribute 'LETSNothing'" in result.stdout


# -- 9. --help ---------------------------------------------------------------------------------
@dataclass
class ScriptArguments:
    task_name: str = field(default="mrpc", metadata={"help": "A script's own option."})


def _sections(text):
    """``{title: body}`` of an argparse help text (a title is an unindented line ending with ':')."""
    sections, title = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            sections[title] = ""
        elif title is not None:
            sections[title] += line + "\n"
    return sections


def _entry(body, flag):
    """The help entry of ``flag`` in a section body: its line and the indented lines that follow."""
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("--")), len(lines))
    return " ".join(line.strip() for line in lines[start:end])


@pytest.mark.parametrize("cls", [LETSArguments, LETSSeq2SeqArguments])
def test_help_puts_the_lets_options_in_a_titled_group(cls):
    from lets_hf.arguments import TRAINER_GROUP_TITLE, LETSArgumentParser

    parser = LETSArgumentParser((ScriptArguments, cls))
    sections = _sections(parser.format_help())
    lets_titles = [title for title in sections if "LETS" in title]
    assert len(lets_titles) == 1
    lets, script, stock = (sections[title] for title in (lets_titles[0], "ScriptArguments", TRAINER_GROUP_TITLE))
    names = [f.name for f in fields(LETSArgumentsMixin)]
    assert all(f"--{name} " in lets for name in names) and not any(f"--{name} " in stock for name in names)
    assert "--learning_rate " in stock and "--task_name " in script and "--learning_rate" not in lets
    optim = _entry(lets, "--optim")
    assert "{" not in optim  # no brace list of all 50 names
    family_at, stock_at = optim.index("lets_sam"), optim.index("Stock")
    assert all(optim.index(name) < stock_at for name in SAM_FAMILY)
    assert all(name in optim[stock_at:] for name in STOCK_OPTIMIZERS) and family_at < stock_at
    assert "{" not in _entry(lets, "--lets_base_optim")
    (_, args) = parser.parse_args_into_dataclasses(["--output_dir", "x", "--optim", "lets_asam", "--rho", "0.2"])
    assert isinstance(args, cls) and args.optim == "lets_asam" and args.rho == 0.2
    assert cls(output_dir="x", optim="lets_sam").sam_family == ("sam", True)  # still one dataclass


def test_the_scripts_keep_deberta_and_iwslt_losses_per_device():
    """The DDP doubling of a model that ignores num_items_in_batch is the scripts' to prevent, as a default."""
    from glue.run_glue import parse_arguments as glue_arguments
    from translation.run_translation import parse_arguments as translation_arguments

    assert glue_arguments(["--task_name", "mrpc"])[2].average_tokens_across_devices is False
    assert translation_arguments(["--data_dir", "x", "--do_train"])[2].average_tokens_across_devices is False
    assert (
        glue_arguments(["--task_name", "mrpc", "--average_tokens_across_devices", "true"])[
            2
        ].average_tokens_across_devices
        is True
    )


@pytest.mark.parametrize("script", ["glue", "translation"])
def test_the_scripts_help_shows_the_lets_group(script, capsys):
    if script == "glue":
        from glue.run_glue import parse_arguments
    else:
        from translation.run_translation import parse_arguments
    with pytest.raises(SystemExit):
        parse_arguments(["--help"])
    sections = _sections(capsys.readouterr().out)
    lets = sections["LETS and the SAM family (lets_hf)"]
    assert "--optim " in lets and "--rho_lr " in lets and "--optim " not in sections["options"]
    titles = list(sections)
    assert titles.index("LETS and the SAM family (lets_hf)") < len(titles) / 2  # near the top, not after Trainer's
