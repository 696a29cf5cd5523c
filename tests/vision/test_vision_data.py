"""CIFAR reading, bad data folders, label noise, device augmentation and batch sampling."""

import pickle

import numpy as np
import pytest
import torch
import vision_testing
from torch.utils.data import default_collate

from experiment_utils.label_noise import symmetric_noise
from lets_hf.seeding import VALIDATION_STREAM, mix_seed
from lets_hf.validation import ValidationBatches
from vision.augment import DeviceTransform, random_crop, random_flip
from vision.data import DataError, load_dataset
from vision.noise import with_label_noise
from vision.sampling import ShardedBatches, ValidationStream


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return vision_testing.write_cifar10(tmp_path_factory.mktemp("data"), n_train=200, n_test=40)


def test_cifar10_reads_all_batches(cifar_root):
    data = load_dataset("cifar10", cifar_root)
    assert (len(data.train), len(data.test), data.num_classes) == (200, 40, 10)
    image, label = data.train[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="bytes")
    assert torch.equal(image.flatten(), torch.from_numpy(first[b"data"][0])) and int(label) == first[b"labels"][0]
    assert len(load_dataset("cifar10", cifar_root / "cifar-10-batches-py").train) == 200  # the folder itself


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split, n in (("train", 30), ("test", 10)):
        with open(folder / split, "wb") as f:
            pickle.dump(
                {
                    b"data": np.zeros((n, 3072), np.uint8),
                    b"fine_labels": list(range(70, 70 + n)),
                    b"coarse_labels": [0] * n,
                },
                f,
            )
    data = load_dataset("cifar100", tmp_path)
    assert data.num_classes == 100 and data.train.labels.tolist() == list(range(70, 100))


def test_bad_data_folders_name_the_option(tmp_path):
    with pytest.raises(DataError, match="--data_dir.*data_batch_1"):
        load_dataset("cifar10", tmp_path)
    broken = tmp_path / "cifar-10-batches-py"
    broken.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (broken / name).write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="--data_dir.*not a CIFAR python-pickle batch"):
        load_dataset("cifar10", tmp_path)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(broken / name, "wb") as f:
            pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(DataError, match="3072 bytes each"):
        load_dataset("cifar10", tmp_path)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(broken / name, "wb") as f:
            pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [12] * 4}, f)
    with pytest.raises(DataError, match=r"labels outside \[0, 10\)"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DataError, match="--dataset must be one of"):
        load_dataset("mnist", tmp_path)


def test_label_noise_is_exact_seeded_and_leaves_the_test_set(cifar_root):
    data = load_dataset("cifar10", cifar_root)
    clean = data.train.labels.clone()
    for rate in (0.2, 0.4, 0.6, 0.8):
        noisy, flipped = symmetric_noise(clean, rate, 10, seed=3)
        assert int(flipped.sum()) == round(rate * 200) == int((noisy != clean).sum())
        assert torch.equal(noisy[~flipped], clean[~flipped])
        assert noisy.min() >= 0 and noisy.max() < 10
        assert torch.equal(noisy, symmetric_noise(clean, rate, 10, seed=3)[0])
    assert not torch.equal(symmetric_noise(clean, 0.4, 10, seed=3)[0], symmetric_noise(clean, 0.4, 10, seed=4)[0])
    noisy_train = with_label_noise(data.train, 0.4, 10, seed=0)
    assert int((noisy_train.labels != clean).sum()) == 80 and torch.equal(data.train.labels, clean)
    assert int(noisy_train[5][1]) == int(noisy_train.labels[5])
    for rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"--label_noise must be in \[0, 1\)"):
            symmetric_noise(clean, rate, 10, seed=0)


def test_random_crop_is_a_window_of_the_padded_image():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    cropped = random_crop(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for image, crop in zip(padded, cropped):
        windows = [image[:, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(crop, w) for w in windows)
    assert torch.equal(cropped, random_crop(images, 2, torch.Generator().manual_seed(0)))
    assert not torch.equal(cropped, random_crop(images, 2, torch.Generator().manual_seed(1)))


def test_flip_and_normalisation():
    images = torch.randint(0, 256, (64, 3, 4, 4), dtype=torch.uint8)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(f, i.flip(-1)) and not torch.equal(f, i) for f, i in zip(flipped, images)])
    same = torch.tensor([torch.equal(f, i) for f, i in zip(flipped, images)])
    assert bool((mirrored | same).all()) and 16 < int(mirrored.sum()) < 48
    transform = DeviceTransform((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x = transform(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(x, torch.full((1, 3, 2, 2), 2.0))
    assert DeviceTransform((0.5,) * 3, (0.25,) * 3, size=8)(images[:2]).shape == (2, 3, 8, 8)


def test_sharded_batches_cover_each_example_once():
    dataset = torch.utils.data.TensorDataset(torch.arange(50), torch.arange(50))
    seen = []
    for rank in range(3):
        batches = ShardedBatches(dataset, 12, seed=0, shuffle=False, rank=rank, world_size=3)
        seen += [int(i) for _, x, _ in batches.iterate(0) for i in x]
    assert sorted(seen) == list(range(50))
    train = [ShardedBatches(dataset, 12, seed=0, shuffle=True, rank=r, world_size=3) for r in range(3)]
    epoch0 = [int(i) for b in train for _, x, _ in b.iterate(0) for i in x]
    assert len(epoch0) == len(set(epoch0)) == 48  # 4 global batches of 12, no repeats
    assert epoch0 != [int(i) for b in train for _, x, _ in b.iterate(1) for i in x]
    with pytest.raises(ValueError, match="--batch_size"):
        ShardedBatches(dataset, 10, seed=0, shuffle=True, world_size=3)


def test_validation_stream_draws_the_librarys_batches_and_resumes_exactly():
    dataset = torch.utils.data.TensorDataset(torch.arange(18).view(18, 1, 1, 1).to(torch.uint8), torch.arange(18))
    make = lambda: ValidationStream(dataset, 6, 5, lambda x, seed: x.float() + seed % 7, torch.device("cpu"))
    stream = make()
    drawn = [next(stream) for _ in range(7)]  # 3 batches per pass: more than two passes
    library = ValidationBatches(dataset, 6, default_collate, seed=5)  # the Trainer's sampler, the same batches
    assert [labels.tolist() for _, labels in drawn] == [library.indices(k) for k in range(7)]
    assert sorted(int(y) for _, labels in drawn[:3] for y in labels) == list(range(18))  # a pass sees each once
    augmented = [images.flatten() - labels for images, labels in drawn]  # the transform's seed, per batch
    assert [int(a[0]) for a in augmented] == [mix_seed(VALIDATION_STREAM, 5, k, 0) % 7 for k in range(7)]
    resumed = make()
    resumed.load_state_dict({"drawn": 4})
    for expected in drawn[4:]:
        images, labels = next(resumed)
        assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])
    ranks = [
        ValidationStream(dataset, 6, 5, lambda x, seed: x, torch.device("cpu"), rank=r, world_size=3) for r in range(3)
    ]
    first = [next(rank)[1].tolist() for rank in ranks]  # one global batch of 6 split over 3 ranks
    assert (
        first
        == [ValidationBatches(dataset, 2, default_collate, seed=5, rank=r, world_size=3).indices(0) for r in range(3)]
        and len({i for part in first for i in part}) == 6
    )


def test_image_folder_reads_the_imagenet_layout(tmp_path):
    from PIL import Image

    from vision.data import ImageFolder

    for split in ("train", "val"):
        for c, colour in (("n01", (255, 0, 0)), ("n02", (0, 0, 255))):
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (5, 4), colour).save(tmp_path / split / c / "a.JPEG")
            (tmp_path / split / c / "notes.txt").write_text("not an image")
    to_tensor = lambda image: torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    train = ImageFolder(tmp_path / "train", to_tensor)
    assert train.classes == ["n01", "n02"] and train.labels.tolist() == [0, 1]
    image, label = train[1]
    assert image.shape == (3, 4, 5) and int(label) == 1 and image[2].float().mean() > 200
    with pytest.raises(DataError, match="--data_dir: no images"):
        ImageFolder(tmp_path / "val" / "n01", to_tensor)
    with pytest.raises(DataError, match="--data_dir|--dataset imagenet"):  # folder missing, or no torchvision here
        load_dataset("imagenet", tmp_path / "missing")
