"""Tiny models and data, and one plain LETS step, shared by the tests (a module of its own: every test folder has its
own conftest)."""

import os
import pathlib
import socket
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def free_port() -> int:
    """A TCP port that no process listens on now, for a launcher's rendezvous (fixed ports collide across runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def leave_process_group() -> None:
    """The end of a test worker's rank, once its results are written: a barrier, ``destroy_process_group``, then
    ``os._exit(0)``. Skipping the interpreter's finalization is the point: gloo's worker threads torn down there
    abort a finished run now and then (``terminate called without an active exception``, SIGABRT; seen once in
    CI under transformers 5.15, and pytorch/pytorch#179291 for the mechanism), which no barrier before it
    prevents."""
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


loss_fn = torch.nn.functional.cross_entropy


def lets_step(model, opt, batch, val_batch):
    """One LETS step of the plain API, ``opt.step(closure, val_closure)`` on ``batch`` and ``val_batch``; returns
    its hypergradient."""
    (x, y), (xv, yv) = batch, val_batch
    opt.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv))
    return opt.last_hypergradient


def tiny_mlp(seed: int = 0, dtype=torch.float64, width: int = 6) -> torch.nn.Module:
    """A smooth two-layer network (tanh), so Hessians are well defined everywhere."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Tanh(), torch.nn.Linear(width, 3)).to(dtype)


def tiny_batches(seed: int = 1, n: int = 16, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def tiny_deberta(seed: int = 0, dropout: float = 0.0, num_labels: int = 2):
    """A 2-layer, 32-wide DeBERTa-v2 classifier built from a config (no download)."""
    from transformers import DebertaV2ForSequenceClassification

    from experiment_utils.tiny_runs import deberta_config

    torch.manual_seed(seed)
    config = deberta_config(
        32, 2, 50, heads=2, intermediate=37, max_positions=32, dropout=dropout, num_labels=num_labels
    )
    return DebertaV2ForSequenceClassification(config)


def token_dataset(n: int = 64, length: int = 12, seed: int = 0):
    """``n`` random sequences with binary labels, as a list of feature dicts."""
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(0, 50, (length,), generator=g),
            "labels": int(torch.randint(0, 2, (1,), generator=g)),
        }
        for _ in range(n)
    ]
