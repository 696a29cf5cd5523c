"""Every SAM variant against its paper's definition, alone and with the learned radius."""
import math

import pytest
import torch

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.arguments import SAM_FAMILY
from lets_hf.foreach import dot
from lets_hf.perturbation import (ESAM, GSAM, RST, AdaptivePolicy, LookSAM, PERTURBATIONS, get_perturbation,
                                  sharpness_sensitive_subset)

from lets_testing import tiny_batches, tiny_deberta, tiny_mlp, token_dataset
from test_optimizer import loss_fn
from trainer_helpers import SequentialLETSTrainer, lets_args


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


def test_esam_perturbs_a_beta_share_of_tensors_and_keeps_g_on_the_rest():
    params = [torch.zeros(2) for _ in range(2000)]
    grads = [torch.ones(2) for _ in params]
    rule = ESAM(beta=0.3, seed=4)
    rule.perturbation_(params, grads, torch.tensor(0.1, dtype=torch.float64))
    kept = sum(rule.selected)
    assert abs(kept / 2000 - 0.3) < 0.03
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    assert norm == pytest.approx(0.1 / 0.3 * math.sqrt(kept / 2000), rel=1e-6)  # rho / beta on the selected share
    assert all(bool((g == 0).all()) != keep for g, keep in zip(grads, rule.selected))
    hats, clean = [torch.full((2,), 5.0) for _ in params], [torch.full((2,), 7.0) for _ in params]
    rule.descent_gradient_(params, hats, clean)
    assert all(float(h[0]) == (5.0 if keep else 7.0) for h, keep in zip(hats, rule.selected))
    same_draw = ESAM(beta=0.3, seed=4)
    same_draw.perturbation_(params, [torch.ones(2) for _ in params], torch.tensor(0.1, dtype=torch.float64))
    assert same_draw.selected == rule.selected  # every rank draws the same subset


def test_esam_data_selection_keeps_the_largest_loss_rises():
    clean = torch.tensor([1.0, 1.0, 1.0, 1.0])
    perturbed = torch.tensor([1.5, 1.1, 2.0, 0.9])
    assert sorted(sharpness_sensitive_subset(clean, perturbed, 0.5).tolist()) == [0, 2]
    assert sharpness_sensitive_subset(clean, perturbed, 0.1).tolist() == [2]


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
    for step in range(steps):
        x, y = tiny_batches(step)
        loss = loss_fn(model(x), y)
        loss.backward()
        passes += 1
        opt.first_step(zero_grad=True)
        if opt.is_perturbed:
            loss_fn(model(x), y).backward()
            passes += 1
        opt.second_step(zero_grad=True)
        if opt.hyper_step_due:
            xv, yv = tiny_batches(100 + step)
            opt.hyper_step(loss_fn(model(xv), yv), loss_fn(model(x), y))
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
        SequentialLETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path, optim="esam", esam_gamma=0.5),
                              train_dataset=token_dataset(32))
