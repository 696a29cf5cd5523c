"""No hidden collectives: a LETSOptimizer takes them for a distributed model only (lets_hf.distributed)."""

import json
import os
import subprocess
import sys

import torch
from lets_testing import ROOT, free_port, tiny_batches, tiny_mlp

from lets_hf import LETSOptimizer, LETSRadius

WORKER = str(ROOT / "tests" / "rank_local_worker.py")


def test_a_rank_local_optimizer_stepped_on_one_rank_does_not_wait_for_the_others(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port"]
    proc = subprocess.run(
        command + [str(free_port()), WORKER, str(tmp_path)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "rank0.json").read_text())
    assert result["steps"] == 3 and result["rho"] != 0.1 and result["distributed"] is False


def test_the_optimizer_is_distributed_where_it_is_told_or_its_parameters_are_sharded():
    model = tiny_mlp(dtype=torch.float32)
    local = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=0.1))
    told = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=0.1, distributed=True)
    assert (local.distributed, local.ranks.synchronized) == (False, False)
    assert (told.distributed, told.ranks.synchronized) == (True, True)
    (x, y), (xv, yv) = tiny_batches(0, dtype=torch.float32), tiny_batches(1, dtype=torch.float32)
    loss_fn = torch.nn.functional.cross_entropy
    local.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv), model=model)
    assert not local.distributed  # a plain module given to step(model=) is no distributed one
