"""Hypergradient estimators: the worked example of ``docs/design.md`` ("Adding a hypergradient estimator") run as
written, registered with its one line; and the registry's refusals."""

import pytest
import torch
from lets_testing import ROOT, loss_fn, tiny_batches, tiny_mlp

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.radius.estimators import ESTIMATORS, register

STEPS = 4


@pytest.fixture(scope="module")
def persistent():
    """The first Python block of the section: the made-up estimator's module, registered for this module's tests."""
    section = (ROOT / "docs" / "design.md").read_text().split("### Adding a hypergradient estimator", 1)[1]
    namespace = {}
    exec(section.split("```python", 1)[1].split("```", 1)[0], namespace)
    register(namespace["PersistentTangent"])  # the one registration line
    yield namespace["PersistentTangent"]
    del ESTIMATORS["persistent_tangent"]


def build(estimator=None, **options):
    model = tiny_mlp(dtype=torch.float32)
    radius = LETSRadius(
        rho=0.1, lr=0.05, hvp="finite_difference", objective="val", estimator=estimator, estimator_options=options
    )
    return model, LETSOptimizer(model.parameters(), torch.optim.SGD, lr=0.3, momentum=0.9, radius=radius)


def run(model, optimizer, steps, after_step=lambda: None):
    for i in steps:
        (x, y), (xv, yv) = tiny_batches(i, dtype=torch.float32), tiny_batches(50 + i, dtype=torch.float32)
        optimizer.step(lambda: loss_fn(model(x), y), lambda: loss_fn(model(xv), yv))
        after_step()


def test_without_memory_the_persistent_tangent_is_the_one_step_rule(persistent):
    (model, mine), (reference_model, reference) = build("persistent_tangent", mu=0.0), build()
    assert isinstance(mine.estimator, persistent) and reference.estimator.name == "one_step"
    run(model, mine, range(1))
    run(reference_model, reference, range(1))
    torch.testing.assert_close(mine.last_hypergradient, reference.last_hypergradient, rtol=1e-6, atol=0)
    assert mine.last_hypergradient != 0 and set(mine.buffer_bytes()) == {"theta_t", "ascent_gradient", "tangent", "z"}


def test_the_persistent_tangent_follows_its_recurrence(persistent):
    model, optimizer = build("persistent_tangent", mu=0.5)
    z, tangents = [], []

    def record():
        z.append({p: t.clone() for p, t in optimizer.buffers("z").items()})
        tangents.append({p: t.clone() for p, t in optimizer.buffers("tangent").items()})

    run(model, optimizer, range(2), record)
    for p in model.parameters():  # Z_2 = mu Z_1 - eta J b_2 (the tangent holds J b after the step)
        torch.testing.assert_close(z[1][p], 0.5 * z[0][p] - 0.3 * tangents[1][p], rtol=1e-6, atol=1e-9)
    assert optimizer.radius.updates == 2


def test_a_resumed_run_continues_bit_for_bit(persistent, tmp_path):
    full_model, full = build("persistent_tangent", mu=0.5)
    run(full_model, full, range(STEPS))
    half_model, half = build("persistent_tangent", mu=0.5)
    run(half_model, half, range(STEPS // 2))
    torch.save({"model": half_model.state_dict(), "opt": half.state_dict()}, tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["opt"]["lets"]["estimator"]["z"]
    model, resumed = build("persistent_tangent", mu=0.5)
    model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["opt"])
    run(model, resumed, range(STEPS // 2, STEPS))
    assert resumed.rho == full.rho != 0.1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), full_model.parameters()))


def test_the_registry_refuses_a_second_name_and_an_unknown_one():
    with pytest.raises(ValueError, match="named 'one_step' is registered already"):
        register(ESTIMATORS["one_step"])
    with pytest.raises(ValueError, match="lets_estimator must be one of"):
        LETSRadius(estimator="two_step")
    with pytest.raises(ValueError, match="leave lets_train_term and lets_val_term at their defaults"):
        LETSRadius(estimator="one_step", train_term="next")


@pytest.mark.parametrize(
    "options, name",
    [({}, "one_step"), ({"train_term": "next"}, "next_train"), ({"objective": "val", "val_term": "next"}, "next_val")],
)
def test_lets_radius_picks_its_estimator_from_its_options(options, name):
    assert LETSRadius(**options).estimator.name == name
    assert LETSRadius(objective="val", train_term="next").estimator.name == "one_step"  # val has no train term
