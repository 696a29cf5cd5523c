"""One rank of the 2-process DDP tests: trains a tiny DeBERTa with LETSTrainer, saves what it ended with.

Run by tests/test_trainer_ddp.py under ``torch.distributed.run`` or ``accelerate launch``.
"""
import json
import os
import pathlib
import sys

import torch

from lets_hf.plots import radius_trajectory

sys.path.insert(0, os.path.dirname(__file__))
from lets_testing import tiny_deberta, token_dataset  # noqa: E402
from trainer_helpers import SequentialLETSTrainer, lets_args, poison_first_gradient  # noqa: E402


def main(out: str, optim: str, poison: str = "", lets_ascent: str = "") -> None:
    """``poison="rank1"``: a NaN in rank 1's first gradient (its ascent pass of step 0) only; ``lets_ascent``: as
    ``--lets_ascent`` (empty: the default)."""
    out = pathlib.Path(out)
    # as the scripts set it: DeBERTa's head ignores num_items_in_batch, so Trainer's default would double its loss
    args = lets_args(out, optim=optim, per_device_train_batch_size=4, lets_val_batch_size=4, max_steps=3,
                     average_tokens_across_devices=False, lets_ascent=lets_ascent or None)
    trainer = SequentialLETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(64))
    if poison == "rank1" and args.process_index == 1:
        poison_first_gradient(trainer.model.classifier.bias)
    trainer.train()
    rank = args.process_index
    weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.save(weights, out / f"weights-{rank}.pt")
    rhos = radius_trajectory(trainer.state.log_history)["rho"]
    skipped = trainer.lets_optimizer.skipped_ascents if trainer.lets_optimizer is not None else None
    (out / f"result-{rank}.json").write_text(json.dumps({"world_size": args.world_size, "rho": rhos,
                                                         "skipped_ascents": skipped}))
    # Leave the process group before exiting: gloo's threads torn down at interpreter exit abort now and
    # then ("terminate called without an active exception", SIGABRT), failing a run that had finished.
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
