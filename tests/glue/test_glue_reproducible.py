"""run_glue.py's --seed from the command line: the same command gives the same run, bit for bit, and a run
killed (SIGKILL) right after a checkpoint and started again with the same command ends as the uninterrupted run."""

import hashlib
import json
import os
import sys

import pytest
from glue_helpers import ROOT, run_script
from safetensors.torch import load_file

from glue.results import RESULTS_FILE

KILLER = ROOT / "tests" / "sigkill_after.py"
WALL_TIME_METRICS = ("_runtime", "_per_second")


def run_args(data, model, output_dir, *extra):
    """LETS-SAM on 64 MRPC rows, 6 steps of 8 with dropout, a checkpoint every 2 steps, rho's rate large enough
    to move it."""
    return [
        "--task_name",
        "mrpc",
        "--data_dir",
        data,
        "--model_name_or_path",
        model,
        "--optim",
        "lets_sam",
        "--output_dir",
        output_dir,
        "--max_train_samples",
        64,
        "--max_eval_samples",
        32,
        "--max_seq_length",
        64,
        "--per_device_train_batch_size",
        8,
        "--per_device_eval_batch_size",
        32,
        "--max_steps",
        6,
        "--logging_steps",
        1,
        "--learning_rate",
        1e-3,
        "--rho_lr",
        0.05,
        "--save_steps",
        2,
        "--save_total_limit",
        3,
        "--use_cpu",
        "true",
        "--disable_tqdm",
        "true",
        *extra,
    ]


def outcome(output_dir):
    """(glue_results.json without its wall times, a hash of the final weights) of a finished run."""
    with open(os.path.join(output_dir, RESULTS_FILE)) as handle:
        results = json.load(handle)
    results.pop("wall_time_s")
    results["metrics"] = {k: v for k, v in results["metrics"].items() if not k.endswith(WALL_TIME_METRICS)}
    weights = load_file(os.path.join(output_dir, "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode() + weights[name].numpy().tobytes())
    return results, digest.hexdigest()


def finished(process):
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, glue_data, tiny_deberta):
    output_dir = str(tmp_path_factory.mktemp("uninterrupted"))
    finished(run_script(run_args(str(glue_data), tiny_deberta, output_dir)))
    return outcome(output_dir)


def test_the_same_command_gives_the_same_run(uninterrupted, tmp_path, glue_data, tiny_deberta):
    """The classifier head is drawn after set_seed: before the fix, two runs started at different losses."""
    finished(run_script(run_args(str(glue_data), tiny_deberta, str(tmp_path))))
    results, weights = outcome(str(tmp_path))
    assert weights == uninterrupted[1]
    assert results == uninterrupted[0]
    assert results["rho_final"] != results["rho_initial"]  # the compared run did move rho


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, glue_data, tiny_deberta):
    """The same command killed right after checkpoint-4 of 6 steps, then run again: it resumes there."""
    output_dir = str(tmp_path_factory.mktemp("resumed"))
    args = run_args(str(glue_data), tiny_deberta, output_dir)
    killed = run_script(
        args, launcher=(sys.executable, str(KILLER), "transformers.trainer:Trainer._save_checkpoint", "2")
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert sorted(os.listdir(output_dir)) == ["checkpoint-2", "checkpoint-4"]
    again = run_script(args)
    finished(again)
    assert f"resuming from {os.path.join(output_dir, 'checkpoint-4')}" in again.stdout
    return outcome(output_dir)


def test_a_killed_run_resumed_equals_the_uninterrupted_run(resumed, uninterrupted):
    (results, weights), (expected, expected_weights) = resumed, uninterrupted
    assert weights == expected_weights
    assert results["rho_final"] == expected["rho_final"] != expected["rho_initial"]
    eval_metrics = lambda metrics: {k: v for k, v in metrics.items() if k.startswith("eval_")}
    assert eval_metrics(results["metrics"]) == eval_metrics(expected["metrics"]) != {}
    assert results == expected  # every record (trajectory, train_loss, settings) apart from the wall times
