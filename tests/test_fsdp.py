"""FSDP2 (``fully_shard``) on two CPU processes (gloo): SAM-family steps equal one process on the whole batch.

tests/fsdp_worker.py (the plain API) shards a float64 MLP whose 7-row layers split unevenly (4 + 3) and
compares every scenario with the same steps unsharded on the whole batch; a norm taken over the local
shards only (what sharding-unaware code computes) is the negative control. tests/fsdp_trainer_worker.py runs
LETSTrainer under FSDP2 (accelerate forced to FSDP on CPU, see its force_fsdp_on_cpu) with gradient accumulation
and a sharded checkpoint, against one process on the whole batch and an uninterrupted run.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from lets_testing import ROOT, free_port, token_dataset
from trainer_helpers import SequentialLETSTrainer, lets_args, preset_overrides

from lets_hf.radius import PRESETS

SCENARIOS = (
    "sam",
    "asam",
    "gsam",
    "looksam",
    "esam",
    "ae_sam",
    "rst",
    "lets_sam_fd",
    "lets_sam_diag",
    "lets_asam_adam",
)


def _launch(worker, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(ROOT / "tests" / worker),
        *map(str, args),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    _launch("fsdp_worker.py", out)
    return [json.loads((out / f"fsdp-{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sharded_steps_equal_one_process(results, scenario):
    assert results[0][scenario]["weights"] < 1e-10
    assert results[0][scenario]["rho"] < 1e-10


@pytest.mark.parametrize("scenario", ("lets_sam_fd", "lets_sam_diag", "lets_asam_adam"))
def test_learned_rho_moves_and_is_identical_on_every_rank(results, scenario):
    rhos = results[0][scenario]["rhos"]
    assert rhos == results[1][scenario]["rhos"]
    assert abs(rhos[-1] - rhos[0]) > 1e-3


def test_a_rank_local_norm_is_caught(results):
    assert results[0]["sam_rank_local_norm"]["weights"] > 1e-6


def test_exact_hvp_is_refused_on_sharded_weights(results):
    assert "finite_difference" in results[0]["exact_hvp_error"]


def test_bf16_mixed_precision_policy_keeps_float32_shards_and_an_exact_restore(results):
    bf16 = results[0]["bf16"]
    assert bf16["restore_exact"] and bf16["dtypes"] == ["torch.float32"]
    assert 0 < bf16["from_float32"] < 1e-2  # bf16 compute did happen, and the steps stay close to float32's


def _one_process(tmp_path, settings):
    """LETSTrainer in this process on the whole batch (8 = 2 ranks x 4) with the worker's settings."""
    from fsdp_trainer_worker import float64_deberta

    single = SequentialLETSTrainer(
        model=float64_deberta(),
        train_dataset=token_dataset(64),
        args=lets_args(tmp_path, optim="lets_sam", per_device_train_batch_size=8, lets_val_batch_size=8, **settings),
    )
    single.train()
    rhos = [row["rho"] for row in single.state.log_history if "rho" in row]
    return torch.cat([p.detach().flatten() for p in single.model.parameters()]), rhos


def test_trainer_under_fsdp2_equals_one_process_and_resumes_exactly(tmp_path):
    from fsdp_trainer_worker import ADAMW_ARGS, SGD_ARGS

    _launch("fsdp_trainer_worker.py", tmp_path, "lets_sam")
    results = [json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)]
    weights = [torch.load(tmp_path / f"weights-{rank}.pt") for rank in (0, 1)]
    assert results[0]["world_size"] == 2
    for run in ("adamw", "resumed", "sgd"):
        assert results[0][run] == results[1][run] and torch.equal(weights[0][run], weights[1][run])
    assert torch.equal(weights[0]["resumed"], weights[0]["adamw"])  # resumed from the sharded checkpoint-2
    assert results[0]["resumed"][-1] == results[0]["adamw"][-1]
    assert sorted(results[0]["presets"]) == sorted(PRESETS)  # every preset trains under FSDP2, rho alike on each rank
    for name, rhos in results[0]["presets"].items():
        assert rhos == results[1]["presets"][name] and len(rhos) == 3 and rhos[-1] != 0.1, name  # moved from rho_0
    for run, settings, tolerance in (("sgd", SGD_ARGS, 1e-10), ("adamw", ADAMW_ARGS, 1e-10)):
        expected, rhos = _one_process(tmp_path / run, settings)
        assert abs(rhos[-1] - rhos[0]) > 1e-3
        assert max(abs(a - b) for a, b in zip(results[0][run], rhos)) < 1e-10
        assert float((weights[0][run] - expected).abs().max()) < tolerance, run


def _backend(tmp_path, deepspeed=False, fsdp_version=None, **overrides):
    """What parallel.check_backend reads of a trainer: its arguments and accelerate's FSDP plugin."""
    from types import SimpleNamespace

    plugin = SimpleNamespace(fsdp_version=fsdp_version)
    return SimpleNamespace(
        args=lets_args(tmp_path, **overrides),
        is_deepspeed_enabled=deepspeed,
        is_fsdp_enabled=fsdp_version is not None,
        accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)),
    )


@pytest.mark.parametrize(
    "backend, message",
    [
        (dict(deepspeed=True), "FSDP2 instead"),
        (dict(fsdp_version=1), "FSDP version 2"),
        (dict(fsdp_version=2, lets_ascent="per_worker"), "lets_ascent='per_worker'"),
        (dict(fsdp_version=2, lets_hvp="exact"), "lets_hvp='exact'"),
    ],
)
def test_what_sam_cannot_run_on_is_refused_before_training(tmp_path, backend, message):
    from lets_hf.parallel import check_backend

    with pytest.raises(ValueError, match=message):
        check_backend(_backend(tmp_path, **backend))
    check_backend(_backend(tmp_path, fsdp_version=2))  # FSDP2 with the defaults runs


def test_lets_ascent_names_what_is_allowed(tmp_path):
    with pytest.raises(ValueError, match="lets_ascent must be one of"):
        lets_args(tmp_path, lets_ascent="everywhere")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_accepted_under_fsdp2(tmp_path, preset):
    """The presets with a horizon (rho's rate from the run's length) included, whose length is not known yet."""
    from lets_hf.parallel import check_backend

    check_backend(_backend(tmp_path, fsdp_version=2, max_steps=-1, **preset_overrides(preset)))
