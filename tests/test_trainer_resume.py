"""Resuming LETSTrainer after a crash: half-written checkpoints, finished runs, another configuration, lost state.

Every resumed run is compared bit for bit with the uninterrupted run (weights, rho, rho's Adam state,
the base optimizer's moments): lets_sam over AdamW with dropout, 8 steps, a checkpoint every 2.
"""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
from lets_testing import tiny_deberta, token_dataset
from resume_worker import MAX_STEPS, resume_trainer
from trainer_helpers import lets_args
from transformers import TrainerCallback

from lets_hf.trainer import LETSTrainer

HERE = os.path.dirname(__file__)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _base_moments(trainer):
    state = trainer.lets_optimizer.base_optimizer.state
    return torch.cat([state[p]["exp_avg"].flatten() for p in trainer.model.parameters() if p in state])


def assert_same_run(resumed, full):
    """Bit-exact: weights, rho, rho's Adam state and update count, AdamW's moments, the step count."""
    assert resumed.state.global_step == full.state.global_step == MAX_STEPS
    assert torch.equal(_weights(resumed.model), _weights(full.model))
    for key, value in full.lets_optimizer.radius.state_dict().items():
        assert torch.equal(resumed.lets_optimizer.radius.state_dict()[key], value), key
    assert resumed.lets_optimizer.rho == full.lets_optimizer.rho != 0.1
    assert torch.equal(_base_moments(resumed), _base_moments(full))
    assert _losses(resumed) == _losses(full)


def _losses(trainer):
    """The logged losses and the run's train_loss (the last row): a resumed run's are the whole run's."""
    return [(row["step"], row["loss"]) for row in trainer.state.log_history if "loss" in row] + [
        trainer.state.log_history[-1]["train_loss"]
    ]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted run; its checkpoints 2, 4, 6, 8 are the material of the crash tests."""
    root = tmp_path_factory.mktemp("full")
    trainer = resume_trainer(root)
    trainer.train()
    return trainer, root / "out"


def _copy_checkpoints(source, target, steps):
    target.mkdir(parents=True)
    for step in steps:
        shutil.copytree(source / f"checkpoint-{step}", target / f"checkpoint-{step}")
    return target


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# Folder checkpoint-6 as a kill inside its save leaves it (files are written in this order, trainer_state.json last).
DAMAGE = {
    "empty folder (killed right after mkdir)": lambda folder: [p.unlink() for p in folder.iterdir()],
    "weights cut short": lambda folder: (
        [_cut_in_half(folder / "model.safetensors")]
        + [p.unlink() for p in folder.iterdir() if p.name != "model.safetensors"]
    ),
    "optimizer.pt cut short": lambda folder: (
        [_cut_in_half(folder / "optimizer.pt")]
        + [(folder / n).unlink() for n in ("scheduler.pt", "rng_state.pth", "trainer_state.json")]
    ),
    "0-byte scheduler.pt": lambda folder: (
        [(folder / "scheduler.pt").write_bytes(b"")]
        + [(folder / n).unlink() for n in ("rng_state.pth", "trainer_state.json")]
    ),
    "no trainer_state.json (killed before the last file)": lambda folder: (folder / "trainer_state.json").unlink(),
    "trainer_state.json cut short": lambda folder: _cut_in_half(folder / "trainer_state.json"),
}


def _resume_newest(root, caplog):
    trainer = resume_trainer(root)
    with caplog.at_level(logging.WARNING, logger="lets_hf"):
        trainer.train(resume_from_checkpoint=True)
    return trainer


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_save_cut_short_is_passed_over_and_the_resume_is_bit_exact(tmp_path, full_run, caplog, damage):
    full, source = full_run
    out = _copy_checkpoints(source, tmp_path / "out", (2, 4, 6))
    DAMAGE[damage](out / "checkpoint-6")
    resumed = _resume_newest(tmp_path, caplog)
    assert_same_run(resumed, full)
    skipped = [r.getMessage() for r in caplog.records if "not resuming from" in r.getMessage()]
    assert len(skipped) == 1 and str(out / "checkpoint-6") in skipped[0]
    assert (out / "checkpoint-8" / "trainer_state.json").exists()


@pytest.mark.parametrize("kill", ["write:optimizer.pt@6", "step:5"])
def test_a_sigkilled_run_resumes_bit_exact(tmp_path, full_run, caplog, kill):
    """A real SIGKILL: inside a checkpoint write (the newest folder is half written) or between two saves."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE)] + sys.path)}
    process = subprocess.run(
        [sys.executable, os.path.join(HERE, "resume_worker.py"), str(tmp_path), kill],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == -9, process.stderr[-2000:]  # killed, not finished
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "checkpoint-4"] + (
        ["checkpoint-6"] if kill.startswith("write") else []
    )
    resumed = _resume_newest(tmp_path, caplog)
    assert_same_run(resumed, full_run[0])
    skipped = [r.getMessage() for r in caplog.records if "not resuming from" in r.getMessage()]
    if kill.startswith("write"):
        name = kill.split(":")[1].split("@")[0]
        assert len(skipped) == 1 and "checkpoint-6" in skipped[0] and name in skipped[0]
    else:
        assert not skipped


def test_a_checkpoint_between_two_logs_resumes_the_loss_tally(tmp_path):
    """Logs every 3 steps, checkpoints every 2: the resumed loss at step 6 averages steps 4-6, as uninterrupted."""
    full = resume_trainer(tmp_path / "a", logging_steps=3)
    full.train()
    resumed = resume_trainer(tmp_path / "b", logging_steps=3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "out" / "checkpoint-4"))
    assert_same_run(resumed, full)
    assert [row["step"] for row in resumed.state.log_history if "loss" in row] == [3, 6]


def test_a_checkpoint_given_by_name_must_be_complete(tmp_path, full_run):
    out = _copy_checkpoints(full_run[1], tmp_path / "out", (4,))
    (out / "checkpoint-4" / "optimizer.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"checkpoint-4.*optimizer\.pt: empty \(0 bytes\)"):
        resume_trainer(tmp_path).train(resume_from_checkpoint=str(out / "checkpoint-4"))
    with pytest.raises(ValueError, match=r"(?s)no complete checkpoint.*checkpoint-4: optimizer\.pt: empty"):
        resume_trainer(tmp_path).train(resume_from_checkpoint=True)


def test_restarting_a_finished_run_changes_nothing(tmp_path, full_run):
    full, source = full_run
    out = _copy_checkpoints(source, tmp_path / "out", (6, 8))
    state = (out / "checkpoint-8" / "trainer_state.json").read_text()
    for _ in range(2):
        restarted = resume_trainer(tmp_path)
        restarted.train(resume_from_checkpoint=True)
        assert restarted.state.global_step == MAX_STEPS
        assert torch.equal(_weights(restarted.model), _weights(full.model))
        assert restarted.lets_optimizer.rho == full.lets_optimizer.rho
        assert restarted.state.log_history[-1]["train_loss"] == full.state.log_history[-1]["train_loss"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-6", "checkpoint-8"]
    assert (out / "checkpoint-8" / "trainer_state.json").read_text() == state


@pytest.mark.parametrize(
    "asked, expected",
    [
        (dict(optim="sam"), r"learned radius \(LETS, rho=.*fixed radius \(rho=0\.1\).*--optim sam"),
        (
            dict(lets_base_optim="sgd"),
            r"torch\.optim\.Adam or torch\.optim\.AdamW.*torch\.optim\.SGD.*--lets_base_optim sgd",
        ),
    ],
)
def test_another_configuration_is_refused_before_training(tmp_path, full_run, asked, expected):
    _copy_checkpoints(full_run[1], tmp_path / "out", (4,))
    trainer = resume_trainer(tmp_path, **asked)
    steps = []
    trainer.training_step = lambda *args, **kwargs: steps.append(1)
    with pytest.raises(ValueError, match=expected) as error:
        trainer.train(resume_from_checkpoint=True)
    assert "checkpoint-4/optimizer.pt" in str(error.value) and "without resume_from_checkpoint" in str(error.value)
    assert not steps


def test_a_stock_optim_resumes_a_lets_checkpoint_with_its_base_state_and_says_what_is_dropped(
    tmp_path, full_run, monkeypatch
):
    """Dropping LETS mid-run (issue 29, item 6): --optim adamw_torch over a lets_sam checkpoint over AdamW loads
    AdamW's moments, warns that the radius is dropped, and trains on."""
    from lets_hf.trainer_parts import resume_checks

    told = []
    monkeypatch.setattr(resume_checks.logger, "warning", lambda message, *args: told.append(message % args))
    _copy_checkpoints(full_run[1], tmp_path / "out", (4,))
    saved = torch.load(tmp_path / "out" / "checkpoint-4" / "optimizer.pt", weights_only=True)
    trainer = resume_trainer(tmp_path, optim="adamw_torch")
    moments = []
    trainer.add_callback(_FirstStepMoments(moments))
    trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == MAX_STEPS
    assert any("drops a learned radius (LETS, rho=" in line and "--optim adamw_torch" in line for line in told)
    for index, state in saved["state"].items():
        assert torch.equal(moments[0][index]["exp_avg"], state["exp_avg"])


class _FirstStepMoments(TrainerCallback):
    def __init__(self, into):
        self.into = into

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if not self.into:
            self.into.append(
                {i: {k: v.clone() for k, v in m.items()} for i, m in optimizer.state_dict()["state"].items()}
            )


def test_stock_runs_are_checked_too(tmp_path):
    """ERM over AdamW resumed as ERM over SGD: Adam's settings meet SGD's, refused before SGD's step fails."""
    adamw = resume_trainer(tmp_path / "a", optim="adamw_torch", max_steps=2)
    adamw.train()
    with pytest.raises(ValueError, match=r"stock optimizer's state: torch\.optim\.Adam.*torch\.optim\.SGD"):
        resume_trainer(tmp_path / "a", optim="sgd", max_steps=4).train(resume_from_checkpoint=True)


def test_a_missing_optimizer_state_is_named_with_what_restarts(tmp_path, full_run, caplog):
    out = _copy_checkpoints(full_run[1], tmp_path / "out", (4,))
    (out / "checkpoint-4" / "optimizer.pt").unlink()
    reached = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"][-1]["rho"]
    trainer = resume_trainer(tmp_path)
    with caplog.at_level(logging.WARNING, logger="lets_hf"):
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-4"))
    message = next(r.getMessage() for r in caplog.records if "has no optimizer.pt" in r.getMessage())
    assert "checkpoint-4" in message and "rho restarts at rho_0=0.1" in message
    assert f"had reached rho={reached:.4g}" in message and "learning-rate schedule" in message


def test_save_only_model_with_a_learned_radius_warns_at_the_start(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="lets_hf"):
        trainer = resume_trainer(tmp_path, save_only_model=True, max_steps=2)
    assert any("save_only_model=True" in r.getMessage() and "rho" in r.getMessage() for r in caplog.records)
    trainer.train()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lets_hf"):  # resumable, with the loss named
        resume_trainer(tmp_path, save_only_model=True, max_steps=4).train(resume_from_checkpoint=True)
    assert any("has no optimizer.pt or scheduler.pt" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("readme", ["docs/usage.md", "glue/README.md", "translation/README.md"])
def test_the_ddp_commands_say_how_long_a_stopped_rank_stalls_the_run(readme):
    from lets_hf.arguments import LETSArguments

    text = open(os.path.join(os.path.dirname(HERE), readme)).read()
    default = LETSArguments(output_dir="unused", report_to=[]).ddp_timeout
    assert "--multi_gpu" in text and "--ddp_timeout" in text and f"{default}" in text and default == 1800
    ddp, timeout = text.index("--multi_gpu"), text.index("--ddp_timeout")
    assert abs(timeout - ddp) < 1500  # beside the DDP command, not somewhere else


class LogRecorder(TrainerCallback):
    """What logging callbacks receive in ``on_log`` (copies, as a printer or a tracker would take them)."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append((state.global_step, dict(logs)))


def _received(trainer_kwargs, root, resume=None):
    recorder = LogRecorder()
    trainer = LETSTrainer(**trainer_kwargs(root), callbacks=[recorder])
    output = trainer.train(resume_from_checkpoint=resume)
    losses = [(step, logs["loss"]) for step, logs in recorder.logs if "loss" in logs]
    final = recorder.logs[-1][1]["train_loss"]
    return losses, final, output


@pytest.mark.parametrize("accumulation", [1, 2])
@pytest.mark.parametrize("optim", ["lets_sam", "sam", "adamw_torch"])
def test_callbacks_receive_the_uninterrupted_runs_losses_after_a_resume(tmp_path, optim, accumulation):
    """Logs every 3 steps, checkpoints every 2, resumed from checkpoint-4 (its newest deleted): the loss at step 6
    averages steps 4-6 and the printed train_loss is the whole run's, as uninterrupted (it was doubled)."""
    settings = dict(
        max_steps=6,
        save_strategy="steps",
        save_steps=2,
        logging_steps=3,
        optim=optim,
        lets_base_optim="adamw_torch",
        learning_rate=1e-3,
        gradient_accumulation_steps=accumulation,
        per_device_train_batch_size=8 // accumulation,
    )
    kwargs = lambda root: dict(
        model=tiny_deberta(dropout=0.1), args=lets_args(root, **settings), train_dataset=token_dataset(64)
    )
    losses, final, output = _received(kwargs, tmp_path / "a")
    shutil.rmtree(tmp_path / "a" / "out" / "checkpoint-6")
    resumed_losses, resumed_final, resumed_output = _received(kwargs, tmp_path / "a", resume=True)
    assert [step for step, _ in losses] == [3, 6] and resumed_losses == losses[1:]
    assert resumed_final == final == output.training_loss == resumed_output.training_loss
    assert resumed_output.metrics["train_loss"] == final


def test_the_saved_radius_kind_is_asked_of_the_controllers_not_read_from_their_keys(monkeypatch):
    """Whatever keys a controller's state has (another layout here), a saved state is told by its controller's."""
    from lets_hf.checkpoints import describe_optimizer_state
    from lets_hf.radius import LETSRadius

    monkeypatch.setattr(LETSRadius, "state_dict", lambda self: {"nu": torch.tensor(0.0), "moments": torch.zeros(2)})
    monkeypatch.setattr(LETSRadius, "load_state_dict", lambda self, state: None)
    base = {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0, "params": [0]}]}
    learned = describe_optimizer_state({"base": base, "radius": {"moments": 0, "nu": 0}})
    fixed = describe_optimizer_state({"base": base, "radius": {"rho": 0.2}})
    assert "a learned radius (LETS, rho=0.05)" in learned and "a fixed radius (rho=0.2)" in fixed
