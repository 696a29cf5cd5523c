"""A translation run killed after a checkpoint and run again resumes there and ends as the uninterrupted run.

The tiny model of ``test_translation_cli.py`` trains with LETS-SAM for 8 steps on 96 pairs of ``valid``
(dropout 0.3, batches grouped by length, so the resumed run must restore the sampler's and dropout's RNG),
saving at step 4. The interrupted run is the uninterrupted run's ``checkpoint-4`` alone in a new folder,
as a kill right after that save leaves it; the same command then finishes it.
"""

import json
import shutil

import pytest
from safetensors.torch import load_file

from translation.report import RESULTS_FILE
from translation.run_translation import main

STEPS, SAVE_EVERY = 8, 4
TINY = ["--d_model", "32", "--layers", "1", "--ffn_dim", "64", "--attention_heads", "2"]


def _args(iwslt14, output_dir, *extra):
    return [
        str(a)
        for a in (
            *("--data_dir", iwslt14, "--train_split", "valid", "--max_train_samples", 96, "--max_eval_samples", 16),
            *TINY,
            *("--optim", "lets_sam", "--rho_lr", 0.05, "--rho_lr_decay", 1, "--warmup_steps", 2),
            *("--max_steps", STEPS, "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 16),
            *("--logging_steps", 2, "--save_strategy", "steps", "--save_steps", SAVE_EVERY),
            *("--report_to", "none", "--use_cpu", "--disable_tqdm", "true", "--output_dir", output_dir),
            *("--do_train", "--do_eval", *extra),
        )
    ]


def _without_times(results):
    timed = ("_runtime", "_per_second")
    evaluation = {key: value for key, value in results["eval"].items() if not key.endswith(timed)}
    return {**{key: value for key, value in results.items() if key != "wall_time_seconds"}, "eval": evaluation}


@pytest.fixture(scope="module")
def full(iwslt14, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("full")
    return output_dir, main(_args(iwslt14, output_dir))


def test_a_resumed_run_ends_as_the_uninterrupted_run(full, iwslt14, tmp_path, caplog):
    full_dir, full_results = full
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(full_dir / f"checkpoint-{SAVE_EVERY}", resumed_dir / f"checkpoint-{SAVE_EVERY}")
    copied_state = resumed_dir / f"checkpoint-{SAVE_EVERY}" / "trainer_state.json"
    copied_at = copied_state.stat().st_mtime_ns
    with caplog.at_level("INFO", logger="translation.run_translation"):
        resumed = main(_args(iwslt14, resumed_dir))

    assert f"resuming from {resumed_dir / f'checkpoint-{SAVE_EVERY}'}" in caplog.text
    assert copied_state.stat().st_mtime_ns == copied_at  # steps 1-4 were not trained (and saved) again
    assert json.loads((resumed_dir / RESULTS_FILE).read_text()) == resumed
    assert resumed["loss_curves"]["train"]["step"] == [2, 4, 6, 8]
    assert _without_times(resumed) == _without_times(full_results)  # losses, rho, eval loss: equal, not close
    weights, expected = load_file(resumed_dir / "model.safetensors"), load_file(full_dir / "model.safetensors")
    assert weights.keys() == expected.keys()
    assert [name for name in weights if not weights[name].equal(expected[name])] == []


def test_a_finished_run_is_not_overwritten(full, iwslt14):
    full_dir, _ = full
    with pytest.raises(SystemExit) as stopped:
        main(_args(iwslt14, full_dir))
    message = str(stopped.value)
    assert message.startswith("run_translation.py: error: ") and "already holds a finished run" in message
    assert "--overwrite_output_dir" in message
