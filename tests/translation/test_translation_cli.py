"""``translation/run_translation.py`` from the command line on the real IWSLT'14 files.

A tiny model of the ``transformer_iwslt_de_en`` architecture (1+1 layers, width 32) trains with
LETS-SAM for 30 steps on 300 pairs of ``valid`` and is scored on 24 pairs of ``test``.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from translation.bleu import corpus_bleu, remove_bpe
from translation.report import clip
from translation.run_translation import main

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "translation" / "run_translation.py"
TINY = ["--d_model", "32", "--layers", "1", "--ffn_dim", "64", "--attention_heads", "2"]
RHO_0 = 0.05


def run_script(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )


def run_lets_sam(iwslt14, output):
    """30 LETS-SAM steps of the tiny model on 300 pairs of valid (dropout 0.3, the preset's), BLEU on 24 of test."""
    result = run_script(
        "--data_dir",
        iwslt14,
        "--train_split",
        "valid",
        "--test_split",
        "test",
        "--max_train_samples",
        300,
        "--max_predict_samples",
        24,
        *TINY,
        "--optim",
        "lets_sam",
        "--rho",
        RHO_0,
        "--rho_lr",
        0.05,
        "--rho_lr_decay",
        1,
        "--max_steps",
        30,
        "--per_device_train_batch_size",
        16,
        "--per_device_eval_batch_size",
        24,
        "--warmup_steps",
        5,
        "--logging_steps",
        5,
        "--generation_max_length",
        40,
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--use_cpu",
        "--output_dir",
        output,
        "--do_train",
        "--do_predict",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result, json.loads((output / "results.json").read_text())


@pytest.fixture(scope="module")
def lets_sam_run(iwslt14, tmp_path_factory):
    return run_lets_sam(iwslt14, tmp_path_factory.mktemp("lets_sam_run"))


def test_bleu_is_scored_with_its_signature(lets_sam_run, iwslt14):
    output, result, results = lets_sam_run
    bleu = results["bleu"]
    assert bleu["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|version:")
    assert f"BLEU = {bleu['score']:.2f}  {bleu['signature']}" in result.stdout
    hypotheses = (output / "generated_predictions.txt").read_text(encoding="utf-8").split("\n")[:-1]
    references = [remove_bpe(line) for line in (iwslt14 / "test.en").read_text(encoding="utf-8").splitlines()[:24]]
    assert len(hypotheses) == bleu["sentences"] == 24
    assert not any("@@" in line or "</s>" in line or "<pad>" in line for line in hypotheses)
    assert bleu["hypothesis_length"] == sum(len(line.split()) for line in hypotheses) > 0
    assert bleu["reference_length"] == sum(len(line.split()) for line in references)
    assert bleu["score"] == pytest.approx(corpus_bleu(hypotheses, references).score, abs=1e-9)
    assert 0.0 <= bleu["score"] < 100.0


def test_the_run_prints_hypotheses_beside_their_references(lets_sam_run, iwslt14):
    output, result, _ = lets_sam_run
    hypotheses = (output / "generated_predictions.txt").read_text(encoding="utf-8").split("\n")[:-1]
    references = [remove_bpe(line) for line in (iwslt14 / "test.en").read_text(encoding="utf-8").splitlines()[:3]]
    empty = sum(not line.strip() for line in hypotheses)
    printed = result.stdout[result.stdout.index(f"{empty} of 24 hypotheses are empty") :].splitlines()
    assert printed[1:7] == [
        line
        for hypothesis, reference in zip(hypotheses, references)
        for line in (f"  hypothesis: {clip(hypothesis)!r}", f"  reference:  {clip(reference)!r}")
    ]


def test_rho_is_learned_and_logged(lets_sam_run):
    output, _, results = lets_sam_run
    trajectory = results["rho_trajectory"]
    assert trajectory["step"] == [0, 5, 10, 15, 20, 25, 30]  # 0: the initial rho, before any gap
    assert results["rho_final"] == trajectory["rho"][-1] and trajectory["rho"][0] == pytest.approx(RHO_0)
    assert abs(math.log(results["rho_final"] / RHO_0)) > 0.1  # rho moved by more than 10%
    assert len(set(trajectory["rho"])) == 7 and trajectory["lets_gap"][0] is None
    assert all(math.isfinite(gap) for gap in trajectory["lets_gap"][1:])
    assert (output / "rho.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_is_recorded_and_labelled(lets_sam_run):
    output, _, results = lets_sam_run
    assert (results["method"], results["optim"], results["seed"]) == ("LETS-SAM", "lets_sam", 42)
    assert results["data"]["label"] == "valid->test (not the paper's training data)"
    assert (results["data"]["train_pairs"], results["data"]["test_pairs"]) == (300, 24)
    losses = results["loss_curves"]["train"]
    assert losses["step"] == [5, 10, 15, 20, 25, 30] and losses["loss"][-1] < losses["loss"][0]
    assert results["training"]["steps"] == 30 and results["training"]["rho_initial"] == RHO_0
    assert results["training"]["precision"] == "fp32"
    assert "lr=0.05, lr_decay=1.0, hvp='diag', objective='gap2'" in results["training"]["radius"]
    assert results["wall_time_seconds"]["total"] >= results["wall_time_seconds"]["train"] > 0
    assert results["model"]["config"]["encoder_layers"] == 1
    assert json.loads((output / "config.json").read_text())["model_type"] == "marian"


def test_saved_run_scores_again_with_the_same_bleu(lets_sam_run, iwslt14, tmp_path):
    output, _, results = lets_sam_run
    again = main(
        [
            "--model_name_or_path",
            str(output),
            "--data_dir",
            str(iwslt14),
            "--max_predict_samples",
            "24",
            "--per_device_eval_batch_size",
            "24",
            "--generation_max_length",
            "40",
            "--report_to",
            "none",
            "--use_cpu",
            "--output_dir",
            str(tmp_path),
            "--do_predict",
        ]
    )
    assert json.loads((tmp_path / "results.json").read_text()) == again
    assert again["bleu"]["score"] == pytest.approx(results["bleu"]["score"], abs=1e-9)
    assert (tmp_path / "generated_predictions.txt").read_text() == (output / "generated_predictions.txt").read_text()


def test_misaligned_files_stop_before_training(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, lines in {"train.de": "a\nb\nc\n", "train.en": "x\ny\n", "test.de": "a\n", "test.en": "x\n"}.items():
        (data / name).write_text(lines)
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "--data_dir",
                str(data),
                "--output_dir",
                str(tmp_path / "out"),
                "--do_train",
                "--do_predict",
                "--use_cpu",
                "--report_to",
                "none",
            ]
        )
    assert (
        str(stopped.value) == f"run_translation.py: error: {data / 'train.de'} has 3 lines but "
        f"{data / 'train.en'} has 2: source and target files must be aligned line by line"
    )
    assert not (tmp_path / "out").exists()


def test_the_same_command_gives_the_same_run(lets_sam_run, iwslt14, tmp_path):
    output, _, results = lets_sam_run
    _, _, again = run_lets_sam(iwslt14, tmp_path)
    without_times = lambda r: {k: v for k, v in r.items() if k != "wall_time_seconds"}
    assert without_times(again) == without_times(results)
    assert (tmp_path / "model.safetensors").read_bytes() == (output / "model.safetensors").read_bytes()
    assert (tmp_path / "generated_predictions.txt").read_text() == (output / "generated_predictions.txt").read_text()


def test_fp16_on_cpu_stops_before_training(iwslt14, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "--data_dir",
                str(iwslt14),
                "--train_split",
                "valid",
                "--output_dir",
                str(tmp_path / "out"),
                "--do_train",
                "--fp16",
                "true",
                "--use_cpu",
                "--report_to",
                "none",
            ]
        )
    assert str(stopped.value).startswith("run_translation.py: error: --fp16 true needs a GPU")
    assert "use --bf16 true, or neither flag for fp32" in str(stopped.value)
    assert not (tmp_path / "out").exists()
