"""LETSTrainer against the plain-PyTorch loop, across gradient accumulation, checkpoints and precisions."""

import json

import pytest
import torch
from lets_testing import tiny_deberta, token_dataset
from trainer_helpers import SequentialLETSTrainer, lets_args, lm_dataset, reference_loop, tiny_gpt2

from lets_hf.trainer import LETSTrainer


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    "optim, base",
    [
        ("sam", {}),
        ("asam", {}),
        ("lets_sam", {}),
        ("lets_asam", {}),
        ("lets_sam", dict(lets_base_optim="adamw_torch", lets_descent="adam", learning_rate=1e-2, rho_lr=0.2)),
        ("lets_sam", dict(lets_objective="val", lets_val_term="next", lets_val_batch_size=None)),  # none drawn
    ],
)
def test_trainer_matches_the_plain_pytorch_loop(tmp_path, optim, base):
    data = token_dataset(64)
    args = lets_args(tmp_path, optim=optim, **base)
    trainer = SequentialLETSTrainer(model=tiny_deberta(), args=args, train_dataset=data)
    trainer.train()
    reference_model = tiny_deberta()
    reference = reference_loop(reference_model, data, args, steps=args.max_steps)
    torch.testing.assert_close(_weights(trainer.model), _weights(reference_model), rtol=1e-5, atol=1e-6)
    assert trainer.lets_optimizer.rho == pytest.approx(reference.rho, rel=1e-6)
    if optim.startswith("lets_"):
        assert trainer.lets_optimizer.rho != pytest.approx(0.1, rel=1e-3)


def _classifier_that_says_it_ignores_num_items():
    model = tiny_deberta()
    model.accepts_loss_kwargs = False  # its forward takes **kwargs but ignores num_items_in_batch: Trainer's switch
    return model


@pytest.mark.parametrize(
    "build, data", [(_classifier_that_says_it_ignores_num_items, token_dataset(64)), (tiny_gpt2, lm_dataset(64))]
)  # labels masked: 1 to 9 tokens a row
def test_gradient_accumulation_has_whole_batch_semantics(tmp_path, build, data):
    """Trainer's normalisation (per micro-batch mean / steps, or a sum over num_items_in_batch) in every pass."""
    results = []
    for batch, accumulation in ((16, 1), (8, 2), (4, 4)):
        args = lets_args(
            tmp_path, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, optim="lets_asam"
        )
        trainer = SequentialLETSTrainer(model=build(), args=args, train_dataset=data)
        trainer.train()
        results.append((_weights(trainer.model), trainer.lets_optimizer.rho))
    for weights, rho in results[1:]:
        torch.testing.assert_close(weights, results[0][0], rtol=1e-5, atol=1e-6)
        assert rho == pytest.approx(results[0][1], rel=1e-6)
    assert results[0][1] != pytest.approx(0.1, rel=1e-3)


@pytest.mark.parametrize(
    "rule, updates",
    [
        (dict(), 6),
        # LookSAM k=2: SAM steps 0, 2, 4; with train_term="next" each update lands at the following step
        (dict(lets_train_term="next", optim="lets_looksam", looksam_k=2), 3),
        (dict(lets_objective="val", lets_val_term="next", lets_val_batch_size=None), 5),  # 6th update: a 7th step
    ],
)
def test_resume_from_checkpoint_is_bit_exact(tmp_path, rule, updates):
    data = token_dataset(96)
    common = dict(
        max_steps=6,
        save_strategy="steps",
        save_steps=3,
        optim="lets_sam",
        lets_base_optim="adamw_torch",
        learning_rate=1e-3,
        lr_scheduler_type="linear",
        warmup_steps=2,
    )
    common.update(rule)
    full = LETSTrainer(model=tiny_deberta(dropout=0.1), args=lets_args(tmp_path / "a", **common), train_dataset=data)
    full.train()

    resumed = LETSTrainer(model=tiny_deberta(dropout=0.1), args=lets_args(tmp_path / "b", **common), train_dataset=data)
    checkpoint = tmp_path / "a" / "out" / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").exists()
    resumed.train(resume_from_checkpoint=str(checkpoint))

    assert torch.equal(_weights(full.model), _weights(resumed.model))
    assert resumed.lets_optimizer.rho == full.lets_optimizer.rho != 0.1
    assert resumed.lets_optimizer.radius.updates == full.lets_optimizer.radius.updates == updates


def test_training_args_json_keeps_the_lets_name(tmp_path):
    args = lets_args(tmp_path, max_steps=1, save_strategy="steps", save_steps=1)
    trainer = LETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(16))
    trainer.train()
    saved = json.loads(args.to_json_string())
    assert saved["optim"] == "lets_sam" and saved["lets_hvp"] == "finite_difference"
    state = json.loads((tmp_path / "out" / "checkpoint-1" / "trainer_state.json").read_text())
    (row,) = state["log_history"]  # Trainer's one entry, with the radius
    assert row["rho_start"] == pytest.approx(0.1) and row["step"] == 1
    assert {"loss", "rho", "lets_gap", "lets_hypergradient", "lets_ascent_grad_norm"} <= set(row)


def test_stock_optim_is_plain_erm(tmp_path):
    args = lets_args(tmp_path, optim="sgd", max_steps=2)
    trainer = SequentialLETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(32))
    trainer.train()
    assert trainer.lets_optimizer is None and isinstance(trainer.optimizer.optimizer, torch.optim.SGD)
    assert "rho" not in trainer.state.log_history[0]


def _fp16_trainer(tmp_path, data, max_steps):
    """fp16 with a real GradScaler (accelerate gives CPU runs none: the CUDA path, made testable here)."""
    args = lets_args(tmp_path, fp16=True, max_steps=max_steps)
    trainer = LETSTrainer(model=tiny_deberta(), args=args, train_dataset=data)
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer.accelerator.native_amp = True  # so that clipping unscales first, as on CUDA
    return trainer


def test_bf16_runs_and_learns_rho(tmp_path):
    args = lets_args(tmp_path, bf16=True, lets_base_optim="adamw_torch", learning_rate=1e-3, max_steps=3)
    trainer = LETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(32))
    trainer.train()
    assert trainer.lets_optimizer.radius.updates == 3 and trainer.lets_optimizer.rho != 0.1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_fp16_with_scaler_unscales_the_hyper_math(tmp_path):
    """The scaled run's rho and weights equal an unscaled run's: b and a are unscaled before use."""
    data = token_dataset(32)
    scaled = _fp16_trainer(tmp_path / "s", data, max_steps=3)
    scaled.train()
    assert scaled.accelerator.scaler.get_scale() == 2.0**10
    plain = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path / "p", fp16=True, max_steps=3), train_dataset=data
    )
    plain.train()
    assert scaled.lets_optimizer.radius.updates == 3
    logged = lambda trainer, key: [row[key] for row in trainer.state.log_history if key in row]
    # equal up to fp16 rounding (a missing unscale would be off by 2^10 or 2^20)
    for key in ("lets_hypergradient", "lets_ascent_grad_norm"):
        assert logged(scaled, key) == pytest.approx(logged(plain, key), rel=5e-2)
    assert scaled.lets_optimizer.rho == pytest.approx(plain.lets_optimizer.rho, rel=1e-3)
    torch.testing.assert_close(_weights(scaled.model), _weights(plain.model), rtol=1e-3, atol=1e-4)


def test_fp16_overflow_in_the_ascent_pass_skips_the_step(tmp_path):
    trainer = _fp16_trainer(tmp_path, token_dataset(16), max_steps=1)
    before = _weights(trainer.model).clone()
    backward_calls = []

    def overflow_first_backward(grad):  # only the ascent pass overflows, as an fp16 overflow would
        backward_calls.append(1)
        return grad * float("inf") if len(backward_calls) == 1 else grad

    trainer.model.get_input_embeddings().weight.register_hook(overflow_first_backward)
    trainer.train()
    assert len(backward_calls) == 1  # the ascent pass only: no descent or hyper pass ran
    assert trainer.accelerator.optimizer_step_was_skipped
    assert trainer.accelerator.scaler.get_scale() == 2.0**9
    assert torch.equal(_weights(trainer.model), before)
    assert trainer.lets_optimizer.radius.updates == 0
    assert trainer.lets_optimizer.rho == pytest.approx(0.1, rel=1e-12)
    assert trainer.lets_optimizer.skipped_ascents == 1
