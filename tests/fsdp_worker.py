"""One rank of the 2-process FSDP2 tests of the plain API (run by tests/test_fsdp.py under ``torch.distributed.run``).

Each scenario trains ``fully_shard``-ed copies of a tiny float64 MLP (7 hidden units: uneven shards, 4 + 3 rows)
for a few SAM / ASAM / LETS steps, each rank on its half of every batch, and the same model unsharded on the
whole batch in this process; rank 0 writes the largest difference of the weights and of rho, and every rank
its rho trajectory.
"""

import json
import os
import pathlib
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

sys.path.insert(0, os.path.dirname(__file__))
from lets_testing import leave_process_group, tiny_batches, tiny_mlp  # noqa: E402

from lets_hf import LETSOptimizer, LETSRadius, foreach, get_perturbation  # noqa: E402

STEPS = 3
SCENARIOS = {
    "sam": dict(perturbation="sam", radius=0.05),
    "asam": dict(perturbation="asam", radius=0.5),
    "gsam": dict(perturbation="gsam", radius=0.05),
    "lets_sam_fd": dict(perturbation="sam", hvp="finite_difference"),
    "lets_sam_diag": dict(perturbation="sam", hvp="diag"),
    "looksam": dict(perturbation=("looksam", dict(k=2)), radius=0.05),
    "esam": dict(perturbation="esam", radius=0.05),
    "ae_sam": dict(perturbation=("ae_sam", dict(lambda1=-1.0, lambda2=1.0, total_steps=STEPS)), radius=0.05),
    "rst": dict(perturbation="rst", radius=0.05),
    "lets_asam_adam": dict(perturbation="asam", hvp="finite_difference", descent="adam"),
}


def build(model, scenario):
    settings = dict(SCENARIOS[scenario])
    if isinstance(settings["perturbation"], tuple):  # a rule with options (and state): one per optimizer
        name, options = settings["perturbation"]
        settings["perturbation"] = get_perturbation(name, **options)
    if "hvp" in settings:  # a learned radius; rho_lr large enough that rho moves visibly in 3 steps
        settings["radius"] = LETSRadius(
            rho=0.1, lr=0.2, hvp=settings.pop("hvp"), objective="gap2", descent=settings.pop("descent", "sgd")
        )
    base = torch.optim.AdamW if "adam" in scenario or scenario == "asam" else torch.optim.SGD
    return LETSOptimizer(model.parameters(), base, lr=0.1, **settings)


def train(model, optimizer, rows):
    """LETS / SAM steps on ``rows`` of each batch; under FSDP2 every pass is synced (no no_sync)."""
    x, y = tiny_batches(n=16 * STEPS)
    vx, vy = tiny_batches(seed=2, n=16 * STEPS)
    loss = lambda inputs, labels: torch.nn.functional.cross_entropy(model(inputs[rows]), labels[rows])
    rhos = [optimizer.rho]
    for step in range(STEPS):
        batch = slice(16 * step, 16 * (step + 1))
        optimizer.step(lambda: loss(x[batch], y[batch]), lambda: loss(vx[batch], vy[batch]))
        rhos.append(optimizer.rho)
    return rhos


def full_weights(model):
    return torch.cat(
        [(p.full_tensor() if isinstance(p, DTensor) else p).detach().flatten() for p in model.parameters()]
    )


def rank_local_norm(tensors):
    """The negative control: the norm of this rank's shards only, as code unaware of sharding would take it."""
    return foreach.global_norm([t.to_local() if isinstance(t, DTensor) else t for t in tensors])


def run(scenario, rank, world):
    sharded, single = tiny_mlp(width=7), tiny_mlp(width=7)
    fully_shard(sharded)
    rows = slice(rank * 16 // world, (rank + 1) * 16 // world)
    rhos = train(sharded, build(sharded, scenario), rows)
    single_rhos = train(single, build(single, scenario), slice(None))
    weights = full_weights(sharded)
    return {
        "weights": float((weights - full_weights(single)).abs().max()),
        "rho": max(abs(a - b) for a, b in zip(rhos, single_rhos)),
        "rhos": rhos,
    }


def exact_hvp_refused(rank, world) -> str:
    """lets_hvp='exact' on sharded weights: the message of the ValueError (b would silently be 0 otherwise)."""
    model = tiny_mlp(width=7)
    fully_shard(model)
    optimizer = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=LETSRadius(rho=0.1, hvp="exact"))
    x, y = tiny_batches()
    loss = lambda: torch.nn.functional.cross_entropy(model(x), y)
    loss().backward()
    optimizer.first_step(zero_grad=True)
    loss().backward()
    try:
        optimizer.second_step(loss_closure=loss)
    except ValueError as error:
        return str(error)
    return ""


def mixed_precision(rank, world) -> dict:
    """SAM steps under FSDP2's bf16 policy (float32 shards, bf16 compute, float32 gradient reduction): whether
    the restore is bit-exact, the dtypes of shards and gradients, and how far it ends from float32 compute."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    x, y = tiny_batches(dtype=torch.float32)
    rows = slice(rank * 16 // world, (rank + 1) * 16 // world)
    ends, exact, dtypes = [], True, set()
    for policy in (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
        MixedPrecisionPolicy(),
    ):
        model = tiny_mlp(width=7, dtype=torch.float32)
        fully_shard(model, mp_policy=policy)
        optimizer = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, radius=0.05)
        loss = lambda: torch.nn.functional.cross_entropy(model(x[rows]).float(), y[rows])
        for _ in range(STEPS):
            loss().backward()
            before = [p.to_local().clone() for p in model.parameters()]
            optimizer.first_step(zero_grad=True)
            loss().backward()
            optimizer.unperturb()
            exact &= all(torch.equal(b, p.to_local()) for b, p in zip(before, model.parameters()))
            dtypes |= {str(t.dtype) for p in model.parameters() for t in (p, p.grad)}
            optimizer.step()
            optimizer.zero_grad()
        ends.append(full_weights(model))
    return {"restore_exact": exact, "dtypes": sorted(dtypes), "from_float32": float((ends[0] - ends[1]).abs().max())}


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {scenario: run(scenario, rank, world) for scenario in SCENARIOS}
    import lets_hf.perturbation.sam as sam_module

    sam_module.global_norm = rank_local_norm
    try:
        results["sam_rank_local_norm"] = run("sam", rank, world)
    finally:
        sam_module.global_norm = foreach.global_norm
    results["exact_hvp_error"] = exact_hvp_refused(rank, world)
    results["bf16"] = mixed_precision(rank, world)
    pathlib.Path(out, f"fsdp-{rank}.json").write_text(json.dumps(results))
    leave_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
