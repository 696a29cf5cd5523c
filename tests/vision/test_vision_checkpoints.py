"""Checkpoints hold no code: the loop's state is tensors and plain values read with weights_only=True, and a
planted pickle in a checkpoint folder is refused before anything is read."""

import pickle
import shutil

import pytest
import torch
import vision_testing
from vision_testing import Payload

from vision import train
from vision.checkpoints import RUN_STATE, latest_checkpoint, load_run_state
from vision.config import ConfigError

FLAGS = [
    "--method",
    "lets_sam",
    "--model",
    "resnet18",
    "--width",
    "4",
    "--lr",
    "0.05",
    "--epochs",
    "1",
    "--batch_size",
    "32",
    "--train_eval_size",
    "32",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    data_dir = vision_testing.write_cifar10(tmp_path_factory.mktemp("cifar"), n_train=80, n_test=32)
    out = tmp_path_factory.mktemp("run")
    train.main(["--data_dir", str(data_dir), "--output_dir", str(out), *FLAGS])
    return data_dir, out


def test_the_loop_state_is_tensors_and_plain_values(finished_run):
    _, out = finished_run
    checkpoint = latest_checkpoint(out)
    assert sorted(p.name for p in checkpoint.glob("*.pkl")) == ["random_states_0.pkl"]  # accelerate's RNG states
    state = torch.load(checkpoint / RUN_STATE, weights_only=True)
    assert sorted(state) == ["optimizer", "run", "scheduler", "validation"]
    assert state["run"] == {"epoch": 1, "step": 2} and state["validation"] == {"drawn": 2}
    assert state["optimizer"]["lets"]["radius"]["updates"] == 2


@pytest.mark.parametrize("planted", ["custom_checkpoint_0.pkl", "custom_checkpoint_3.pkl"])
def test_a_planted_pickle_in_a_checkpoint_does_not_run(finished_run, tmp_path, planted):
    data_dir, out = finished_run
    marker = tmp_path / "payload_ran"
    (latest_checkpoint(out) / planted).write_bytes(pickle.dumps(Payload(marker)))
    try:
        with pytest.raises(ConfigError, match=rf"{planted} is a pickled object, which can run code .* not loaded"):
            train.main(["--data_dir", str(data_dir), "--output_dir", str(out), *FLAGS, "--epochs", "2", "--resume"])
    finally:
        (out / "checkpoints" / "epoch_0001" / planted).unlink()
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload is real: unpickled, it runs
    assert marker.exists()


@pytest.mark.parametrize("damage", [None, b"not a pickle", "removed"])
def test_a_resume_without_the_rng_states_says_it_will_not_match(finished_run, tmp_path, capsys, damage):
    """accelerate's load_state only logs "Could not load random states" at info level when random_states_0.pkl
    is damaged or missing, and the run goes on from other RNG states; the script warns on stderr."""
    data_dir, finished = finished_run
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    states = latest_checkpoint(out) / "random_states_0.pkl"
    if damage == "removed":
        states.unlink()
    elif damage is not None:
        states.write_bytes(damage)
    train.main(["--data_dir", str(data_dir), "--output_dir", str(out), *FLAGS, "--epochs", "2", "--resume"])
    warned = "warning: process 0 resumes without the random number generator states" in capsys.readouterr().err
    assert warned == (damage is not None)


def test_a_run_state_holding_code_is_refused(tmp_path):
    marker = tmp_path / "payload_ran"
    torch.save({"run": Payload(marker)}, tmp_path / RUN_STATE)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_run_state(tmp_path, {"run": train.RunState()})
    assert not marker.exists()


def test_a_run_state_from_other_options_is_refused(tmp_path):
    torch.save({"run": {"epoch": 1, "step": 2}}, tmp_path / RUN_STATE)
    with pytest.raises(ConfigError, match=r"holds the states \['run'\], this run has \['optimizer', 'run'\]"):
        load_run_state(tmp_path, {"run": train.RunState(), "optimizer": None})
