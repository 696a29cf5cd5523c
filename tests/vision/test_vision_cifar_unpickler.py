"""CIFAR files are unpickled by a restricted unpickler: the batches' own contents load, a planted payload is refused."""

import os
import pickle

import numpy as np
import pytest
import torch
from vision_testing import Payload

from vision.data import CifarUnpickler, DataError, load_cifar


def _batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def _write_cifar10(root, protocol, numpy_module=None, train=None):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": _batch(4, seed=i) for i in range(1, 6)}
    batches["test_batch"] = _batch(3, seed=9)
    for name, batch in batches.items():
        raw = pickle.dumps(train if (train is not None and name == "data_batch_3") else batch, protocol=protocol)
        if numpy_module is not None:  # the module path of numpy 1 (the original files), not numpy 2's
            raw = raw.replace(b"numpy._core.multiarray", numpy_module)
        (folder / name).write_bytes(raw)
    return batches


@pytest.mark.parametrize("protocol, numpy_module", [(2, None), (2, b"numpy.core.multiarray"), (4, None), (5, None)])
def test_a_fake_cifar_batch_loads_exactly(tmp_path, protocol, numpy_module):
    batches = _write_cifar10(tmp_path, protocol, numpy_module)
    data = load_cifar("cifar10", tmp_path)
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert torch.equal(data.train.images, torch.from_numpy(expected).reshape(-1, 3, 32, 32))
    assert data.train.labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert torch.equal(data.test.images.flatten(1), torch.from_numpy(batches["test_batch"][b"data"]))


def test_a_planted_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "payload_ran"
    _write_cifar10(tmp_path / "cifar", 4, train={b"data": Payload(marker), b"labels": [0]})
    with pytest.raises(
        DataError,
        match=r"data_batch_3 is not a CIFAR python-pickle batch .*refused to load "
        r"io.open",
    ):
        load_cifar("cifar10", tmp_path / "cifar")
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload is real: a plain unpickler runs it
    assert marker.exists()


@pytest.mark.parametrize("target", [(os, "system"), (np, "load"), (np.lib.npyio, "load"), (torch, "load")])
def test_only_the_array_reconstruction_globals_are_allowed(tmp_path, target):
    module, name = target
    raw = b"\x80\x02c" + module.__name__.encode() + b"\n" + name.encode() + b"\n."  # PROTO 2, GLOBAL, STOP
    (tmp_path / "f").write_bytes(raw)
    with open(tmp_path / "f", "rb") as f, pytest.raises(pickle.UnpicklingError, match="refused to load"):
        CifarUnpickler(f, encoding="bytes").load()
