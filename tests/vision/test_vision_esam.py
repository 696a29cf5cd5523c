"""ESAM's data selection in vision/train.py against the authors' algorithm: the perturbed pass runs on the kept
examples only, so that BatchNorm normalises them with their own batch statistics (as Du et al.'s code does); and
the variants' named options (ESAM's form, LookSAM's split) on the command line."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lets_hf import LETSOptimizer, frozen_batchnorm_stats
from lets_hf.perturbation import ESAM
from vision import train
from vision.config import parse_config

RHO, GAMMA, SGD = 0.5, 0.5, dict(lr=0.1, momentum=0.9, weight_decay=5e-4)


def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def batches(steps=3, n=10):
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(n, 3, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)) for _ in range(steps)]


def authors_sds_step(model, base, images, labels, kept_only):
    """One SAM step with ESAM's data selection (beta = 1): the clean pass on the batch, the per-example loss rise
    at ``theta + e`` without gradient, then the perturbed pass on the ``ceil(gamma n)`` examples with the largest
    rise (``kept_only``; else on the whole batch with the loss averaged over them, the former lets_hf)."""
    params = list(model.parameters())
    clean = F.cross_entropy(model(images), labels, reduction="none")
    g = torch.autograd.grad(clean.mean(), params)
    norm = torch.sqrt(sum((t * t).sum() for t in g))
    e = [RHO * gi / norm for gi in g]
    with torch.no_grad():
        torch._foreach_add_(params, e)
    with frozen_batchnorm_stats(model):  # the library's convention: only the clean pass moves the statistics
        with torch.no_grad():
            rise = F.cross_entropy(model(images), labels, reduction="none") - clean.detach()
        kept = torch.topk(rise, math.ceil(GAMMA * len(labels))).indices
        if kept_only:
            loss = F.cross_entropy(model(images[kept]), labels[kept])
        else:
            loss = F.cross_entropy(model(images), labels, reduction="none")[kept].mean()
        g_hat = torch.autograd.grad(loss, params)
    with torch.no_grad():
        torch._foreach_sub_(params, e)
    for p, gh in zip(params, g_hat):
        p.grad = gh
    base.step()
    base.zero_grad()


@pytest.mark.parametrize("kept_only", [True, False])
def test_esam_data_selection_runs_the_perturbed_pass_on_the_kept_examples(kept_only):
    model = conv_net()
    reference = copy.deepcopy(model)
    optimizer = LETSOptimizer(
        model.parameters(), torch.optim.SGD, perturbation=ESAM(beta=1.0, gamma=GAMMA), radius=RHO, **SGD
    )
    stepper = train.Stepper(model, optimizer, train.Accelerator(cpu=True), None)
    base = torch.optim.SGD(reference.parameters(), **SGD)
    model.train()
    reference.train()
    for images, labels in batches():
        stepper(images, labels)
        authors_sds_step(reference, base, images, labels, kept_only)
    gap = max(float((p - q).detach().abs().max()) for p, q in zip(model.parameters(), reference.parameters()))
    if not kept_only:  # the whole-batch pass normalises with the whole batch's statistics: another update
        assert gap > 1e-3
        return
    assert gap < 1e-5
    for name, buffer in reference.named_buffers():  # the running statistics: the clean passes' only
        torch.testing.assert_close(dict(model.named_buffers())[name], buffer, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "method, flag, value, attribute",
    [("lets_esam", "--esam_form", "clean_unselected", "form"), ("looksam", "--looksam_split", "tensor", "split")],
)
def test_named_variant_options_reach_the_rule_from_the_command_line(method, flag, value, attribute, capsys):
    rule, _ = parse_config(["--method", method, flag, value]).build_method(total_steps=10)
    assert getattr(rule, attribute) == value
    with pytest.raises(SystemExit):
        parse_config(["--method", method, flag, "bogus"])
    error = capsys.readouterr().err
    assert f"argument {flag}: 'bogus' is not one of " in error and value in error.splitlines()[-1]
