"""FSDP2 (``fully_shard``) on two CPU processes (gloo): SAM-family steps equal one process on the whole batch.

The worker (tests/fsdp_worker.py) shards a float64 MLP whose 7-row layers split unevenly (4 + 3) and
compares every scenario with the same steps unsharded on the whole batch; a norm taken over the local
shards only (what sharding-unaware code computes) is the negative control.
"""
import json
import os
import subprocess
import sys

import pytest

from lets_testing import ROOT, free_port

SCENARIOS = ("sam", "asam", "gsam", "looksam", "esam", "ae_sam", "rst", "lets_sam_fd", "lets_sam_diag",
             "lets_asam_adam")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(ROOT / "tests" / "fsdp_worker.py"), str(out)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
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
