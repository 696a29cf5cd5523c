"""Loss landscapes, training curves and the summary tables."""

import json

import numpy as np
import pytest
import torch
import vision_testing

from vision import curves, landscape, summarize, train


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 3),
    )


def test_directions_are_filter_normalised():
    model = tiny_model()
    directions = landscape.filter_normalized_direction(model, torch.Generator().manual_seed(0))
    for d, p in zip(directions, model.parameters()):
        if p.ndim > 1:  # every filter (output channel / row) has its weight filter's norm
            assert torch.allclose(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-5)
        else:  # biases and BatchNorm parameters stay put
            assert not d.any()


def test_surface_grid_centre_is_the_model_and_weights_are_restored():
    model = tiny_model()
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,))
    loss_of = landscape.mean_loss([(x, y)])
    before = [p.detach().clone() for p in model.parameters()]
    generator = torch.Generator().manual_seed(1)
    directions = tuple(landscape.filter_normalized_direction(model, generator) for _ in range(2))
    alphas, betas = landscape.grid_coordinates(5, 1.0), landscape.grid_coordinates(3, 0.5)
    surface = landscape.loss_surface(model, loss_of, directions, alphas, betas)
    assert surface.shape == (5, 3) and alphas[2] == 0 and betas[1] == 0
    model.eval()
    with torch.no_grad():
        assert surface[2, 1] == float(torch.nn.functional.cross_entropy(model(x), y))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert surface[0, 0] != surface[2, 1]
    with pytest.raises(ValueError, match="--points must be odd"):
        landscape.grid_coordinates(4, 1.0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-epoch LETS-SAM run of a narrow ResNet-32."""
    root = tmp_path_factory.mktemp("figures")
    data_dir = vision_testing.write_cifar10(root / "data", n_train=80, n_test=32)
    train.main(
        [
            "--data_dir",
            str(data_dir),
            "--output_dir",
            str(root / "run"),
            "--method",
            "lets_sam",
            "--model",
            "resnet32",
            "--width",
            "4",
            "--epochs",
            "1",
            "--batch_size",
            "32",
            "--train_eval_size",
            "32",
        ]
    )
    return root / "run"


def test_landscape_of_a_finished_run(finished_run, capsys):
    path = landscape.main(
        ["--run_dir", str(finished_run), "--points", "3", "--span", "0.5", "--num_batches", "1", "--batch_size", "32"]
    )
    grid = np.load(path)
    assert grid["loss"].shape == (3, 3) and list(grid["alphas"]) == [-0.5, 0.0, 0.5]
    assert (finished_run / "landscape.png").stat().st_size > 10_000
    assert f"centre loss {grid['loss'][1, 1]:.4f}" in capsys.readouterr().out


def test_curves_of_finished_runs(finished_run, tmp_path):
    written = curves.main([str(finished_run)] * 2 + ["--labels", "a", "b", "--out", str(tmp_path)])
    assert sorted(p.name for p in written) == ["gap.png", "rho.png", "test_acc.png", "train_loss.png"]
    assert list(curves.read_runs([finished_run])) == ["lets_sam"]
    with pytest.raises(ValueError, match="--labels"):
        curves.read_runs([finished_run], ["one", "two"])


def fake_result(root, name, seed, acc, **config):
    folder = root / name
    folder.mkdir(parents=True)
    full = {
        "dataset": "cifar10",
        "model": "resnet18",
        "method": "sam",
        "seed": seed,
        "rho": 0.05,
        "output_dir": str(folder),
        **config,
    }
    (folder / "results.json").write_text(json.dumps({"config": full, "final_test_acc": acc, "best_test_acc": acc}))


def test_summary_table_is_mean_and_std_over_seeds(tmp_path):
    for seed, acc in enumerate((0.95, 0.96, 0.97)):
        fake_result(tmp_path, f"sam{seed}", seed, acc)
        fake_result(tmp_path, f"lets{seed}", seed, acc - 0.01, method="lets_sam")
    fake_result(tmp_path, "wrn", 0, 0.5, model="wrn28_10")
    table = summarize.main([str(tmp_path)])
    lines = table.splitlines()
    assert lines[0] == "| dataset / model | SAM | LETS-SAM |"  # the paper's names, in its order
    assert lines[2] == "| cifar10 / resnet18 | 96.00 ± 1.00 | 95.00 ± 1.00 |"
    assert lines[3] == "| cifar10 / wrn28_10 | 50.00 | - |"
    fake_result(tmp_path, "other-rho", 5, 0.9, rho=0.1)
    with pytest.raises(ValueError, match=r"differ in \['rho'\]"):
        summarize.main([str(tmp_path)])
    assert "| 0.1 |" in summarize.main([str(tmp_path), "--rows", "model,rho"]).replace("resnet18 / ", "")
