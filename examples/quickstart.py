"""LETS-SAM in a plain PyTorch loop, on scikit-learn's bundled digits (no download; 6 s of CPU time on one core).

Run: python examples/quickstart.py (it prints rho, the gap and the test accuracy after each of 30 epochs; the
root README shows what it printed and how long it took).
"""

import torch
from sklearn.datasets import load_digits

from lets_hf import LETSOptimizer, LETSRadius


def main(epochs: int = 30, batch_size: int = 64, seed: int = 0) -> None:
    torch.manual_seed(seed)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(x))
    train, test = perm[:1400], perm[1400:]

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    loss_fn = torch.nn.functional.cross_entropy
    radius = LETSRadius(rho=0.05, lr=1e-2, hvp="finite_difference", objective="gap2")
    optimizer = LETSOptimizer(
        model.parameters(), torch.optim.SGD, perturbation="sam", radius=radius, lr=0.05, momentum=0.9, weight_decay=5e-4
    )

    # LETS's validation batches come from the training set (the paper's choice), in their own order
    def val_batches():
        while True:
            yield from torch.randperm(len(train)).split(batch_size)

    val_iter = val_batches()

    print(f"epoch  rho      gap       test acc   ({radius})")
    for epoch in range(epochs):
        for idx in train[torch.randperm(len(train))].split(batch_size):
            xb, yb, v = x[idx], y[idx], train[next(val_iter)]
            # the ascent, perturbed and hyper passes of one LETS step: theta_{t+1} and rho_{t+1}
            optimizer.step(lambda: loss_fn(model(xb), yb), lambda: loss_fn(model(x[v]), y[v]), model=model)
        with torch.no_grad():
            acc = (model(x[test]).argmax(-1) == y[test]).float().mean().item()
        print(f"{epoch:5d}  {optimizer.rho:.5f}  {optimizer.last_gap.item():+.5f}  {acc:.4f}")


if __name__ == "__main__":
    main()
