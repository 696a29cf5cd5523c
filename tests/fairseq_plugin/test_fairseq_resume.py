"""fairseq-train with the plugin: a run resumed from its checkpoint ends as the uninterrupted one, and the same
command gives the same run (``--seed``), bit for bit on a CPU: weights, rho and its Adam state, the base Adam's
moments and the step counters, all inside fairseq's ``checkpoint_last.pt``."""

import pytest
import torch
from conftest import LETS_SAM, NEEDS_FAIRSEQ, TINY_MODEL, TRAINING, fairseq

from lets_hf.saved_state import split_state_dict

pytest.importorskip("fairseq", reason=NEEDS_FAIRSEQ)

# 8 updates of two micro-batches of at most 60 tokens (about 6 updates per pass over the toy corpus)
RUN = [*TINY_MODEL, *TRAINING, *LETS_SAM, "--max-tokens", "60", "--update-freq", "2", "--max-update", "8",
       "--no-epoch-checkpoints", "--save-interval-updates", "3", "--keep-interval-updates", "5"]  # fmt: skip


def train(data, save_dir, *flags):
    fairseq("train", data, "--user-dir", "translation/fairseq_lets", *RUN, "--save-dir", save_dir, *flags)
    return torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)


def assert_same_run(a, b):
    assert a["optimizer_history"][-1]["num_updates"] == b["optimizer_history"][-1]["num_updates"] == 8
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    (base_a, lets_a), (base_b, lets_b) = (split_state_dict(s["last_optimizer_state"]) for s in (a, b))
    assert lets_a["steps"] == lets_b["steps"] == 8
    for key, value in lets_a["radius"].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(lets_b["radius"][key])), key
    for index, moments in base_a["state"].items():
        for key, value in moments.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(base_b["state"][index][key]))


@pytest.fixture(scope="module")
def uninterrupted(toy_data, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("uninterrupted")
    return save_dir, train(toy_data, save_dir)


def test_a_resumed_run_ends_as_the_uninterrupted_one(toy_data, uninterrupted, tmp_path):
    save_dir, whole = uninterrupted
    (halfway,) = save_dir.glob("checkpoint_*_3.pt")  # saved mid-epoch, at update 3
    state = torch.load(halfway, map_location="cpu", weights_only=False)
    _, lets = split_state_dict(state["last_optimizer_state"])  # the base Adam's state dict with LETS's entry
    assert lets["steps"] == 3 and float(lets["radius"]["log_rho"].exp()) != pytest.approx(0.05, abs=1e-4)
    resumed = train(toy_data, tmp_path, "--restore-file", halfway)
    assert_same_run(whole, resumed)


def test_the_same_command_gives_the_same_run(toy_data, uninterrupted, tmp_path):
    assert_same_run(uninterrupted[1], train(toy_data, tmp_path))
