"""A first run of vision/train.py without any download: --dataset synthetic, a one-line error where --download
has no network, the same command giving the same run, and a run killed (SIGKILL) after a checkpoint that resumes
to the uninterrupted run's end, all from the command line."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import vision_testing

from vision import synthetic
from vision.data import DataError, load_dataset

SCRIPT = vision_testing.ROOT / "vision" / "train.py"
KILLER = vision_testing.ROOT / "tests" / "sigkill_after.py"
SMOKE = [
    "--dataset",
    "synthetic",
    "--model",
    "resnet18",
    "--width",
    "4",
    "--lr",
    "0.05",
    "--method",
    "lets_sam",
    "--rho_lr",
    "1e-2",
    "--epochs",
    "2",
    "--batch_size",
    "64",
    "--max_steps_per_epoch",
    "3",
    "--train_eval_size",
    "64",
]


def run_script(*args, prefix=(), env=None):
    """``python vision/train.py ARGS`` (or under ``prefix``, e.g. the SIGKILL wrapper), one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(vision_testing.ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, *map(str, prefix), str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_synthetic_data_is_fixed_cifar_shaped_and_labelled_by_its_band():
    data = load_dataset("synthetic", "no/such/folder")
    assert (len(data.train), len(data.test), data.num_classes) == (synthetic.TRAIN_IMAGES, synthetic.TEST_IMAGES, 10)
    images, labels = data.train.images, data.train.labels
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32) and data.augment_on_device
    assert set(labels.tolist()) == set(range(10))
    for image, label in zip(images[:50], labels[:50].tolist()):  # the class's band: 255, everything else < 200
        bright = (image == 255).nonzero()
        assert set(bright[:, 0].tolist()) == {label % 3} and set(bright[:, 1].tolist()) == {
            3 * label,
            3 * label + 1,
            3 * label + 2,
        }
    again = load_dataset("synthetic", "elsewhere")
    assert torch.equal(again.train.images, images) and torch.equal(again.test.labels, data.test.labels)
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1).double() / 255
    assert data.mean == pytest.approx(pixels.mean(1).tolist()) and data.std == pytest.approx(pixels.std(1).tolist())


def test_download_without_a_network_is_one_line(tmp_path):
    """urllib goes through the proxy of the environment: one on a closed local port is a network that fails."""
    proxy = "http://127.0.0.1:9"
    done = run_script(
        "--data_dir",
        tmp_path / "data",
        "--download",
        "--output_dir",
        tmp_path / "run",
        env={"https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""},
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: --download: could not fetch https://www.cs.toronto.edu/~kriz/cifar-10-")
    assert "--dataset synthetic" in done.stderr
    assert not (tmp_path / "data" / "cifar-10-python.tar.gz").exists() and not (tmp_path / "run").exists()


def test_an_unreachable_url_is_a_data_error(tmp_path, monkeypatch):
    from vision import data

    def no_network(url, path):
        raise data.urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data.urllib.request, "urlretrieve", no_network)
    with pytest.raises(
        DataError,
        match=r"^--download: could not fetch https://\S+cifar-100-python.tar.gz "
        r"\(\[Errno -3\] Temporary failure in name resolution\)",
    ):
        load_dataset("cifar100", tmp_path, download=True)


def outcome(output_dir):
    """(results.json and log.jsonl without wall times, the final weights' bytes)."""
    results = json.loads((output_dir / "results.json").read_text())
    results.pop("train_time_s")
    results["final"].pop("epoch_time_s")
    log = [
        {k: v for k, v in json.loads(line).items() if k != "epoch_time_s"}
        for line in (output_dir / "log.jsonl").read_text().splitlines()
    ]
    results["config"].pop("output_dir")
    return results, log, (output_dir / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    """(the output folder, the script's stdout) of the smoke run."""
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    done = run_script(*SMOKE, "--output_dir", output_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return output_dir, done.stdout


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run):
    return outcome(uninterrupted_run[0])


def test_the_run_ends_by_drawing_rho_from_rho_0(uninterrupted_run):
    output_dir, stdout = uninterrupted_run
    final_rho = json.loads((output_dir / "results.json").read_text())["final_rho"]
    assert f"rho 0.05 -> {final_rho:.5g}; wrote {output_dir / 'rho.png'}" in stdout
    assert (output_dir / "rho.png").read_bytes().startswith(b"\x89PNG")


def test_the_rho_figure_starts_at_rho_0_on_an_axis_spanning_a_factor_2(tmp_path, monkeypatch):
    import matplotlib.axes

    from vision.train import plot_rho

    drawn, limits = [], []
    plot, set_ylim = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.set_ylim
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda axis, *a, **k: drawn.append(a) or plot(axis, *a, **k))
    monkeypatch.setattr(  # the limits that the figure sets (two numbers), not those matplotlib derives from them
        matplotlib.axes.Axes,
        "set_ylim",
        lambda axis, *a, **k: (limits.append(a) if len(a) == 2 else None) or set_ylim(axis, *a, **k),
    )
    records = [{"step": 20 * e, "rho": rho, "lets_gap": 0.01} for e, rho in ((1, 0.05074), (2, 0.05072), (3, 0.05069))]
    plot_rho(records, 0.05, tmp_path / "rho.png", "lets_sam")
    steps, rhos = drawn[0]
    assert list(steps) == [0, 20, 40, 60] and list(rhos) == [0.05, 0.05074, 0.05072, 0.05069]
    (low, high), centre = limits[0], (0.05 * 0.05074) ** 0.5
    assert high / low == pytest.approx(2.0) and (low * high) ** 0.5 == pytest.approx(centre)
    assert (tmp_path / "rho.png").stat().st_size > 0


def test_the_progress_bar_shows_loss_and_rho_of_every_step_of_a_short_epoch(monkeypatch, tmp_path):
    import vision.train

    shown = []
    original = vision.train.tqdm.set_postfix
    monkeypatch.setattr(vision.train.tqdm, "set_postfix", lambda bar, **k: shown.append(k) or original(bar, **k))
    done = vision.train.main([*SMOKE, "--epochs", "1", "--output_dir", str(tmp_path)])
    assert len(shown) == 3 and all(set(k) >= {"loss", "rho"} for k in shown)
    assert shown[-1]["rho"] == done["final_rho"]


def test_a_smoke_run_on_synthetic_data_moves_rho_and_records_its_precision(uninterrupted):
    results, log, _ = uninterrupted
    assert results["config"]["dataset"] == "synthetic" and results["precision"] == "fp32"
    assert [r["step"] for r in log] == [3, 6] and log[-1]["rho"] == results["final_rho"] != 0.05


def test_the_same_command_gives_the_same_run(uninterrupted, tmp_path):
    done = run_script(*SMOKE, "--output_dir", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome(tmp_path) == uninterrupted


def test_a_killed_run_resumed_equals_the_uninterrupted_run(uninterrupted, tmp_path):
    """Killed once the first checkpoint is complete (the last thing _save does is to prune older ones)."""
    killed = run_script(*SMOKE, "--output_dir", tmp_path, prefix=(KILLER, "vision.checkpoints:prune_checkpoints", 1))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert [d.name for d in (tmp_path / "checkpoints").iterdir()] == ["epoch_0001"]
    assert not (tmp_path / "results.json").exists()
    resumed = run_script(*SMOKE, "--output_dir", tmp_path, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "epoch_0001" in resumed.stdout
    results, log, weights = outcome(tmp_path)
    assert weights == uninterrupted[2]
    assert results["final_rho"] == uninterrupted[0]["final_rho"]
    results["config"].pop("resume")
    expected = dict(uninterrupted[0], config={k: v for k, v in uninterrupted[0]["config"].items() if k != "resume"})
    assert (results, log) == (expected, uninterrupted[1])


def test_an_option_the_method_ignores_is_named_in_a_warning():
    import warnings

    from vision.config import parse_config

    with pytest.warns(UserWarning) as caught:
        parse_config(["--method", "sam", "--rho_lr", "1e-2", "--asam_xi", "0.1"])
    assert [str(w.message).splitlines() for w in caught] == [
        [
            "--method sam (a fixed rho) ignores these options:",
            "  --rho_lr 0.01: read by lets_* (a learned radius)",
            "  --asam_xi 0.1: read by asam, lets_asam",
        ]
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_config(["--method", "lets_asam", "--rho_lr", "1e-2", "--asam_xi", "0.1"])
