"""run_glue.py end to end from the command line: real GLUE files, a tiny DeBERTa, a few dozen LETS steps."""

import json
import math
import os
import sys

import pytest
from glue_helpers import run_script
from lets_testing import free_port

from glue.results import PLOT_FILE, RESULTS_FILE

STEPS, LOG_EVERY = 24, 4


def small_run_args(task, optim, data, model, output_dir, batch=8):
    """A short run: 192 training rows, 96 dev rows, rho's learning rate large enough to move it visibly."""
    return [
        "--task_name",
        task,
        "--data_dir",
        data,
        "--model_name_or_path",
        model,
        "--optim",
        optim,
        "--output_dir",
        output_dir,
        "--max_train_samples",
        192,
        "--max_eval_samples",
        96,
        "--max_seq_length",
        64,
        "--per_device_train_batch_size",
        batch,
        "--per_device_eval_batch_size",
        32,
        "--max_steps",
        STEPS,
        "--logging_steps",
        LOG_EVERY,
        "--learning_rate",
        1e-3,
        "--rho_lr",
        0.05,
        "--save_strategy",
        "no",
        "--save_final_model",
        "false",
        "--use_cpu",
        "true",
    ]


def finished_run(process, output_dir):
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    with open(os.path.join(output_dir, RESULTS_FILE)) as handle:
        return json.load(handle)


def check_lets_run(results, output_dir, metrics, optim, rho0):
    assert results["optim"] == optim and list(results["scores"]) == metrics
    assert all(-1.0 <= value <= 1.0 for value in results["scores"].values())
    assert results["rho_initial"] == rho0 and abs(results["rho_final"] / rho0 - 1) > 0.01  # rho moved
    trajectory = results["trajectory"]
    assert trajectory["step"] == [0] + list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))  # 0: the initial rho
    assert trajectory["rho"][-1] == pytest.approx(results["rho_final"])
    assert trajectory["rho"][0] == pytest.approx(rho0, rel=1e-12)
    assert trajectory["lets_gap"][0] is None and all(math.isfinite(gap) for gap in trajectory["lets_gap"][1:])
    assert results["settings"]["global_steps"] == STEPS and results["wall_time_s"] > 0
    with open(os.path.join(output_dir, PLOT_FILE), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data(glue_data):
    return str(glue_data)


def test_mrpc_with_lets_sam(tmp_path, data, tiny_deberta):
    output_dir = str(tmp_path / "mrpc")
    results = finished_run(run_script(small_run_args("mrpc", "lets_sam", data, tiny_deberta, output_dir)), output_dir)
    check_lets_run(results, output_dir, ["accuracy", "f1"], "lets_sam", 0.05)
    assert results["label"] == "LETS-SAM (rho0=0.05, rho_lr=0.05)" and results["settings"]["world_size"] == 1
    assert results["metrics"]["eval_accuracy"] == results["scores"]["accuracy"]
    assert results["settings"]["precision"] == "fp32"
    saved = {}
    for split in ("train", "eval", "all"):  # Trainer.save_metrics, as transformers' run_glue.py
        with open(os.path.join(output_dir, f"{split}_results.json")) as handle:
            saved[split] = json.load(handle)
    assert saved["eval"]["eval_accuracy"] == results["scores"]["accuracy"] and saved["eval"]["eval_samples"] == 96
    assert saved["train"]["train_loss"] == results["metrics"]["train_loss"] and saved["train"]["train_samples"] == 192
    assert saved["all"] == {**saved["train"], **saved["eval"]} == results["metrics"]


def test_stsb_with_lets_asam_under_accelerate(tmp_path, data, tiny_deberta):
    output_dir = str(tmp_path / "stsb")
    launcher = (
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    )
    process = run_script(
        small_run_args("stsb", "lets_asam", data, tiny_deberta, output_dir) + ["--lets_val_split_fraction", 0.25],
        launcher=launcher,
    )
    results = finished_run(process, output_dir)
    check_lets_run(results, output_dir, ["pearson", "spearmanr"], "lets_asam", 0.5)  # the ASAM preset's radius
    assert results["settings"]["train_rows"] == 144 and results["settings"]["lets_val_rows"] == 48
    assert results["label"] == "LETS-ASAM (rho0=0.5, rho_lr=0.05, held-out 25%)"


def test_two_process_ddp(tmp_path, data, tiny_deberta):
    """2 CPU processes (gloo): the run finishes, and the loss is not scaled by the number of processes."""
    output_dir = str(tmp_path / "ddp")
    launcher = (
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    )
    args = small_run_args("cola", "lets_sam", data, tiny_deberta, output_dir, batch=4)
    args[args.index("--use_cpu") + 1] = "false"  # ACCELERATE_USE_CPU below; --use_cpu would mean one process
    process = run_script(args, launcher=launcher, timeout=240, extra_env={"ACCELERATE_USE_CPU": "true"})
    results = finished_run(process, output_dir)
    check_lets_run(results, output_dir, ["matthews_correlation"], "lets_sam", 0.05)
    assert results["settings"]["world_size"] == 2
    with open(os.path.join(output_dir, "trainer_state.json")) as handle:
        first_loss = next(row["loss"] for row in json.load(handle)["log_history"] if "loss" in row)
    assert first_loss == pytest.approx(math.log(2), abs=0.15)  # two classes at init; 1.39 if doubled
    output = process.stdout + process.stderr
    assert output.count("training rows") == 1 and output.count("INFO run_glue: scores") == 1  # the main process only
    assert "processes were asked for" not in output


def test_a_launch_that_runs_fewer_processes_than_asked_warns(tmp_path, data, tiny_deberta):
    """accelerate launch --num_processes 2 --cpu starts one process: the script says so and names the command."""
    output_dir = str(tmp_path / "one")
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu")
    launcher += ("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    args = small_run_args("mrpc", "sam", data, tiny_deberta, output_dir)
    args[args.index("--max_steps") + 1] = 2
    process = run_script(args, launcher=launcher)
    results = finished_run(process, output_dir)
    assert results["settings"]["world_size"] == 1
    assert "WARNING run_glue: 2 processes were asked for, but 1 runs" in process.stdout
    assert "ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 <script>" in process.stdout
