"""One rank of tests/test_collectives.py: rank 0 alone steps a LETSOptimizer on a rank-local model (a probe, say)
while rank 1 waits at a barrier; saves what rank 0 ended with.

Run under ``torch.distributed.run`` with 2 processes (gloo); a collective taken for the rank-local model would
pair with rank 1's barrier or wait for it forever: the process group's timeout turns that into an error.
"""

import datetime
import json
import os
import pathlib
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from lets_testing import leave_process_group, tiny_batches, tiny_mlp  # noqa: E402

from lets_hf import LETSOptimizer, LETSRadius  # noqa: E402


def main(out: str) -> None:
    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))
    rank = torch.distributed.get_rank()
    if rank == 0:
        loss_fn = torch.nn.functional.cross_entropy
        model = tiny_mlp(dtype=torch.float32)
        optimizer = LETSOptimizer(
            model.parameters(),
            torch.optim.SGD,
            lr=0.1,
            perturbation="ae_sam",  # its policy's decision averaged the gradient norm over ranks
            radius=LETSRadius(rho=0.1, lr=0.2, hvp="finite_difference"),  # g averaged over ranks, and h
        )
        for step in range(3):
            (x, y), (xv, yv) = tiny_batches(step, dtype=torch.float32), tiny_batches(50 + step, dtype=torch.float32)
            optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv), model=model)
        result = {"steps": optimizer.steps, "rho": optimizer.rho, "distributed": optimizer.distributed}
        (pathlib.Path(out) / "rank0.json").write_text(json.dumps(result))
    leave_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
