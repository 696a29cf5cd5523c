"""Helpers for the vision tests: tiny CIFAR-format pickle archives and the script's import path."""
from __future__ import annotations

import pathlib
import pickle
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_cifar10(root: pathlib.Path, n_train: int = 160, n_test: int = 64, seed: int = 0) -> pathlib.Path:
    """A CIFAR-10 python-pickle folder with random images whose labels are learnable (class = a brighter channel
    band), split over the five training batches like the real archive. Returns the folder's parent."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 200, (n, 3, 32, 32), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, label % 3, 3 * label:3 * label + 3, :] = 255
        return {b"data": images.reshape(n, 3072), b"labels": labels.tolist()}

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
