import pytest
import torch

from lets_hf.perturbation import ASAM, SAM, get_perturbation, named_weight_filter


def _params_and_grads(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    grads = [torch.randn_like(p) for p in params]
    return params, grads


def test_sam_is_rho_times_unit_gradient():
    params, grads = _params_and_grads()
    flat = torch.cat([g.flatten() for g in grads])
    expected = 0.3 * flat / flat.norm()
    SAM().perturbation_(params, grads, torch.tensor(0.3, dtype=torch.float64))
    got = torch.cat([g.flatten() for g in grads])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    assert got.norm().item() == pytest.approx(0.3, rel=1e-12)


def test_asam_is_t_squared_gradient_over_norm_of_t_gradient():
    params, grads = _params_and_grads()
    xi = 0.01
    t = [params[0].abs() + xi, torch.ones_like(params[1])]  # the bias (ndim 1) is not scaled by default
    tg = torch.cat([(ti * gi).flatten() for ti, gi in zip(t, grads)])
    expected = torch.cat([(0.5 * ti * ti * gi / tg.norm()).flatten() for ti, gi in zip(t, grads)])
    ASAM(xi=xi).perturbation_(params, grads, torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(torch.cat([g.flatten() for g in grads]), expected, rtol=1e-12, atol=0)


def test_asam_named_filter_follows_official_naming():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    accepts = named_weight_filter(model)
    assert [accepts(p) for p in model.parameters()] == [True, False, True, False]


@pytest.mark.parametrize("rule", [SAM(), ASAM()])
def test_zero_gradient_gives_zero_perturbation(rule):
    params, _ = _params_and_grads()
    grads = [torch.zeros_like(p) for p in params]
    rule.perturbation_(params, grads, torch.tensor(0.1, dtype=torch.float64))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_unknown_perturbation_and_bad_xi_are_rejected():
    with pytest.raises(
        ValueError,
        match=r"perturbation must be one of "
        r"\['ae_looksam', 'ae_sam', 'asam', 'esam', 'gsam', 'looksam', 'rst', 'sam'\]",
    ):
        get_perturbation("adam")
    with pytest.raises(ValueError, match="asam_xi must be >= 0"):
        ASAM(xi=-1)
