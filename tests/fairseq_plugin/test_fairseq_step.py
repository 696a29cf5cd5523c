"""The plugin's update against the plain ``LETSOptimizer`` loop on the same batches.

For ``--lets-optim`` lets_sam, lets_asam, sam and asam, fairseq's own ``Trainer`` runs 4 updates of a tiny model
with ``--update-freq 2`` (so each update has two micro-batches) through ``--task translation_lets --optimizer
lets_adam``; a loop written as the root README writes one (``optimizer.step(closure, val_closure, model=model)``,
the closure returning the update's loss normalised as fairseq normalises it, by its target tokens) trains a copy
of the same initial model on the same micro-batches and validation batches. The weights and rho must agree. They
agree to float rounding, not bit for bit: fairseq backpropagates each micro-batch's summed loss and
then multiplies the gradient by 1 / tokens, the loop backpropagates the normalised sum in one graph. The
attention's key biases are left out: their gradient is exactly zero in exact arithmetic (a bias added to every
key shifts each query's logits by one constant, which the softmax ignores), so what autograd computes for them
is rounding noise, which Adam's normalisation turns into steps of the learning rate's size that differ between
any two orders of summation. For the same reason an element whose gradient is close to zero may differ by a
small part of a step: the weights agree to 3e-5, a hundredth of one step of the learning rate 0.003 (measured:
7e-6 for one element of 256 under ASAM, within 1e-6 under SAM); a wrong normalisation, order or batch moves every
weight by about a step.
"""

import copy
import sys

import pytest
import torch
from conftest import LETS_SAM, NEEDS_FAIRSEQ, PLUGIN, TINY_MODEL, TRAINING

pytest.importorskip("fairseq", reason=NEEDS_FAIRSEQ)
from fairseq import options, tasks
from fairseq.data import iterators
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.optim.adam import Adam
from fairseq.trainer import Trainer

from lets_hf import LETSOptimizer
from lets_hf.methods import build_method

UPDATES, UPDATE_FREQ = 4, 2


def fairseq_setup(data, *flags):
    parser = options.get_training_parser()
    argv = [str(data), "--user-dir", str(PLUGIN), *TINY_MODEL, *TRAINING, *flags]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, argv))
    torch.manual_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    return cfg, task, model, criterion


def grouped_batches(trainer, count):
    epoch_itr = trainer.get_train_iterator(epoch=1, load_dataset=True)
    batches = iterators.GroupedIterator(epoch_itr.next_epoch_itr(shuffle=True), UPDATE_FREQ)
    groups = [next(batches) for _ in range(count)]
    assert all(len(group) == UPDATE_FREQ for group in groups)
    return groups


def reference_loop(method, model, criterion, groups, validation, cfg):
    """The README's plain loop: fairseq's Adam (its own class) as the base of a LETSOptimizer, one step per update."""
    values = {"rho": 0.05, "lets_preset": "paper", "rho_lr": 0.05}
    rule, radius = build_method(method, values, seed=cfg.common.seed, total_steps=UPDATES)
    optimizer = LETSOptimizer(
        list(model.parameters()), Adam, perturbation=rule, radius=radius, lr=0.003, betas=(0.9, 0.98), weight_decay=1e-4
    )
    for k, samples in enumerate(groups):
        tokens = sum(sample["ntokens"] for sample in samples)
        batch = validation.batch(k)
        closure = lambda: sum(criterion(model, sample)[0] for sample in samples) / tokens  # noqa: E731
        val_closure = lambda: criterion(model, batch)[0] / batch["ntokens"]  # noqa: E731
        optimizer.step(closure, val_closure, model=model)
    return optimizer


@pytest.mark.parametrize("method", ["lets_sam", "lets_asam", "sam", "asam"])
def test_the_plugins_update_is_the_plain_lets_optimizer_loop(toy_data, method):
    flags = [*LETS_SAM, "--lets-optim", method, "--update-freq", str(UPDATE_FREQ)]  # the last --lets-optim counts
    cfg, task, model, criterion = fairseq_setup(toy_data, *flags)
    reference_model = copy.deepcopy(model)
    initial = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(cfg, task, model, criterion)
    groups = grouped_batches(trainer, UPDATES)
    for samples in groups:
        trainer.train_step(samples)
    plugin = trainer.optimizer.lets

    validation = sys.modules["fairseq_lets.validation"].validation_batches(
        task,
        "train",
        reference_model,
        cfg.dataset.max_tokens,
        None,
        cfg.dataset.required_batch_size_multiple,
        cfg.common.seed,
    )
    reference = reference_loop(method, reference_model, criterion, groups, validation, cfg)

    assert plugin.steps == reference.steps == UPDATES
    if method.startswith("lets_"):  # rho moved: the comparison below is not of two idle radii
        assert abs(plugin.rho - 0.05) > 1e-3
    else:
        assert plugin.rho == 0.05
    assert plugin.rho == pytest.approx(reference.rho, rel=1e-6)
    compared = 0
    for (name, ours), theirs in zip(model.named_parameters(), reference_model.parameters(), strict=True):
        if not name.endswith("k_proj.bias"):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=3e-5, msg=lambda m: f"{name}: {m}")
            compared += ours.numel()
    assert compared > 0.9 * sum(p.numel() for p in model.parameters())
    assert all(not torch.equal(p, p0) for p, p0 in zip(model.parameters(), initial))  # and not of idle models
