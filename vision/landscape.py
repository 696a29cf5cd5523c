"""Loss-landscape surfaces (the paper's Figures 5 and 8), by the method of Li, Xu, Taylor, Studer,
Goldstein, "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018.

Two random directions ``d1, d2`` are drawn and *filter-normalised*: every filter (slice along the
first dimension) of a weight tensor is rescaled to the norm of the same filter of the trained
weights; biases and BatchNorm parameters get 0 (Li et al.'s default). The loss
``L(theta + a d1 + b d2)`` is evaluated on a grid of ``(a, b)`` in ``[-span, span]^2`` (BatchNorm in
eval mode, with the trained running statistics); the centre of the grid is the trained model.

    python vision/landscape.py --run_dir runs/vision/cifar10-resnet18-lets_sam-s0 --points 21 --span 1

writes ``landscape.npz`` (``alphas``, ``betas``, ``loss``) and ``landscape.png`` (surface and contour)
into the run folder.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> list[Tensor]:
    """A Gaussian direction with every filter scaled to its weight filter's norm (0 on 1-D parameters)."""
    directions = []
    for p in model.parameters():
        if p.ndim <= 1:
            directions.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        weight_norms = p.detach().flatten(1).norm(dim=1)
        direction_norms = d.flatten(1).norm(dim=1)
        scale = weight_norms / (direction_norms + 1e-10)
        directions.append(d * scale.view(-1, *([1] * (p.ndim - 1))))
    return directions


def grid_coordinates(points: int, span: float) -> Tensor:
    """``points`` (odd) values from ``-span`` to ``span``, with exactly 0 in the middle."""
    if points < 1 or points % 2 == 0:
        raise ValueError(f"--points must be odd (so that the trained model is the centre), got {points}")
    half = points // 2
    return span * torch.arange(-half, half + 1, dtype=torch.float64) / max(half, 1)


@torch.no_grad()
def loss_surface(
    model: nn.Module,
    loss_of: Callable[[nn.Module], float],
    directions: tuple[Sequence[Tensor], ...],
    alphas: Tensor,
    betas: Tensor,
) -> Tensor:
    """``loss[i, j] = loss_of(model at theta + alphas[i] d1 + betas[j] d2)``; the weights are restored after."""
    params = list(model.parameters())
    original = [p.detach().clone() for p in params]
    d1, d2 = directions
    surface = torch.empty(len(alphas), len(betas), dtype=torch.float64)
    try:
        for i, a in enumerate(alphas.tolist()):
            for j, b in enumerate(betas.tolist()):
                for p, w, u, v in zip(params, original, d1, d2):
                    p.copy_(w + a * u + b * v)
                surface[i, j] = loss_of(model)
    finally:
        for p, w in zip(params, original):
            p.copy_(w)
    return surface


@torch.no_grad()
def mean_loss(batches: Iterable[tuple[Tensor, Tensor]]) -> Callable[[nn.Module], float]:
    """``loss_of(model)``: mean cross-entropy over fixed (already transformed) batches, in eval mode."""
    batches = list(batches)

    def loss_of(model: nn.Module) -> float:
        model.eval()
        total = sum(float(F.cross_entropy(model(x).float(), y, reduction="sum")) for x, y in batches)
        return total / sum(len(y) for _, y in batches)

    return loss_of


def plot_surface(alphas: Tensor, betas: Tensor, surface: Tensor, path: pathlib.Path, title: str = "") -> None:
    """A 3-D surface and a contour map of the grid, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = np.meshgrid(alphas.numpy(), betas.numpy(), indexing="ij")
    z = surface.numpy()
    figure = plt.figure(figsize=(11, 4.5))
    axis = figure.add_subplot(1, 2, 1, projection="3d")
    axis.plot_surface(a, b, z, cmap="viridis", linewidth=0, antialiased=True)
    axis.set_xlabel("direction 1")
    axis.set_ylabel("direction 2")
    axis.set_zlabel("loss")
    contour_axis = figure.add_subplot(1, 2, 2)
    levels = np.geomspace(z.min(), z.max(), 20) if z.min() > 0 and z.max() > z.min() else 20  # detail near the minimum
    contours = contour_axis.contour(a, b, z, levels=levels, cmap="viridis")
    contour_axis.clabel(contours, fontsize=7, fmt="%.3g")
    contour_axis.set_xlabel("direction 1")
    contour_axis.set_ylabel("direction 2")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _run_batches(run_dir: pathlib.Path, split: str, num_batches: int, batch_size: int):
    """The trained model of a ``vision/train.py`` run and ``num_batches`` fixed batches of one of its splits."""
    from safetensors.torch import load_file

    from vision.config import TrainConfig
    from vision.models import build_model
    from vision.sampling import ShardedBatches
    from vision.train import device_transforms, load_data

    config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    data = load_data(config)
    model = build_model(config.model, data.num_classes, **config.model_options())
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    _, eval_tf = device_transforms(config, data)
    batches = ShardedBatches(data.train if split == "train" else data.test, batch_size, config.seed, shuffle=False)
    chosen = []
    for index, images, labels in batches.iterate(0):
        if index >= num_batches:
            break
        chosen.append((eval_tf(images), labels))
    return config, model, chosen


def main(argv=None) -> pathlib.Path:
    parser = argparse.ArgumentParser(description="Loss-landscape surface of a trained run (Li et al., NeurIPS 2018).")
    parser.add_argument("--run_dir", required=True, help="a vision/train.py output folder")
    parser.add_argument("--points", type=int, default=21, help="grid points per direction (odd)")
    parser.add_argument("--span", type=float, default=1.0, help="the grid covers [-span, span] in both directions")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--num_batches", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    args = parser.parse_args(argv)
    run_dir = pathlib.Path(args.run_dir)
    if not (run_dir / "model.safetensors").is_file():
        parser.error(f"argument --run_dir: {run_dir} has no model.safetensors (is it a finished vision/train.py run?)")
    config, model, batches = _run_batches(run_dir, args.split, args.num_batches, args.batch_size)
    alphas = betas = grid_coordinates(args.points, args.span)
    generator = torch.Generator().manual_seed(args.seed)
    directions = (filter_normalized_direction(model, generator), filter_normalized_direction(model, generator))
    surface = loss_surface(model, mean_loss(batches), directions, alphas, betas)
    np.savez(run_dir / "landscape.npz", alphas=alphas.numpy(), betas=betas.numpy(), loss=surface.numpy())
    plot_surface(
        alphas,
        betas,
        surface,
        run_dir / "landscape.png",
        title=f"{config.method} {config.model} {config.dataset} ({args.split} loss)",
    )
    print(
        f"centre loss {float(surface[args.points // 2, args.points // 2]):.4f}; wrote {run_dir / 'landscape.npz'}, "
        f"{run_dir / 'landscape.png'}"
    )
    return run_dir / "landscape.npz"


if __name__ == "__main__":
    main()
