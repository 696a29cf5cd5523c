"""What LETSTrainer refuses, where its validation batches come from, and what BatchNorm sees."""

import pytest
import torch
from lets_testing import tiny_deberta, token_dataset
from trainer_helpers import lets_args
from transformers import Trainer

from lets_hf.trainer import LETSTrainer


def test_deepspeed_is_refused_at_construction(tmp_path, monkeypatch):
    """FSDP1/FSDP2 and the other refusals: tests/test_fsdp.py."""
    stock_init = Trainer.__init__

    def init_with_deepspeed(self, *args, **kwargs):
        stock_init(self, *args, **kwargs)
        self.is_deepspeed_enabled = True

    monkeypatch.setattr(Trainer, "__init__", init_with_deepspeed)
    with pytest.raises(ValueError, match="does not run under DeepSpeed.*FSDP2 instead.*DDP"):
        LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path), train_dataset=token_dataset(16))
    LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path, optim="adamw_torch"), train_dataset=token_dataset(16))


def test_validation_batches_come_from_the_training_set_by_default(tmp_path):
    train = token_dataset(32, seed=1)
    trainer = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path), train_dataset=train, eval_dataset=token_dataset(32, seed=2)
    )
    validation = trainer.build_validation_batches()  # what train() builds
    assert validation.dataset is train
    batch = validation.batch(0)
    assert batch["input_ids"].shape == (8, 12)
    assert sorted(
        validation.indices(0) + validation.indices(1) + validation.indices(2) + validation.indices(3)
    ) == list(range(32))  # one pass sees every example once


class BatchRecordingTrainer(LETSTrainer):
    """Records the rows of each step's training batch and of its validation batch."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.setdefault("train", []).append({tuple(row.tolist()) for row in inputs["input_ids"]})
        return super().training_step(model, inputs, num_items_in_batch)

    def lets_hyper_step(self):
        rows = self._validation.batch(self.state.global_step)["input_ids"]
        self.seen.setdefault("val", []).append({tuple(row.tolist()) for row in rows})
        return super().lets_hyper_step()


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_the_validation_batch_is_not_the_training_batch(tmp_path, seed):
    """The stock sampler shuffles with torch.Generator().manual_seed(seed + epoch) (accelerate's
    SeedableRandomSampler); the validation stream must not replay that permutation (it did for seed 0)."""
    trainer = BatchRecordingTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path, seed=seed, max_steps=8), train_dataset=token_dataset(32)
    )
    trainer.seen = {}
    trainer.train()
    train, val = trainer.seen["train"], trainer.seen["val"]
    assert len(train) == len(val) == 8 and all(len(rows) == 8 for rows in train + val)
    overlaps = [len(t & v) for t, v in zip(train, val)]
    assert max(overlaps) < 8 and sum(overlaps) / len(overlaps) < 4, overlaps  # random batches share about 2 rows


def test_held_out_and_eval_sources(tmp_path):
    held_out, evaluation = token_dataset(16, seed=3), token_dataset(16, seed=4)
    trainer = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path), train_dataset=token_dataset(32), lets_val_dataset=held_out
    )
    assert trainer.build_validation_batches().dataset is held_out
    trainer = LETSTrainer(
        model=tiny_deberta(),
        args=lets_args(tmp_path, lets_val_source="eval"),
        train_dataset=token_dataset(32),
        eval_dataset=evaluation,
    )
    assert trainer.build_validation_batches().dataset is evaluation
    trainer = LETSTrainer(
        model=tiny_deberta(), args=lets_args(tmp_path, lets_val_source="eval"), train_dataset=token_dataset(32)
    )
    with pytest.raises(ValueError, match="lets_val_source='eval' needs a single eval_dataset"):
        trainer.train()
    with pytest.raises(ValueError, match="fewer than one batch of 8"):  # a dataset it has is checked at once
        LETSTrainer(
            model=tiny_deberta(),
            args=lets_args(tmp_path),
            train_dataset=token_dataset(32),
            lets_val_dataset=token_dataset(4),
        )
    trainer = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path))
    trainer.train_dataset = token_dataset(4)  # ... and one set later, when train() starts
    with pytest.raises(ValueError, match="fewer than one batch of 8"):
        trainer.train()


class TinyConvNet(torch.nn.Module):
    """A BatchNorm model with the Trainer's calling convention (dict in, loss out)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(4, 2),
        )

    def forward(self, pixel_values, labels):
        return {"loss": torch.nn.functional.cross_entropy(self.body(pixel_values), labels)}


def test_batchnorm_statistics_move_only_in_the_clean_pass(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = [{"pixel_values": torch.randn(3, 6, 6, generator=g), "labels": i % 2} for i in range(16)]
    trainer = LETSTrainer(
        model=TinyConvNet(),
        args=lets_args(tmp_path, max_steps=1, per_device_train_batch_size=16, lets_val_batch_size=16),
        train_dataset=data,
    )
    reference = TinyConvNet().train()
    first_batch = next(iter(trainer.get_train_dataloader()))
    reference.body(first_batch["pixel_values"])  # the clean pass alone, once
    trainer.train()
    bn, expected = trainer.model.body[1], reference.body[1]
    assert trainer.lets_optimizer.radius.updates == 1  # the perturbed and the two hyper passes ran too
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, expected.running_mean)
    torch.testing.assert_close(bn.running_var, expected.running_var)


# -- Trainer's private names, and Trainer's public ones as Trainer has them --------------------------------
def test_the_private_trainer_names_used_are_there_and_a_missing_one_is_named_at_construction(tmp_path, monkeypatch):
    import transformers

    from lets_hf.trainer_parts import internals

    assert internals.missing_internals() == []  # the installed transformers has every listed name
    monkeypatch.delattr(Trainer, "_prepare_inputs")
    with pytest.raises(RuntimeError) as error:
        LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path), train_dataset=token_dataset(16))
    message = str(error.value)
    assert "Trainer._prepare_inputs" in message and "hyper step" in message
    assert f"transformers {transformers.__version__}" in message and internals.TESTED_TRANSFORMERS in message
    LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path, optim="adamw_torch"), train_dataset=token_dataset(16))


@pytest.mark.parametrize("optim", ["lets_sam", "sam", "adamw_torch", "sgd"])
def test_get_optimizer_cls_and_kwargs_is_callable_on_the_class_as_trainers(tmp_path, optim):
    from lets_hf import LETSOptimizer

    args = lets_args(tmp_path, optim=optim, lets_base_optim="adamw_torch")
    cls, kwargs = LETSTrainer.get_optimizer_cls_and_kwargs(args)
    if optim in ("adamw_torch", "sgd"):
        assert (cls, kwargs) == Trainer.get_optimizer_cls_and_kwargs(args)
    else:
        base_cls, base_kwargs = Trainer.get_optimizer_cls_and_kwargs(args.base_optimizer_arguments())
        assert cls is LETSOptimizer and kwargs["base_optimizer"] is base_cls
        assert {key: kwargs[key] for key in base_kwargs} == base_kwargs


def test_a_horizon_preset_runs_over_the_length_trainer_computes_from_epochs(tmp_path):
    """lets_preset robust sets rho's rate from the run's length: max_steps unset, it is Trainer's own count."""
    args = lets_args(tmp_path, lets_preset="robust", rho_lr=None, lets_hvp=None, max_steps=-1, num_train_epochs=2)
    trainer = LETSTrainer(model=tiny_deberta(), args=args, train_dataset=token_dataset(32))
    trainer.train()
    assert trainer.state.max_steps == 8  # 2 epochs of 32 / 8
    assert trainer.lets_optimizer.radius.lr == args.build_radius(total_steps=8).lr != args.probe_radius().lr


@pytest.mark.parametrize("optim", ["lets_sam", "adamw_torch"])
def test_a_checkpoint_that_cannot_be_resumed_keeps_trainers_message(tmp_path, optim):
    """Trainer's exception type and text first (transformers' own tests assert them), then what is wrong."""
    stock = Trainer(model=tiny_deberta(), args=lets_args(tmp_path / "s", optim="sgd"), train_dataset=token_dataset(16))
    ours = LETSTrainer(model=tiny_deberta(), args=lets_args(tmp_path, optim=optim), train_dataset=token_dataset(16))
    for resume in (str(tmp_path / "missing" / "checkpoint-15-bogus"), True):
        with pytest.raises(ValueError) as expected:
            stock.train(resume_from_checkpoint=resume)
        with pytest.raises(ValueError) as error:
            ours.train(resume_from_checkpoint=resume)
        told = str(expected.value).replace(str(tmp_path / "s" / "out"), str(tmp_path / "out"))
        assert str(error.value).startswith(told) and len(str(error.value)) > len(told)
