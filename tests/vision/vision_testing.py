"""Helpers for the vision tests: tiny CIFAR-format pickle archives."""

from __future__ import annotations

import pathlib
import pickle

import torch

from vision.synthetic import banded_images

ROOT = pathlib.Path(__file__).resolve().parents[2]


def write_cifar10(root: pathlib.Path, n_train: int = 160, n_test: int = 64, seed: int = 0) -> pathlib.Path:
    """A CIFAR-10 python-pickle folder of ``--dataset synthetic``'s kind of images (noise with a band that
    says the class), split over the five training batches like the real archive. Returns the folder's parent."""
    generator = torch.Generator().manual_seed(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n: int) -> dict:
        images, labels = banded_images(n, generator)
        return {b"data": images.reshape(n, 3072).numpy(), b"labels": labels.tolist()}

    per_file = n_train // 5
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per_file), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test), f)
    return root


class Payload:
    """A planted pickle: loaded by a full unpickler, it creates ``marker`` (it could as well call ``os.system``)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))
