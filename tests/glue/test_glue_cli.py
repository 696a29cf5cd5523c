"""run_glue.py's arguments (presets as overridable defaults) and its messages for bad input, in-process."""

import re
import shlex
import time

import pytest
from datasets import Dataset
from lets_testing import ROOT
from transformers import AutoTokenizer

from glue import hub
from glue.errors import GlueInputError
from glue.presets import GRIDS, PAPER_COMMON, preset_defaults
from glue.results import RESULTS_FILE
from glue.run_glue import (
    DataTrainingArguments,
    main,
    parse_arguments,
    resume_checkpoint,
    tokenize,
    validation_source,
)
from glue.tasks import get_task
from lets_hf import LETSArguments


def test_no_arguments_is_a_complete_command():
    model, data, training = parse_arguments(["--optim", "lets_sam"])
    assert (model.model_name_or_path, data.task_name, data.max_seq_length) == ("microsoft/deberta-base", "mrpc", 128)
    assert training.output_dir == "runs/glue/mrpc/lets_sam-seed42"
    assert (training.optim, training.rho, training.lets_preset, training.rho_lr) == ("lets_sam", 0.05, "auto", None)
    assert training.build_radius(total_steps=100).lr == GRIDS["rho_lr"][0]  # the paper's rule: Table 11's 1e-4
    assert (training.adam_epsilon, training.max_grad_norm, training.lr_scheduler_type.value) == (1e-6, 1.0, "linear")
    assert (training.learning_rate, training.per_device_train_batch_size, training.num_train_epochs) == (2e-5, 32, 6)


def test_flags_override_the_preset():
    _, data, training = parse_arguments(
        ["--task_name", "RTE", "--optim", "lets_asam", "--rho", "0.2", "--adam_epsilon", "1e-7", "--seed", "3"]
    )
    assert data.task_name == "rte" and training.output_dir == "runs/glue/rte/lets_asam-seed3"
    assert (training.rho, training.adam_epsilon, training.per_device_train_batch_size) == (0.2, 1e-7, 16)
    _, _, stock = parse_arguments(["--glue_preset", "none", "--optim", "sam"])
    assert (stock.adam_epsilon, stock.learning_rate) == (1e-8, 5e-5)


def test_presets_per_method():
    assert preset_defaults("paper", "cola", "adamw_torch").keys().isdisjoint({"rho", "rho_lr"})
    assert preset_defaults("paper", "cola", "lets_sam")["rho"] == 0.05
    assert preset_defaults("paper", "cola", "asam")["rho"] == 0.5
    assert {k: preset_defaults("paper", "qqp", "sam")[k] for k in PAPER_COMMON} == PAPER_COMMON
    assert preset_defaults("none", "qqp", "lets_sam") == {}
    with pytest.raises(GlueInputError, match="unknown preset 'fast'"):
        preset_defaults("fast", "qqp", "sam")


def error_of(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_unknown_task_and_preset(capsys):
    assert "unknown task 'mrcp'; choose one of: cola, sst2, mrpc" in error_of(capsys, ["--task_name", "mrcp"])
    message = error_of(capsys, ["--glue_preset", "fast"])
    assert "argument --glue_preset/--glue-preset: 'fast' is not one of paper, none" in message
    message = error_of(capsys, ["--optim", "lets_sgd"])
    assert "argument --optim: did you mean " in message and "'lets_sgd' is not one of its 57 names" in message


def test_missing_model_folder(capsys, tmp_path):
    message = error_of(capsys, ["--model_name_or_path", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")])
    assert f"model folder '{tmp_path / 'nope'}' does not exist" in message


def test_unreachable_hub_stops_within_seconds(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for name in hub.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    hub.hub_reachable.cache_clear()
    start = time.perf_counter()
    message = error_of(capsys, ["--optim", "lets_sam", "--output_dir", str(tmp_path / "o")])
    hub.hub_reachable.cache_clear()
    assert time.perf_counter() - start < 15
    assert "model 'microsoft/deberta-base'" in message and "cannot be reached" in message
    assert "--data_dir" in message and "--model_name_or_path LOCAL_FOLDER" in message


def test_offline_without_cache(capsys, monkeypatch, tmp_path, glue_data):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = error_of(
        capsys,
        ["--data_dir", str(glue_data), "--output_dir", str(tmp_path / "o"), "--cache_dir", str(tmp_path / "cache")],
    )
    assert "could not load model 'microsoft/deberta-base'" in message and "--data_dir" in message


def test_bad_data_is_reported_before_training(capsys, tmp_path, tiny_deberta):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tyes\n")
    (folder / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    common = [
        "--task_name",
        "rte",
        "--data_dir",
        str(tmp_path / "glue"),
        "--model_name_or_path",
        tiny_deberta,
        "--output_dir",
        str(tmp_path / "out"),
    ]
    assert "train.tsv, data row 2: label 'yes' is not one of rte's labels" in error_of(capsys, common)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    (folder / "dev.tsv").unlink()
    assert "RTE/dev.tsv not found: the validation split of RTE" in error_of(capsys, common)
    assert not (tmp_path / "out").exists()


def test_finished_run_is_not_overwritten(capsys, tmp_path):
    (tmp_path / RESULTS_FILE).write_text("{}")
    message = error_of(capsys, ["--output_dir", str(tmp_path)])
    assert "already holds a finished run" in message and "--overwrite_output_dir" in message


def test_conflicting_lets_validation_sources(capsys, tmp_path):
    message = error_of(
        capsys,
        [
            "--optim",
            "lets_sam",
            "--lets_val_split_fraction",
            "0.1",
            "--lets_val_source",
            "eval",
            "--output_dir",
            str(tmp_path),
        ],
    )
    assert "exclude each other" in message


def test_held_out_split_and_next_batch_validation_exclude_each_other(capsys, tmp_path):
    arguments = ["--optim", "lets_sam", "--lets_objective", "val", "--lets_val_term", "next"]
    message = error_of(capsys, arguments + ["--lets_val_split_fraction", "0.1", "--output_dir", str(tmp_path)])
    assert "--lets_val_split_fraction and --lets_val_term next exclude each other" in message


def test_too_small_held_out_split(capsys, tmp_path, tiny_deberta, glue_data):
    message = error_of(
        capsys,
        [
            "--task_name",
            "rte",
            "--data_dir",
            str(glue_data),
            "--model_name_or_path",
            tiny_deberta,
            "--optim",
            "lets_sam",
            "--max_train_samples",
            "40",
            "--lets_val_split_fraction",
            "0.1",
            "--per_device_train_batch_size",
            "8",
            "--output_dir",
            str(tmp_path / "o"),
            "--use_cpu",
            "true",
        ],
    )
    assert "the LETS validation dataset has 4 examples, fewer than one batch of 8" in message


def _complete_checkpoint(folder):
    import torch
    from safetensors.torch import save_file

    folder.mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({}, folder / name)
    (folder / "trainer_state.json").write_text('{"global_step": 1}')


def test_unfinished_run_resumes_from_its_last_complete_checkpoint(tmp_path):
    for step in (4, 8):
        _complete_checkpoint(tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-12").mkdir()  # killed while saving it
    _, _, training = parse_arguments(["--output_dir", str(tmp_path)])
    assert resume_checkpoint(training, overwrite=False) == str(tmp_path / "checkpoint-8")
    assert resume_checkpoint(training, overwrite=True) is None
    (tmp_path / RESULTS_FILE).write_text("{}")
    assert resume_checkpoint(training, overwrite=True) is None  # --overwrite_output_dir: start afresh


def test_tokenize_pairs_truncates_and_pads_on_request(tiny_deberta):
    tokenizer = AutoTokenizer.from_pretrained(tiny_deberta)
    rows = Dataset.from_dict({"sentence1": ["a man", "word " * 50], "sentence2": ["a dog", "x"], "label": [0, 1]})
    dynamic = tokenize(rows, get_task("mrpc"), tokenizer, DataTrainingArguments(max_seq_length=16))
    assert dynamic.column_names == ["label", "input_ids", "attention_mask"]
    sep = tokenizer.sep_token_id
    assert dynamic[0]["input_ids"].count(sep) == 2 and len(dynamic[0]["input_ids"]) < 16  # both texts, unpadded
    assert len(dynamic[1]["input_ids"]) == 16  # truncated
    padded = DataTrainingArguments(max_seq_length=16, pad_to_max_length=True)
    fixed = tokenize(rows, get_task("mrpc"), tokenizer, padded)
    assert [len(ids) for ids in fixed["input_ids"]] == [16, 16]


def test_fp16_on_cpu_is_refused_before_anything_runs(capsys, tmp_path):
    """On a CPU, --fp16 true would train in fp32 under an fp16 label; the message says what works there."""
    message = error_of(capsys, ["--fp16", "true", "--use_cpu", "true", "--output_dir", str(tmp_path / "o")])
    assert "--fp16 true needs a GPU" in message and "--bf16 true, or neither flag for fp32" in message
    assert message.count("\n") == 1 and not (tmp_path / "o").exists()


def test_results_name_where_the_validation_batches_came_from():
    common = dict(output_dir="unused", use_cpu=True, report_to=[], optim="lets_sam", lets_objective="val")
    assert validation_source(LETSArguments(**common, lets_val_term="next"), None) == "next training batch"
    assert validation_source(LETSArguments(**common), held_out=object()) == "held-out"
    assert validation_source(LETSArguments(**common, lets_val_source="eval"), None) == "eval"


def test_help_shows_the_lets_options_on_the_first_screen(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("usage: ") and len(lines[0]) < 120
    titles = [line for line in lines if line and not line.startswith(" ")][1:]
    assert titles == [
        "options:",
        "LETS and the SAM family (lets_hf):",
        "ModelArguments:",
        "DataTrainingArguments:",
        "Trainer options (transformers TrainingArguments):",
    ]
    first_screen = "\n".join(lines[:60])
    assert all(flag in first_screen for flag in ("--optim NAME", "--rho RHO", "--rho_min", "--lets_preset"))


def test_a_mistyped_optim_gets_the_suggestion_first(capsys):
    usage, error = error_of(capsys, ["--optim", "lets_sma"]).splitlines()  # argparse's prog: sys.argv[0]
    assert usage.startswith("usage: ") and ": error: argument --optim: did you mean 'lets_sam'? 'lets_sma' is" in error


def test_an_option_the_optim_ignores_is_named_before_training():
    with pytest.warns(
        UserWarning, match=r"--optim sam \(a fixed rho\) ignores this option:\n  --rho_lr 0.01: read by lets_"
    ):
        parse_arguments(["--optim", "sam", "--rho_lr", "1e-2"])


def first_run_command(readme: str) -> list[str]:
    """The arguments of the first ``python glue/run_glue.py`` command in ``readme`` (a path from the repository)."""
    text = (ROOT / readme).read_text()
    command = re.search(r"python glue/run_glue.py (.*?)\n```", text, re.DOTALL).group(1).replace("\\\n", " ")
    return shlex.split(command.replace('"$MODEL"', "local-minilm"))


@pytest.mark.parametrize("readme", ["README.md", "glue/README.md"])
def test_the_first_run_evaluates_after_each_epoch(readme):
    argv = first_run_command(readme)
    assert argv == first_run_command("glue/README.md")  # the front page runs the glue README's first run
    _, data, training = parse_arguments(argv)
    assert (training.eval_strategy.value, training.num_train_epochs, training.max_steps) == ("epoch", 2, -1)
    assert data.max_train_samples // training.per_device_train_batch_size == 8  # 8 steps an epoch, 16 in all
    assert (training.optim, training.rho, training.rho_lr, training.logging_steps) == ("lets_sam", 0.05, 1e-2, 2)
