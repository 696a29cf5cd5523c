"""Two CPU processes (gloo): every rank ends with the same rho and weights; losses are not scaled by the world size."""

import json
import os
import subprocess
import sys

import pytest
import torch
from lets_testing import ROOT, free_port, tiny_deberta, token_dataset
from trainer_helpers import SequentialLETSTrainer, lets_args

from lets_hf.plots import radius_trajectory

WORKER = str(ROOT / "tests" / "ddp_worker.py")
LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port"],
    "accelerate": [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
    ],
}


def _launch(launcher, out, optim, *worker_args):
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true", PYTHONPATH=str(ROOT))
    command = LAUNCHERS[launcher] + [str(free_port()), WORKER, str(out), optim, *worker_args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads((out / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    weights = [torch.load(out / f"weights-{rank}.pt") for rank in (0, 1)]
    return results, weights


@pytest.mark.parametrize(
    "launcher, optim", [("torchrun", "lets_sam"), ("accelerate", "lets_asam"), ("torchrun", "lets_ae_looksam")]
)
def test_ranks_hold_the_same_rho_and_weights(tmp_path, launcher, optim):
    results, weights = _launch(launcher, tmp_path, optim)
    assert results[0]["world_size"] == results[1]["world_size"] == 2
    assert results[0]["rho"] == results[1]["rho"] and len(results[0]["rho"]) == 4  # the initial rho, 3 steps
    assert results[0]["rho"][-1] != pytest.approx(0.1, rel=1e-3)
    assert torch.equal(weights[0], weights[1])


def test_a_nonfinite_ascent_gradient_on_one_rank_skips_the_ascent_on_every_rank(tmp_path):
    """One decision for all ranks (else one would run descent passes the other does not: a hang): rank 0's
    gradient is finite, yet both take the stock step on the averaged (NaN) gradient, and stay identical."""
    results, weights = _launch("torchrun", tmp_path, "lets_sam", "rank1")
    assert results[0]["skipped_ascents"] == results[1]["skipped_ascents"] == 3  # the stock step spread the NaN
    assert results[0]["rho"] == results[1]["rho"] and results[0]["rho"][-1] == pytest.approx(0.1, rel=1e-12)
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0, equal_nan=True)


def test_step_with_a_closure_under_ddp_is_the_loop_in_parts(tmp_path):
    """``LETSOptimizer.step(closure, model=ddp)``: its no_sync passes are the hand-written loop's, bit for bit, and
    the ranks (on different rows) end with one rho and the same weights."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = LAUNCHERS["torchrun"] + [str(free_port()), WORKER, str(tmp_path), "plain"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ends = [torch.load(tmp_path / f"plain-{rank}.pt") for rank in (0, 1)]
    for rank in ends:
        assert torch.equal(rank["closure"]["weights"], rank["parts"]["weights"])
        assert rank["closure"]["rho"] == rank["parts"]["rho"] != pytest.approx(0.1, rel=1e-3)
    assert torch.equal(ends[0]["closure"]["weights"], ends[1]["closure"]["weights"])
    assert ends[0]["closure"]["rho"] == ends[1]["closure"]["rho"]


def test_ddp_erm_equals_one_process_on_the_whole_batch(tmp_path):
    """With average_tokens_across_devices=False (the scripts' setting), a model that ignores num_items_in_batch is
    not scaled by the world size (Trainer's default doubles it on 2 processes)."""
    _, weights = _launch("torchrun", tmp_path, "sgd")
    single = SequentialLETSTrainer(
        model=tiny_deberta(),
        train_dataset=token_dataset(64),
        args=lets_args(tmp_path / "single", optim="sgd", per_device_train_batch_size=8, max_steps=3),
    )
    single.train()
    expected = torch.cat([p.detach().flatten() for p in single.model.parameters()])
    torch.testing.assert_close(weights[0], expected, rtol=1e-5, atol=1e-6)


def test_global_ascent_under_ddp_equals_one_process_on_the_whole_batch(tmp_path):
    """--lets_ascent global: the ascent and hyper-step passes synced, so 2 x 4 take the step of 1 x 8 (float32)."""
    results, weights = _launch("torchrun", tmp_path, "lets_sam", "", "global")
    single = SequentialLETSTrainer(
        model=tiny_deberta(),
        train_dataset=token_dataset(64),
        args=lets_args(tmp_path / "single", per_device_train_batch_size=8, max_steps=3),
    )
    single.train()
    expected = torch.cat([p.detach().flatten() for p in single.model.parameters()])
    torch.testing.assert_close(weights[0], expected, rtol=1e-5, atol=1e-6)
    rhos = radius_trajectory(single.state.log_history)["rho"]
    assert results[0]["rho"] == pytest.approx(rhos, rel=1e-5) and rhos[-1] != pytest.approx(rhos[0], rel=1e-3)
