"""fairseq-train with ``--user-dir translation/fairseq_lets`` from the command line: the first run on the real
IWSLT'14 files (rho in the json log lines, moving), and bad input refused before training with one line naming
the flag."""

import json

import pytest
from conftest import LETS_SAM, NEEDS_FAIRSEQ, TINY_MODEL, TRAINING, fairseq

pytest.importorskip("fairseq", reason=NEEDS_FAIRSEQ)

PLUGIN_FLAGS = ["--user-dir", "translation/fairseq_lets"]


def json_lines(output: str, tag: str) -> list[dict]:
    """fairseq's ``--log-format json`` records of ``tag`` (train_inner: every --log-interval updates)."""
    records = []
    for line in output.splitlines():
        start = line.find("{")
        if f"| {tag} |" in line and start >= 0:
            records.append(json.loads(line[start:]))
    return records


def test_the_first_run_logs_rho_moving_in_the_json_lines(iwslt_subset, tmp_path):
    result = fairseq("train", iwslt_subset, *PLUGIN_FLAGS, *TINY_MODEL, *TRAINING, *LETS_SAM, "--max-update", "12",
                     "--max-tokens", "1024", "--log-format", "json", "--log-interval", "3", "--save-dir", tmp_path,
                     "--no-epoch-checkpoints")  # fmt: skip
    output = result.stdout + result.stderr
    inner = json_lines(output, "train_inner")
    assert [int(record["num_updates"]) for record in inner] == [3, 6, 9, 12]
    rhos = [float(record["rho"]) for record in inner]
    assert all(abs(rho - 0.05) > 1e-4 for rho in rhos) and len(set(rhos)) == len(rhos)  # rho moves every time
    assert {"lets_gap", "lets_hypergradient", "gnorm", "gnorm_hat", "loss"} <= set(inner[-1])
    assert "train_rho" in json_lines(output, "train")[-1]  # the epoch's summary too
    assert (tmp_path / "checkpoint_last.pt").is_file()


LETS = ["--task", "translation_lets", "--optimizer", "lets_adam", "--lets-optim", "lets_sam"]


@pytest.mark.parametrize(
    "flags, message",
    [
        ([*LETS, "--rho-lr", "0.01", "--max-update", "2", "--fp16"], "--fp16 is not supported on a CPU (--cpu)"),
        (
            ["--task", "translation", "--optimizer", "lets_adam", "--rho-lr", "0.01", "--max-update", "2"],
            "--optimizer lets_adam needs a task that runs SAM's passes: --task translation_lets",
        ),
        (LETS, "--lets-preset paper_iwslt sets rho's rate from the run's length: give --max-update"),
    ],
)
def test_bad_input_is_refused_with_the_flag_named(toy_data, tmp_path, flags, message):
    result = fairseq("train", toy_data, *PLUGIN_FLAGS, *TINY_MODEL, *TRAINING, *flags, "--save-dir", tmp_path,
                     check=False)  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
