"""Every SAM variant against its paper's definition or its authors' code, alone and with the learned radius."""

import copy
import math

import pytest
import torch
from lets_testing import loss_fn, tiny_batches, tiny_deberta, tiny_mlp, token_dataset
from trainer_helpers import SequentialLETSTrainer, lets_args

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.arguments import SAM_FAMILY
from lets_hf.foreach import dot
from lets_hf.optimizer import Phase
from lets_hf.perturbation import (
    ESAM,
    ESAM_FORMS,
    GSAM,
    PERTURBATIONS,
    RST,
    AdaptivePolicy,
    LookSAM,
    get_perturbation,
    sharpness_sensitive_subset,
    variant_options,
)


def _vectors(seed, shapes=((3, 4), (4,))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


def test_gsam_descends_along_g_hat_minus_alpha_times_the_orthogonal_part():
    g, g_hat = _vectors(1), _vectors(2)
    flat_g, flat_hat = torch.cat([t.flatten() for t in g]), torch.cat([t.flatten() for t in g_hat])
    orthogonal = flat_g - flat_g.dot(flat_hat) / flat_hat.dot(flat_hat) * flat_hat
    assert orthogonal.dot(flat_hat).abs() < 1e-12
    grads = [t.clone() for t in g_hat]
    GSAM(alpha=0.3).descent_gradient_(None, grads, g)
    torch.testing.assert_close(torch.cat([t.flatten() for t in grads]), flat_hat - 0.3 * orthogonal)
    grads = [t.clone() for t in g_hat]
    GSAM(alpha=0.0).descent_gradient_(None, grads, g)
    assert all(torch.equal(a, b) for a, b in zip(grads, g_hat))  # alpha = 0 is SAM


@pytest.mark.parametrize("form", ESAM_FORMS)
def test_esam_perturbs_a_beta_share_of_tensors(form):
    params = [torch.zeros(2) for _ in range(2000)]
    grads = [torch.ones(2) for _ in params]
    rule = ESAM(beta=0.3, seed=4, form=form)
    rule.perturbation_(params, grads, torch.tensor(0.1, dtype=torch.float64))
    kept = sum(rule.selected)
    assert abs(kept / 2000 - 0.3) < 0.03
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    share = 1.0 if form == "official" else math.sqrt(kept / 2000)  # official: the norm is over the selected only
    assert norm == pytest.approx(0.1 / 0.3 * share, rel=1e-6)
    assert all(bool((g == 0).all()) != keep for g, keep in zip(grads, rule.selected))
    hats, clean = [torch.full((2,), 5.0) for _ in params], [torch.full((2,), 7.0) for _ in params]
    rule.descent_gradient_(params, hats, clean)
    descends_with_g = form == "clean_unselected"
    assert all(float(h[0]) == (7.0 if descends_with_g and not keep else 5.0) for h, keep in zip(hats, rule.selected))
    same_draw = ESAM(beta=0.3, seed=4, form=form)
    same_draw.perturbation_(params, [torch.ones(2) for _ in params], torch.tensor(0.1, dtype=torch.float64))
    assert same_draw.selected == rule.selected  # every rank draws the same subset


def authors_esam_step(model, base, x, y, selected, rho, beta, form):
    """One ESAM step with weight perturbation as Du et al.'s code takes it (``form="official"``): the unselected
    tensors get no first gradient, the ascent ``rho / beta * g_S / ||g_S||`` moves the selected ones, and every
    tensor descends with ``g_hat``; ``clean_unselected``: the norm over all, ``g`` for the unselected."""
    params = list(model.parameters())
    g = torch.autograd.grad(loss_fn(model(x), y), params)
    g_selected = [gi if keep else torch.zeros_like(gi) for gi, keep in zip(g, selected)]
    norm = torch.sqrt(sum((t * t).sum() for t in (g_selected if form == "official" else g)))
    e = [rho / beta * gi / norm if norm > 0 else torch.zeros_like(gi) for gi in g_selected]  # none selected: 0
    with torch.no_grad():
        for p, ei in zip(params, e):
            p.add_(ei)
    g_hat = torch.autograd.grad(loss_fn(model(x), y), params)
    with torch.no_grad():
        for p, ei in zip(params, e):
            p.sub_(ei)
    for p, gh, gi, keep in zip(params, g_hat, g, selected):
        p.grad = gh if form == "official" or keep else gi
    base.step()
    base.zero_grad()


@pytest.mark.parametrize("form", ESAM_FORMS)
def test_esam_follows_the_authors_update_for_ten_steps(form):
    model = tiny_mlp()
    reference = copy.deepcopy(model)
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
    rule = ESAM(beta=0.5, seed=3, form=form)
    opt = LETSOptimizer(model.parameters(), torch.optim.SGD, perturbation=rule, radius=0.1, **sgd)
    base = torch.optim.SGD(reference.parameters(), **sgd)
    draws = []
    for step in range(10):
        x, y = tiny_batches(20 + step)
        opt.step(lambda: loss_fn(model(x), y))
        draws.append(sum(rule.selected))
        authors_esam_step(reference, base, x, y, rule.selected, rho=0.1, beta=0.5, form=form)
    assert any(0 < n < 4 for n in draws)  # some steps perturb a proper subset
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_esam_data_selection_keeps_the_largest_loss_rises():
    clean = torch.tensor([1.0, 1.0, 1.0, 1.0])
    perturbed = torch.tensor([1.5, 1.1, 2.0, 0.9])
    assert sorted(sharpness_sensitive_subset(clean, perturbed, 0.5).tolist()) == [0, 2]
    assert sharpness_sensitive_subset(clean, perturbed, 0.1).tolist() == [2]
    rise = torch.tensor([0.5, 0.1, 1.0, -0.1, 0.3])  # ceil(0.5 * 5) = 3 (the official code keeps int(2.5) - 1 = 1)
    assert sorted(sharpness_sensitive_subset(torch.zeros(5), rise, 0.5).tolist()) == [0, 2, 4]


def test_rst_takes_sam_steps_at_rate_p_identically_on_every_rank():
    schedule = [RST(p=0.3, seed=1).plans_sam_step(t) for t in range(4000)]
    assert abs(sum(schedule) / 4000 - 0.3) < 0.025
    assert schedule == [RST(p=0.3, seed=1).plans_sam_step(t) for t in range(4000)]
    assert schedule != [RST(p=0.3, seed=2).plans_sam_step(t) for t in range(4000)]


def test_looksam_stores_the_orthogonal_part_and_reuses_it():
    rule = LookSAM(k=5, alpha=0.7)
    params, g, g_s = _vectors(0), _vectors(1), _vectors(2)
    rule.descent_gradient_(params, [t.clone() for t in g_s], g)
    g_v = [rule.orthogonal[p] for p in params]
    assert abs(float(dot(g_v, g))) < 1e-12
    new_g = _vectors(3)
    grads = [t.clone() for t in new_g]
    rule.erm_gradient_(params, grads)
    norm = lambda ts: math.sqrt(float(dot(ts, ts)))
    expected = [n + 0.7 * norm(new_g) / norm(g_v) * v for n, v in zip(new_g, g_v)]
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    assert [rule.plans_sam_step(t) for t in range(6)] == [True, False, False, False, False, True]


def _looksam_run(model, step_fn, steps=7):
    for step in range(steps):
        x, y = tiny_batches(10 + step)
        step_fn(model, x, y)


@pytest.mark.parametrize("split", ["tensor", "whole"])
def test_looksam_per_tensor_equals_pytorch_optimizer(split):
    """``split="tensor"`` is pytorch_optimizer 4.1's LookSAM, in float64 up to its float32 gradient norm and the
    1e-8 it adds to ``||g_v||`` (4.5e-8 apart after 7 steps); the paper's whole-gradient form, the default, is 4e-2
    apart."""
    from pytorch_optimizer import LookSAM as ReferenceLookSAM

    model = tiny_mlp()
    reference = copy.deepcopy(model)
    sgd = dict(lr=0.1, momentum=0.9)
    ours = LETSOptimizer(
        model.parameters(), torch.optim.SGD, perturbation=LookSAM(k=3, alpha=0.7, split=split), radius=0.5, **sgd
    )
    theirs = ReferenceLookSAM(reference.parameters(), torch.optim.SGD, rho=0.5, k=3, alpha=0.7, **sgd)

    def our_step(net, x, y):
        ours.step(lambda: loss_fn(net(x), y))

    def their_step(net, x, y):
        def closure():
            theirs.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            return loss

        closure()
        theirs.step(closure)
        theirs.zero_grad()

    _looksam_run(model, our_step)
    _looksam_run(reference, their_step)
    gap = max(float((p - q).detach().abs().max()) for p, q in zip(model.parameters(), reference.parameters()))
    assert gap < 1e-6 if split == "tensor" else gap > 1e-3


def test_adaptive_policy_switches_on_a_synthetic_gradient_norm_sequence():
    policy = AdaptivePolicy(delta=0.5, lambda1=1.0, lambda2=1.0)
    decisions = [policy.use_sam(t, x) for t, x in enumerate([4.0, 4.0, 4.0, 16.0, 4.0, 1.0])]
    # by hand: mu 2, 3, 3.5, 9.75, 6.875, 3.9375; sigma^2 2, 1.5, 0.875, 19.97, 14.12, 11.37;
    # thresholds mu + sigma: 3.41, 4.22, 4.44, 14.22, 10.63, 7.31
    assert decisions == [True, False, False, True, False, False]
    schedule = AdaptivePolicy(lambda1=1.0, lambda2=-1.0, total_steps=11)
    assert [schedule.threshold_factor(t) for t in (0, 5, 10)] == pytest.approx([1.0, 0.0, -1.0])


def _count_loop(rule_name, steps=10, learned=False):
    model = tiny_mlp()
    radius = LETSRadius(rho=0.1, lr=0.05, hvp="finite_difference") if learned else 0.1
    rule = get_perturbation(rule_name, **({"total_steps": steps} if rule_name.startswith("ae_") else {}))
    opt = LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.1, perturbation=rule, radius=radius)
    passes = 0

    def closure():  # counts the ascent and perturbed passes, not the hyper step's
        nonlocal passes
        passes += opt.phase is not Phase.HYPER_DUE
        return loss_fn(model(x), y)

    for step in range(steps):
        x, y = tiny_batches(step)
        xv, yv = tiny_batches(100 + step)
        opt.step(closure, lambda: loss_fn(model(xv), yv))
    return opt, passes


def test_looksam_runs_one_pass_between_sam_steps():
    _, passes = _count_loop("looksam", steps=10)
    assert passes == 10 + 2  # SAM steps 0 and 5 take two passes, the other eight one


@pytest.mark.parametrize("rule", sorted(PERTURBATIONS))
def test_every_lets_variant_moves_rho(rule):
    opt, _ = _count_loop(rule, steps=10, learned=True)
    assert opt.radius.updates >= 1 and opt.rho != pytest.approx(0.1, rel=1e-6)
    assert all(torch.isfinite(p).all() for group in opt.param_groups for p in group["params"])


@pytest.mark.parametrize("name", SAM_FAMILY)
def test_every_optim_name_trains_in_the_trainer(tmp_path, name):
    args = lets_args(tmp_path, optim=name, max_steps=3, logging_steps=3)
    trainer = SequentialLETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(48))
    trainer.train()
    assert trainer.lets_optimizer.rule.name == name.removeprefix("lets_")
    row = next(r for r in trainer.state.log_history if "lets_passes_per_step" in r)
    assert 1 <= row["lets_passes_per_step"] <= 4
    if name.startswith("lets_"):
        rule = trainer.lets_optimizer.rule
        planned = sum(rule.plans_sam_step(t) for t in range(3))
        updates = trainer.lets_optimizer.radius.updates
        assert updates == planned if not name.startswith("lets_ae_") else 1 <= updates <= 3
        assert row["lets_passes_per_step"] == pytest.approx((4 * updates + (3 - updates)) / 3)


def test_esam_rule_selects_examples_and_the_trainer_refuses_selection(tmp_path):
    rule = ESAM(gamma=0.5)
    assert sorted(rule.select_examples(torch.ones(4), torch.tensor([1.5, 1.1, 2.0, 0.9])).tolist()) == [0, 2]
    assert ESAM().select_examples(torch.ones(3), torch.zeros(3)).numel() == 3  # gamma 1: every example
    with pytest.raises(ValueError, match="esam_gamma < 1"):
        SequentialLETSTrainer(
            model=tiny_deberta(),
            args=lets_args(tmp_path, optim="esam", esam_gamma=0.5),
            train_dataset=token_dataset(32),
        )


NAMED_OPTIONS = [
    ("lets_esam", "esam_form", "clean_unselected", "form"),
    ("looksam", "looksam_split", "tensor", "split"),
    ("lets_ae_looksam", "looksam_split", "tensor", "split"),
]


@pytest.mark.parametrize("optim, option, value, attribute", NAMED_OPTIONS)
def test_named_variant_options_reach_the_rule_from_lets_arguments(tmp_path, optim, option, value, attribute):
    from lets_hf.arguments import LETSArguments

    default = LETSArguments(output_dir=str(tmp_path), optim=optim).build_perturbation()
    assert getattr(default, attribute) == variant_options()[option].default == variant_options()[option].choices[0]
    # official ESAM, the paper's LookSAM
    chosen = LETSArguments(output_dir=str(tmp_path), optim=optim, **{option: value}).build_perturbation()
    assert getattr(chosen, attribute) == value
    with pytest.raises(ValueError, match=f"{option} must be one of"):
        LETSArguments(output_dir=str(tmp_path), optim=optim, **{option: "bogus"})
