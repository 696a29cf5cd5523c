"""Datasets of the paper's vision experiments, read without torchvision.

- CIFAR-10 / CIFAR-100 (Krizhevsky, 2009) from the standard python-pickle archives
  (``cifar-10-batches-py/``, ``cifar-100-python/``), held in memory as uint8 tensors; their
  augmentation (random crop with 4-pixel padding, horizontal flip, normalisation) runs on the
  device, batched (:mod:`vision.augment`).
- ImageNet (ILSVRC-2012) from the standard ``train/<class>/*.JPEG`` and ``val/<class>/*.JPEG``
  folders; decoding and the usual random-resized-crop augmentation need Pillow and torchvision,
  imported only when ImageNet is asked for.

Every dataset yields ``(uint8 image [3, H, W], label)`` and exposes all labels as ``.labels``
(for label noise, :mod:`vision.noise`). A folder in the wrong format raises :class:`DataError`
naming ``--data_dir`` before any training starts.
"""

from __future__ import annotations

import hashlib
import pathlib
import pickle
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import synthetic


class DataError(ValueError):
    """The data folder is missing or not in the expected format."""


@dataclass(frozen=True)
class CifarFormat:
    """Where one CIFAR variant keeps its files inside its archive folder."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    url: str
    md5: str


CIFAR = {
    "cifar10": CifarFormat(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": CifarFormat(
        "cifar-100-python",
        ("train",),
        ("test",),
        b"fine_labels",
        100,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
DATASETS = (*CIFAR, "imagenet", "synthetic")  # synthetic: vision/synthetic.py, for smoke runs

# Per-channel mean and standard deviation of the training images (the values every CIFAR/ImageNet repository uses).
NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class TensorImages(Dataset):
    """Images held in memory: uint8 ``[N, 3, H, W]`` and int64 labels ``[N]``."""

    def __init__(self, images: Tensor, labels: Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError("TensorImages needs uint8 images [N, 3, H, W] and one label per image")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]


@dataclass
class VisionData:
    """A dataset's two splits with what the training loop needs to know about them.

    ``augment_on_device``: the train split yields raw images and the random crop and flip run on the
    device (CIFAR); otherwise the loader's workers augment (ImageNet) and the device only normalises.
    """

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment_on_device: bool


# -- CIFAR ---------------------------------------------------------------------------------------
def cifar_folder(data_dir: pathlib.Path, name: str) -> pathlib.Path:
    """``data_dir/<archive folder>``, or ``data_dir`` itself if it is that folder."""
    folder = CIFAR[name].folder
    return data_dir if data_dir.name == folder else data_dir / folder


class CifarUnpickler(pickle.Unpickler):
    """Reads what a CIFAR python-pickle batch holds and nothing else: a dict of bytes keys, lists of
    numbers or bytes, and uint8 numpy arrays. A pickle calls the functions it names; this one refuses
    every name but numpy's array reconstruction (``_reconstruct`` or ``_frombuffer``, under numpy 1's
    ``numpy.core`` of the original Python 2 files or numpy 2's ``numpy._core``), ``ndarray``, ``dtype``
    and ``_codecs.encode`` (bytes in a protocol-2 pickle written by Python 3), so no code runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a CIFAR batch holds only dicts, lists, "
                f"bytes, numbers and numpy arrays"
            )
        return super().find_class(module, name)


def _read_cifar_file(path: pathlib.Path, label_key: bytes, num_classes: int) -> tuple[Tensor, Tensor]:
    if not path.is_file():
        raise DataError(
            f"--data_dir: expected the CIFAR file {path} (the python-pickle archive layout); "
            f"pass --download to fetch it"
        )
    try:
        with open(path, "rb") as f:
            batch = CifarUnpickler(f, encoding="bytes").load()
        data, labels = batch[b"data"], batch[label_key]
    except Exception as error:  # unpickling garbage raises many kinds of errors
        raise DataError(
            f"--data_dir: {path} is not a CIFAR python-pickle batch (a dict with b'data' and {label_key!r}): {error}"
        ) from None
    images = torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8))
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    if images.numel() != len(labels) * 3072:
        raise DataError(
            f"--data_dir: {path} holds {images.numel()} bytes of pixels for {len(labels)} labels; "
            f"CIFAR images are 3x32x32 = 3072 bytes each"
        )
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise DataError(f"--data_dir: {path} has labels outside [0, {num_classes}); is it the right CIFAR variant?")
    return images.reshape(-1, 3, 32, 32), labels


def _read_cifar_split(folder: pathlib.Path, files: Sequence[str], fmt: CifarFormat) -> TensorImages:
    parts = [_read_cifar_file(folder / f, fmt.label_key, fmt.num_classes) for f in files]
    return TensorImages(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def load_cifar(name: str, data_dir: pathlib.Path) -> VisionData:
    """CIFAR-10 or CIFAR-100 from its python-pickle archive folder (under ``data_dir``)."""
    fmt = CIFAR[name]
    folder = cifar_folder(data_dir, name)
    mean, std = NORMALISATION[name]
    return VisionData(
        name,
        _read_cifar_split(folder, fmt.train_files, fmt),
        _read_cifar_split(folder, fmt.test_files, fmt),
        fmt.num_classes,
        mean,
        std,
        augment_on_device=True,
    )


def fetch(url: str, path: pathlib.Path) -> None:
    """Download ``url`` to ``path``; without a network, a :class:`DataError` that says what to do instead."""
    try:
        urllib.request.urlretrieve(url, path)
    except (OSError, ValueError) as error:  # URLError, refused or timed-out connections, bad proxies
        path.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise DataError(
            f"--download: could not fetch {url} ({reason}). Without a network, unpack the archive "
            f"into --data_dir yourself, or try the script with --dataset synthetic"
        ) from None


def download_cifar(name: str, data_dir: pathlib.Path) -> pathlib.Path:
    """Fetch and unpack the CIFAR archive into ``data_dir`` (needs internet; skipped when already there)."""
    fmt = CIFAR[name]
    folder = data_dir / fmt.folder
    if folder.is_dir():
        return folder
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / fmt.url.rsplit("/", 1)[1]
    if not archive.is_file():
        fetch(fmt.url, archive)
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    if digest != fmt.md5:
        raise DataError(f"{archive} has md5 {digest}, expected {fmt.md5}: a broken download; delete it and retry")
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(data_dir, filter="data")
    return folder


# -- ImageNet ------------------------------------------------------------------------------------
class ImageFolder(Dataset):
    """``root/<class>/<image>`` (the ImageNet train/val layout), decoded with Pillow."""

    EXTENSIONS = (".jpeg", ".jpg", ".png")

    def __init__(self, root: pathlib.Path, transform: Callable, classes: list[str] | None = None):
        if not root.is_dir():
            raise DataError(
                f"--data_dir: expected the ImageNet folder {root} (train/<class>/*.JPEG, val/<class>/*.JPEG)"
            )
        self.classes = classes or sorted(d.name for d in root.iterdir() if d.is_dir())
        samples = [
            (p, i)
            for i, c in enumerate(self.classes)
            for p in sorted((root / c).iterdir())
            if p.suffix.lower() in self.EXTENSIONS
        ]
        if not samples:
            raise DataError(f"--data_dir: no images found under {root}/<class>/")
        self.paths = [p for p, _ in samples]
        self.labels = torch.tensor([i for _, i in samples], dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB")), self.labels[index]


def _imagenet_transforms(image_size: int) -> tuple[Callable, Callable]:
    """Random-resized crop and flip for training, resize and centre crop for testing; uint8 outputs."""
    try:
        from torchvision.transforms import v2
    except Exception as error:  # torchvision missing or built for another torch
        raise DataError(f"--dataset imagenet needs torchvision and Pillow installed for this torch: {error}") from None
    to_uint8 = v2.PILToTensor()
    train = v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip(), to_uint8])
    test = v2.Compose([v2.Resize(int(image_size * 256 / 224)), v2.CenterCrop(image_size), to_uint8])
    return train, test


def load_imagenet(data_dir: pathlib.Path, image_size: int = 224) -> VisionData:
    train_tf, test_tf = _imagenet_transforms(image_size)
    train = ImageFolder(data_dir / "train", train_tf)
    test = ImageFolder(data_dir / "val", test_tf, classes=train.classes)
    mean, std = NORMALISATION["imagenet"]
    return VisionData("imagenet", train, test, len(train.classes), mean, std, augment_on_device=False)


def load_synthetic() -> VisionData:
    """``--dataset synthetic`` (:mod:`vision.synthetic`), normalised by the train split's statistics and augmented on
    the device as CIFAR is."""
    train, test = (TensorImages(images, labels) for images, labels in synthetic.synthetic_splits())
    mean, std = synthetic.channel_statistics(train.images)
    return VisionData("synthetic", train, test, synthetic.NUM_CLASSES, mean, std, augment_on_device=True)


def load_dataset(name: str, data_dir: pathlib.Path, download: bool = False, image_size: int = 224) -> VisionData:
    """The dataset ``name`` (one of :data:`DATASETS`) from ``data_dir``."""
    if name not in DATASETS:
        raise DataError(f"--dataset must be one of {list(DATASETS)}, got {name!r}")
    if name == "synthetic":
        return load_synthetic()
    data_dir = pathlib.Path(data_dir)
    if name == "imagenet":
        return load_imagenet(data_dir, image_size)
    if download:
        download_cifar(name, data_dir)
    return load_cifar(name, data_dir)
