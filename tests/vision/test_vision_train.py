"""vision/train.py end to end on tiny CIFAR-format data: runs finish, log, checkpoint, and resume exactly;
BatchNorm statistics move only with the clean pass; bad input stops the run with a message naming the option."""

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import vision_testing
from safetensors.torch import load_file

from vision import train
from vision.config import ConfigError, parse_config
from vision.data import DataError

RESNET = ["--width", "4", "--lr", "0.05"]
VIT = [
    "--model",
    "vit_s16",
    "--width",
    "16",
    "--vit_depth",
    "1",
    "--vit_heads",
    "2",
    "--patch_size",
    "8",
    "--image_size",
    "32",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
]
RUNS = {  # id -> method and model flags
    "sam-resnet18": ["--method", "sam", "--model", "resnet18", *RESNET],
    "lets_sam-resnet18": ["--method", "lets_sam", "--model", "resnet18", *RESNET],
    "lets_asam-resnet18": ["--method", "lets_asam", "--model", "resnet18", *RESNET],
    "sam-vit": ["--method", "sam", *VIT],
    "lets_sam-vit": ["--method", "lets_sam", *VIT],
    "lets_asam-vit": ["--method", "lets_asam", *VIT],
    "lets_looksam-resnet18": ["--method", "lets_looksam", "--looksam_k", "2", "--model", "resnet18", *RESNET],
    "lets_esam-sds-resnet18": ["--method", "lets_esam", "--esam_gamma", "0.5", "--model", "resnet18", *RESNET],
    # over SGD (RESNET's optimizer) auto is robust_next: the validation term from the next batch, a warm-up
    "lets_sam-auto-resnet18": ["--method", "lets_sam", "--lets_preset", "auto", "--model", "resnet18", *RESNET],
    "lets_sam-robust-next-resnet18": [
        "--method",
        "lets_sam",
        "--lets_preset",
        "robust",
        "--lets_train_term",
        "next",
        "--lets_objective",
        "gap2",
        "--model",
        "resnet18",
        *RESNET,
    ],
}


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return vision_testing.write_cifar10(tmp_path_factory.mktemp("cifar"), n_train=80, n_test=32)


def run(data_dir, out, flags, *extra):
    return train.main(
        [
            "--data_dir",
            str(data_dir),
            "--output_dir",
            str(out),
            "--epochs",
            "2",
            "--batch_size",
            "32",
            "--train_eval_size",
            "32",
            "--rho_lr",
            "1e-2",
            *flags,
            *extra,
        ]
    )


@pytest.mark.parametrize("name", list(RUNS))
def test_run_finishes_logs_checkpoints_and_resumes_exactly(name, data_dir, tmp_path, monkeypatch):
    flags = RUNS[name]
    full = run(data_dir, tmp_path / "full", flags)
    records = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and [r["step"] for r in records] == [2, 4]
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("train_loss", "test_loss", "test_acc", "train_eval_loss"))
        assert r["gap"] == pytest.approx(r["test_loss"] - r["train_eval_loss"])
    assert records[0]["lr"] == (1e-3 if "vit" in name else 0.05)
    assert records[1]["lr"] == pytest.approx(records[0]["lr"] / 2)  # cosine, per step: halfway at epoch 2's start
    rho0 = 0.5 if "asam" in name else 0.05
    if name.startswith("lets"):  # rho moved, by at most ~lr per step in log space
        assert records[-1]["rho"] != rho0 and abs(math.log(full["final_rho"] / rho0)) < 4 * 1e-2 * 3.2
        assert (records[-1]["lets_gap"] is None) == ("auto" in name)  # auto's val objective forms no gap
    else:
        assert full["final_rho"] == rho0 and records[-1]["lets_gap"] is None
    assert json.loads((tmp_path / "full" / "results.json").read_text())["final_test_acc"] == records[-1]["test_acc"]
    assert sorted(d.name for d in (tmp_path / "full" / "checkpoints").iterdir()) == ["epoch_0001", "epoch_0002"]

    save = train._save

    def save_then_stop(training):
        save(training)
        raise Interrupted

    monkeypatch.setattr(train, "_save", save_then_stop)
    with pytest.raises(Interrupted):
        run(data_dir, tmp_path / "resumed", flags)
    monkeypatch.setattr(train, "_save", save)
    resumed = run(data_dir, tmp_path / "resumed", flags, "--resume")

    weights = load_file(str(tmp_path / "full" / "model.safetensors"))
    resumed_weights = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert weights.keys() == resumed_weights.keys()
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)
    assert resumed["final_rho"] == full["final_rho"]
    optimizer_states = [
        torch.load(tmp_path / d / "checkpoints" / "epoch_0002" / "run_state.pt", weights_only=True)["optimizer"]
        for d in ("full", "resumed")
    ]
    if name.startswith("lets"):
        radius, resumed_radius = (state["lets"]["radius"] for state in optimizer_states)
        assert radius.keys() == resumed_radius.keys()
        assert all(torch.equal(torch.as_tensor(radius[k]), torch.as_tensor(resumed_radius[k])) for k in radius)
    strip = lambda r: {k: v for k, v in r.items() if k != "epoch_time_s"}
    resumed_records = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [strip(r) for r in resumed_records] == [strip(r) for r in records]


def test_erm_trains_with_the_base_optimizer(data_dir, tmp_path):
    result = run(data_dir, tmp_path, ["--method", "erm", "--model", "resnet32", *RESNET, "--epochs", "1"])
    assert result["final_rho"] is None and math.isfinite(result["final"]["train_loss"])
    with pytest.raises(ConfigError, match="--output_dir .* pass --resume"):  # never overwrite a run silently
        run(data_dir, tmp_path, ["--method", "erm", "--model", "resnet32", *RESNET, "--epochs", "1"])


def test_batchnorm_statistics_move_only_with_the_clean_pass(data_dir):
    config = parse_config(
        [
            "--data_dir",
            str(data_dir),
            "--method",
            "lets_sam",
            "--model",
            "resnet18",
            "--width",
            "4",
            "--rho",
            "0.5",
            "--lets_hvp",
            "exact",
        ]
    )
    torch.manual_seed(0)
    model = train.build_model("resnet18", 10, width=4)
    reference = copy.deepcopy(model)
    optimizer = train.build_optimizer(config, model, total_steps=10)
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    val = iter([(torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,)))])
    stepper = train.Stepper(model, optimizer, train.Accelerator(), val)
    stepper(images, labels)
    reference.train()
    reference(images)  # one clean forward pass at theta_t
    buffers, expected = dict(model.named_buffers()), dict(reference.named_buffers())
    assert optimizer.radius.updates == 1 and any(
        not torch.equal(p, q) for p, q in zip(model.parameters(), reference.parameters())
    )
    assert all(torch.equal(buffers[k], expected[k]) for k in expected)
    assert int(buffers["stem.0.1.num_batches_tracked"]) == 1


def test_label_noise_reaches_the_training_set_only(data_dir):
    clean = train.load_data(parse_config(["--data_dir", str(data_dir)]))
    noisy = train.load_data(parse_config(["--data_dir", str(data_dir), "--label_noise", "0.25", "--seed", "1"]))
    assert int((noisy.train.labels != clean.train.labels).sum()) == 20
    assert torch.equal(noisy.test.labels, clean.test.labels)


@pytest.mark.parametrize(
    "flags, option",
    [
        (["--model", "resnet1000"], "--model"),
        (["--method", "gsam2"], "--method"),
        (["--dataset", "svhn"], "--dataset"),
        (["--label_noise", "1.0"], "--label_noise"),
        (["--label_noise", "-0.2"], "--label_noise"),
        (["--mixed_precision", "fp16"], "--mixed_precision"),
        (["--epochs", "0"], "--epochs"),
        (["--lets_objective", "gap3"], "--lets_objective"),
        (["--method", "lets_sam", "--optimizer", "sgd", "--lets_descent", "adam"], "--lets_descent"),
        (
            ["--method", "lets_sam", "--optimizer", "adam", "--weight_decay", "5e-4", "--lets_descent", "adam"],
            "--lets_descent",
        ),
    ],
)
def test_bad_options_stop_with_a_message_naming_them(flags, option, capsys):
    with pytest.raises(SystemExit):
        parse_config(flags)
    assert f"argument {option}" in capsys.readouterr().err


def test_bad_data_folder_stops_before_training(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DataError, match="--data_dir"):
        train.main(["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_the_script_reports_bad_data_as_a_one_line_error(tmp_path):
    script = vision_testing.ROOT / "vision" / "train.py"
    done = subprocess.run(
        [sys.executable, str(script), "--data_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: --data_dir: expected the CIFAR file")
