"""A GLUE run killed after a checkpoint and resumed leaves the records of the uninterrupted run (times apart)."""

import json
import shutil
import time

from glue.results import RESULTS_FILE, WALL_TIME_FILE
from glue.run_glue import run

STEPS, SAVE_EVERY, LOG_EVERY = 16, 8, 2
TIMES = (
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
)


def _args(data, model, output_dir):
    return [
        "--task_name",
        "mrpc",
        "--data_dir",
        str(data),
        "--model_name_or_path",
        model,
        "--optim",
        "lets_sam",
        "--output_dir",
        str(output_dir),
        "--max_train_samples",
        96,
        "--max_eval_samples",
        32,
        "--max_seq_length",
        48,
        "--per_device_train_batch_size",
        8,
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
        "steps",
        "--save_steps",
        SAVE_EVERY,
        "--save_total_limit",
        2,
        "--save_final_model",
        "false",
        "--use_cpu",
        "true",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]


def _without_times(results):
    results = json.loads(json.dumps(results))
    for key in TIMES:
        results["metrics"].pop(key, None)
    results.pop("wall_time_s")
    return results


def test_a_resumed_run_records_what_the_uninterrupted_run_records(tmp_path, glue_data, tiny_deberta):
    full = run([str(a) for a in _args(glue_data, tiny_deberta, tmp_path / "full")])
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()  # the first segment as a kill after checkpoint-8 leaves it
    shutil.copytree(tmp_path / "full" / f"checkpoint-{SAVE_EVERY}", resumed_dir / f"checkpoint-{SAVE_EVERY}")
    before = json.loads((resumed_dir / f"checkpoint-{SAVE_EVERY}" / WALL_TIME_FILE).read_text())["wall_time_s"]
    start = time.perf_counter()
    run([str(a) for a in _args(glue_data, tiny_deberta, resumed_dir)])
    segment = time.perf_counter() - start
    resumed = json.loads((resumed_dir / RESULTS_FILE).read_text())
    full_time, resumed_time = full["wall_time_s"], resumed["wall_time_s"]

    assert resumed["trajectory"]["step"] == [0] + list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))  # step 8 once
    assert all(gap is not None for gap in resumed["trajectory"]["lets_gap"][1:])  # the PNG's gap line unbroken
    resumed, full = _without_times(resumed), _without_times(full)
    assert {k: (v, full["metrics"].get(k)) for k, v in resumed["metrics"].items() if full["metrics"].get(k) != v} == {}
    assert resumed == full
    assert 0 < before < full_time
    assert before + 0.5 * segment < resumed_time <= before + segment  # the segments add up (writing the PNG is not in)
