"""One rank of the 2-process DDP tests: trains a tiny DeBERTa with LETSTrainer (or, ``optim="plain"``, a tiny
MLP with ``LETSOptimizer.step(closure)`` and with the loop in parts), saves what it ended with.

Run by tests/test_trainer_ddp.py under ``torch.distributed.run`` or ``accelerate launch``.
"""

import json
import os
import pathlib
import sys

import torch

from lets_hf.plots import radius_trajectory

sys.path.insert(0, os.path.dirname(__file__))
from lets_testing import leave_process_group, tiny_batches, tiny_deberta, tiny_mlp, token_dataset  # noqa: E402
from trainer_helpers import SequentialLETSTrainer, lets_args, poison_first_gradient  # noqa: E402


def main(out: str, optim: str, poison: str = "", lets_ascent: str = "") -> None:
    """``poison="rank1"``: a NaN in rank 1's first gradient (its ascent pass of step 0) only; ``lets_ascent``: as
    ``--lets_ascent`` (empty: the default)."""
    out = pathlib.Path(out)
    # as the scripts set it: DeBERTa's head ignores num_items_in_batch, so Trainer's default would double its loss
    args = lets_args(
        out,
        optim=optim,
        per_device_train_batch_size=4,
        lets_val_batch_size=4,
        max_steps=3,
        average_tokens_across_devices=False,
        lets_ascent=lets_ascent or None,
    )
    trainer = SequentialLETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(64))
    if poison == "rank1" and args.process_index == 1:
        poison_first_gradient(trainer.model.classifier.bias)
    trainer.train()
    rank = args.process_index
    weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.save(weights, out / f"weights-{rank}.pt")
    rhos = radius_trajectory(trainer.state.log_history)["rho"]
    skipped = trainer.lets_optimizer.skipped_ascents if trainer.lets_optimizer is not None else None
    (out / f"result-{rank}.json").write_text(
        json.dumps({"world_size": args.world_size, "rho": rhos, "skipped_ascents": skipped})
    )
    leave_process_group()


def plain(out: str) -> None:
    """3 LETS steps of a DDP-wrapped MLP on this rank's rows: ``step(closure, model=ddp)`` and the loop in parts
    with ``no_sync`` written out (the ascent and hyper passes per worker); saves both weights and rhos."""
    from torch.nn.parallel import DistributedDataParallel

    from lets_hf import LETSOptimizer, LETSRadius

    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    loss_fn = torch.nn.functional.cross_entropy
    ends = {}
    for loop in ("closure", "parts"):
        model = DistributedDataParallel(tiny_mlp(dtype=torch.float32))
        optimizer = LETSOptimizer(
            model.parameters(),
            torch.optim.SGD,
            lr=0.1,
            momentum=0.9,
            radius=LETSRadius(rho=0.1, lr=0.2, hvp="finite_difference"),
            distributed=loop == "parts",  # the closure loop's step(model=ddp) finds it out
        )
        for step in range(3):
            (x, y), (xv, yv) = (
                tiny_batches(10 * step + rank, dtype=torch.float32),
                tiny_batches(100 + 10 * step + rank, dtype=torch.float32),
            )
            if loop == "closure":
                optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv), model=model)
                continue
            with model.no_sync():
                loss = loss_fn(model(x), y)
                loss.backward()
            optimizer.first_step(zero_grad=True, train_loss=loss.detach())
            loss_fn(model(x), y).backward()
            optimizer.second_step(zero_grad=True)
            with model.no_sync():
                optimizer.hyper_step(loss_fn(model(xv), yv), loss_fn(model(x), y))
        ends[loop] = {"weights": torch.cat([p.detach().flatten() for p in model.parameters()]), "rho": optimizer.rho}
    torch.save(ends, pathlib.Path(out) / f"plain-{rank}.pt")
    leave_process_group()


if __name__ == "__main__":
    plain(sys.argv[1]) if sys.argv[2] == "plain" else main(*sys.argv[1:5])
