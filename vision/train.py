"""Train an image classifier with ERM, SAM, ASAM, LETS-SAM or LETS-ASAM: the vision experiments of
Wang, Jiang, Fu, Zhang, "Enhancing Sharpness-Aware Minimization by Learning Perturbation Radius",
ECCV 2024 (Tables 1 to 6), on CIFAR-10/100 or ImageNet, with or without label noise.

    accelerate launch vision/train.py --preset wrn28_10 --dataset cifar100 --method lets_sam --seed 0
    python vision/train.py --preset resnet18 --method sam --rho 0.05          # one process

One LETS step (the math lives in :class:`lets_hf.LETSOptimizer`), for a train batch ``B`` and a
validation batch ``V`` drawn from the training set:

1. ``L(B; theta_t)`` forward and backward under ``no_sync`` (each process perturbs with its own
   gradient, as in SAM); ``first_step`` moves to ``theta_t + rho_t d``.
2. ``L(B; theta_t + rho_t d)`` forward and backward (gradients averaged over processes), with
   BatchNorm statistics frozen; ``theta_t`` is restored and the base step taken.
   ESAM with ``--esam_gamma`` < 1 runs this pass on the examples its data selection keeps only.
3. At ``theta_{t+1}``: ``L(V)`` and ``L(B)`` under ``no_sync`` with BatchNorm frozen; ``rho`` is
   updated (the hypergradient is averaged over processes).

:class:`Stepper` runs all three with one ``LETSOptimizer.step(closure, val_closure, model=model)``.

Only the clean first pass moves BatchNorm's running statistics. SAM and ASAM are steps 1 and 2
with a fixed radius; ERM is one pass with the base optimizer. See ``vision/README.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import Subset
from tqdm.auto import tqdm

from lets_hf import LearnedRadius, LETSOptimizer
from lets_hf.launch import process_count_warning, requested_processes
from lets_hf.plots import plot_radius_trajectory
from lets_hf.seeding import TRAIN_EVAL_STREAM, generator
from vision.augment import DeviceTransform
from vision.checkpoints import (
    RunLog,
    RunState,
    checkpoint_dir,
    latest_checkpoint,
    load_run_state,
    prune_checkpoints,
    save_run_state,
    unrestored_rng_state,
)
from vision.config import BASE_OPTIMIZERS, ConfigError, TrainConfig, base_optimizer_arguments, parse_config
from vision.data import DataError, VisionData, load_dataset
from vision.models import build_model, count_parameters
from vision.noise import with_label_noise
from vision.sampling import ShardedBatches, ValidationStream

PRECISIONS = {"no": "fp32", "bf16": "bf16"}  # --mixed_precision -> results.json's "precision" (fp16 is refused)


# -- building blocks ---------------------------------------------------------------------------
def load_data(config: TrainConfig) -> VisionData:
    """The dataset, with symmetric noise on the training labels when ``--label_noise`` > 0."""
    data = load_dataset(config.dataset, pathlib.Path(config.data_dir), config.download, config.image_size)
    if config.label_noise > 0:
        data.train = with_label_noise(data.train, config.label_noise, data.num_classes, seed=config.seed)
    return data


def build_optimizer(config: TrainConfig, model: nn.Module, total_steps: int) -> Optimizer:
    """The base optimizer (ERM) or :class:`LETSOptimizer` around it (a SAM variant, fixed or learned radius)."""
    base, kwargs = BASE_OPTIMIZERS[config.optimizer], base_optimizer_arguments(config)
    if config.perturbation is None:
        return base(model.parameters(), **kwargs)
    rule, radius = config.build_method(total_steps)
    return LETSOptimizer(model.parameters(), base, perturbation=rule, radius=radius, **kwargs)


def build_scheduler(config: TrainConfig, optimizer: Optimizer, steps_per_epoch: int) -> LambdaLR:
    """Linear warm-up, then cosine decay to 0 (or constant), stepped every optimizer step."""
    warmup, total = config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    return LambdaLR(optimizer, factor)


def device_transforms(config: TrainConfig, data: VisionData) -> tuple[DeviceTransform, DeviceTransform]:
    """(train, eval) transforms run on the device: CIFAR crops and flips there, ImageNet in its workers."""
    size = config.image_size if data.augment_on_device else None
    train = DeviceTransform(
        data.mean, data.std, padding=4 if data.augment_on_device else 0, flip=data.augment_on_device, size=size
    )
    return train, DeviceTransform(data.mean, data.std, padding=0, flip=False, size=size)


def train_eval_subset(config: TrainConfig, data: VisionData) -> Subset:
    """A fixed, seeded subset of the training set, evaluated each epoch for the gap ``L(test) - L(train)``."""
    size = min(config.train_eval_size, len(data.train))
    order = torch.randperm(len(data.train), generator=generator(config.seed, TRAIN_EVAL_STREAM))
    return Subset(data.train, order[:size].tolist())


# -- one step ----------------------------------------------------------------------------------
class Stepper:
    """One training step of the configured method; returns the clean pass's loss and logits."""

    def __init__(
        self, model: nn.Module, optimizer: Optimizer, accelerator: Accelerator, val_stream: ValidationStream | None
    ):
        self.model, self.optimizer, self.accelerator, self.val_stream = model, optimizer, accelerator, val_stream
        self.sharpness_aware = isinstance(optimizer, LETSOptimizer)
        self.learns = self.sharpness_aware and isinstance(optimizer.radius, LearnedRadius)

    def example_losses(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(images)
        return F.cross_entropy(logits.float(), labels, reduction="none"), logits

    def descent_batch(self, images: Tensor, labels: Tensor, clean_losses: Tensor) -> tuple[Tensor, Tensor]:
        """The perturbed pass's examples: all, or those ESAM's data selection keeps (``esam_gamma`` < 1), found
        from per-example losses at the perturbed weights in a pass without gradient, as in the official code;
        the perturbed pass then runs on them alone (ESAM's saving; BatchNorm normalises with their statistics)."""
        rule = self.optimizer.rule
        if not getattr(rule, "selects_examples", False):
            return images, labels
        with torch.no_grad():
            perturbed_losses = self.example_losses(images, labels)[0]
        kept = rule.select_examples(clean_losses, perturbed_losses)
        return images[kept], labels[kept]

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(images)
        return F.cross_entropy(logits.float(), labels), logits

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        if not self.sharpness_aware:
            loss, logits = self.loss(images, labels)
            self.accelerator.backward(loss)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            return loss.detach(), logits.detach()
        clean: dict[str, Any] = {}

        def closure() -> Tensor:
            """The batch's loss for each pass of ``LETSOptimizer.step``: the clean pass keeps its per-example
            losses and logits; the perturbed pass runs on ESAM's kept examples; the hyper pass on the batch."""
            if self.optimizer.is_perturbed:
                if "kept" not in clean:
                    clean["kept"] = self.descent_batch(images, labels, clean["losses"])
                return self.loss(*clean["kept"])[0]
            if clean:
                return self.loss(images, labels)[0]
            losses, logits = self.example_losses(images, labels)
            clean.update(losses=losses.detach(), logits=logits.detach())
            return losses.mean()

        loss = self.optimizer.step(closure, self._val_loss if self.learns else None, model=self.model)
        return loss, clean["logits"]

    def _val_loss(self) -> Tensor:
        return self.loss(*next(self.val_stream))[0]


# -- epochs ------------------------------------------------------------------------------------
def train_epoch(
    stepper: Stepper,
    batches: ShardedBatches,
    transform: DeviceTransform,
    scheduler: LambdaLR,
    epoch: int,
    config: TrainConfig,
    accelerator: Accelerator,
) -> dict[str, float]:
    """One pass over the training set; returns the mean clean-pass loss and accuracy, and the mean LETS gap."""
    stepper.model.train()
    steps = min(len(batches), config.max_steps_per_epoch or len(batches))
    totals = torch.zeros(5, dtype=torch.float64, device=accelerator.device)  # loss, correct, count, gap, gaps
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        leave=False,
        disable=not accelerator.is_local_main_process,
    )
    refresh = max(1, min(20, steps // 20))  # every step of a short epoch, every 20th of a long one
    for index, images, labels in batches.iterate(epoch):
        if index >= steps:
            break
        images = transform(images.to(accelerator.device, non_blocking=True), batches.batch_seed(epoch, index))
        labels = labels.to(accelerator.device, non_blocking=True)
        loss, logits = stepper(images, labels)
        scheduler.step()
        gap = stepper.optimizer.last_gap if stepper.learns else None
        totals += _as_row(
            loss * len(labels),
            (logits.argmax(1) == labels).sum(),
            len(labels),
            0.0 if gap is None else gap,
            float(gap is not None),
            like=totals,
        )
        if index % refresh == 0 or index == steps - 1:  # reading loss waits for the device: not every step
            bar.set_postfix(loss=f"{float(loss):.3f}", rho=_current_rho(stepper.optimizer), refresh=False)
        bar.update()
    bar.close()
    totals = accelerator.reduce(totals, reduction="sum")
    return {
        "train_loss": float(totals[0] / totals[2]),
        "train_acc": float(totals[1] / totals[2]),
        "lets_gap": float(totals[3] / totals[4]) if totals[4] > 0 else None,
        "steps": steps,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: ShardedBatches, transform: DeviceTransform, accelerator: Accelerator
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a split (eval mode, no augmentation), exact over processes."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
    for _, images, labels in batches.iterate(0):
        images, labels = transform(images.to(accelerator.device)), labels.to(accelerator.device)
        logits = model(images).float()
        totals += _as_row(
            F.cross_entropy(logits, labels, reduction="sum"),
            (logits.argmax(1) == labels).sum(),
            len(labels),
            like=totals,
        )
    totals = accelerator.reduce(totals, reduction="sum")
    return float(totals[0] / totals[2]), float(totals[1] / totals[2])


def _as_row(*values: Any, like: Tensor) -> Tensor:
    """Scalars (tensors or numbers) as one float64 vector on ``like``'s device, without a host sync."""
    return torch.stack([torch.as_tensor(v, dtype=like.dtype, device=like.device) for v in values])


RHO_FIGURE = "rho.png"


def _current_rho(optimizer: Optimizer) -> float | None:
    return optimizer.rho if isinstance(optimizer, LETSOptimizer) else None


# -- the run -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    """Everything one training run holds."""

    config: TrainConfig
    accelerator: Accelerator
    data: VisionData
    model: nn.Module
    optimizer: Optimizer
    scheduler: LambdaLR
    stepper: Stepper
    train_batches: ShardedBatches
    eval_batches: dict[str, ShardedBatches]
    train_tf: DeviceTransform
    eval_tf: DeviceTransform
    state: RunState
    log: RunLog
    output_dir: pathlib.Path
    checkpointed: dict[str, Any]  # what run_state.pt holds, by name: objects with state_dict / load_state_dict


def build_run(config: TrainConfig, accelerator: Accelerator) -> Run:
    """Data, model, optimizer, schedule and the LETS validation stream, registered for checkpointing."""
    rank, world = accelerator.process_index, accelerator.num_processes
    if world > 1 and config.learns_radius and config.lets_hvp == "exact":
        raise ConfigError(
            f"--lets_hvp exact runs in one process only (it needs a double backward through DDP); "
            f"use diag or finite_difference with {world} processes"
        )
    data = load_data(config)
    loader_options = {"rank": rank, "world_size": world, "num_workers": config.num_workers}
    pin = accelerator.device.type == "cuda"
    train_batches = ShardedBatches(
        data.train, config.batch_size, config.seed, shuffle=True, pin_memory=pin, **loader_options
    )
    eval_batches = {
        name: ShardedBatches(split, config.batch_size, config.seed, shuffle=False, **loader_options)
        for name, split in (("test", data.test), ("train_eval", train_eval_subset(config, data)))
    }
    steps_per_epoch = min(len(train_batches), config.max_steps_per_epoch or len(train_batches))

    model = build_model(config.model, data.num_classes, **config.model_options())
    optimizer = build_optimizer(config, model, config.epochs * steps_per_epoch)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch)
    model = accelerator.prepare(model)
    train_tf, eval_tf = device_transforms(config, data)
    val_stream = None
    if config.learns_radius:
        val_stream = ValidationStream(
            data.train, config.batch_size, config.seed, train_tf, accelerator.device, pin_memory=pin, **loader_options
        )
    state = RunState()
    checkpointed = {
        "optimizer": optimizer,
        "scheduler": scheduler,
        "run": state,
        **({"validation": val_stream} if val_stream else {}),
    }
    output_dir = pathlib.Path(config.output_dir)
    stepper = Stepper(model, optimizer, accelerator, val_stream)
    return Run(
        config,
        accelerator,
        data,
        model,
        optimizer,
        scheduler,
        stepper,
        train_batches,
        eval_batches,
        train_tf,
        eval_tf,
        state,
        RunLog(output_dir / "log.jsonl"),
        output_dir,
        checkpointed,
    )


def run_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """Train one epoch, evaluate, and return the epoch's log record."""
    started, lr = time.time(), run.optimizer.param_groups[0]["lr"]
    stats = train_epoch(run.stepper, run.train_batches, run.train_tf, run.scheduler, epoch, run.config, run.accelerator)
    run.state.epoch, run.state.step = epoch + 1, run.state.step + stats.pop("steps")
    test_loss, test_acc = evaluate(run.model, run.eval_batches["test"], run.eval_tf, run.accelerator)
    train_eval_loss, train_eval_acc = evaluate(run.model, run.eval_batches["train_eval"], run.eval_tf, run.accelerator)
    return {
        "epoch": epoch + 1,
        "step": run.state.step,
        "lr": lr,
        "rho": _current_rho(run.optimizer),
        **stats,
        "train_eval_loss": train_eval_loss,
        "train_eval_acc": train_eval_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "gap": test_loss - train_eval_loss,
        "epoch_time_s": time.time() - started,
    }


def main(argv=None) -> dict[str, Any]:
    """Train as ``argv`` says; returns (and writes to ``results.json``) the final numbers."""
    config = parse_config(argv)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    mismatch = process_count_warning(accelerator.num_processes, requested_processes())
    if mismatch is not None:
        accelerator.print(f"warning: {mismatch}")
    run = build_run(config, accelerator)
    _start(run)
    accelerator.print(
        f"{config.method} | {config.model} ({count_parameters(run.model) / 1e6:.2f}M parameters) | "
        f"{config.dataset} ({len(run.data.train)} train, {len(run.data.test)} test) | "
        f"{accelerator.num_processes} process(es) | epochs {run.state.epoch + 1}..{config.epochs}"
    )
    started = time.time()
    for epoch in range(run.state.epoch, config.epochs):
        record = run_epoch(run, epoch)
        if accelerator.is_main_process:
            run.log.append(record)
        accelerator.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        if (epoch + 1) % config.save_every == 0 or epoch + 1 == config.epochs:
            _save(run)
    return _finish(run, time.time() - started)


def _start(run: Run) -> None:
    """Resume from the last checkpoint (``--resume``), or start a fresh run in an output folder without one."""
    accelerator, output_dir = run.accelerator, run.output_dir
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None and not run.config.resume:
        raise ConfigError(
            f"--output_dir {output_dir} already holds checkpoints of a run: pass --resume to continue "
            f"it, or choose another --output_dir"
        )
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        _warn_on_unrestored_rng_state(checkpoint, accelerator.process_index)
        load_run_state(checkpoint, run.checkpointed)
        accelerator.print(f"resumed from {checkpoint} (epoch {run.state.epoch})")
        _warn_on_changed_options(run)
    elif run.config.resume:
        accelerator.print(f"--resume: no checkpoint in {output_dir}/checkpoints, starting from scratch")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps(dataclasses.asdict(run.config), indent=2) + "\n")
        run.log.truncate(run.state.epoch)
    accelerator.wait_for_everyone()


def _warn_on_unrestored_rng_state(checkpoint: pathlib.Path, process_index: int) -> None:
    """A resumed run continues exactly only from the checkpoint's RNG states; say so on the process that lacks them."""
    problem = unrestored_rng_state(checkpoint, process_index)
    if problem is not None:
        print(
            f"warning: process {process_index} resumes without the random number generator states of {checkpoint} "
            f"({problem}): the run goes on from the current states, so data order, augmentation and dropout "
            f"will differ and the result will not match an uninterrupted run",
            file=sys.stderr,
            flush=True,
        )


def _warn_on_changed_options(run: Run) -> None:
    """A resumed run continues exactly only with the options it started with; say which ones differ."""
    saved = json.loads((run.output_dir / "config.json").read_text())
    changed = sorted(k for k, v in dataclasses.asdict(run.config).items() if k != "resume" and saved.get(k) != v)
    if changed:
        run.accelerator.print(
            f"warning: resuming with options that differ from the run's config.json: {changed}; "
            f"the result will not match an uninterrupted run"
        )


def _save(run: Run) -> None:
    directory = checkpoint_dir(run.output_dir, run.state.epoch)
    run.accelerator.save_state(str(directory))
    save_run_state(run.accelerator, directory, run.checkpointed)
    if run.accelerator.is_main_process:
        prune_checkpoints(run.output_dir, run.config.keep_checkpoints)
    run.accelerator.wait_for_everyone()


def _finish(run: Run, seconds: float) -> dict[str, Any]:
    """Write the final weights, ``results.json`` (final and best test accuracy, final rho, the precision) and, for a
    learned radius, ``rho.png`` (:func:`plot_rho`)."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    accelerator.save_model(run.model, str(run.output_dir))
    records = run.log.records() if accelerator.is_main_process else []
    results = {
        "config": dataclasses.asdict(run.config),
        "epochs": run.config.epochs,
        "train_time_s": seconds,
        "precision": PRECISIONS[run.config.mixed_precision],
        "parameters": count_parameters(run.model),
        "final_rho": _current_rho(run.optimizer),
        "final": records[-1] if records else None,
        "final_test_acc": records[-1]["test_acc"] if records else None,
        "best_test_acc": max((r["test_acc"] for r in records), default=None),
    }
    if accelerator.is_main_process:
        (run.output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        if run.stepper.learns and records:
            figure = plot_rho(records, run.config.rho, run.output_dir / RHO_FIGURE, run.config.method)
            accelerator.print(f"rho {run.config.rho} -> {results['final_rho']:.5g}; wrote {figure}")
    return results


def plot_rho(records: list[dict[str, Any]], rho_0: float, path: pathlib.Path, title: str) -> str | None:
    """rho from ``rho_0`` (step 0) to each epoch's end, and the epoch's mean LETS gap (``lets_hf.plots``)."""
    rows = [{"step": r["step"], "rho": r["rho"], "lets_gap": r.get("lets_gap")} for r in records]
    rows[0]["rho_start"] = rho_0
    return plot_radius_trajectory(rows, str(path), title)


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, DataError) as error:
        sys.exit(f"error: {error}")
