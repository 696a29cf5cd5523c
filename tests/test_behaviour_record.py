"""Behaviour kept bit for bit: weights and rho after 5 fixed-seed steps of every ``--optim`` name.

``tests/data/five_steps.json`` holds, per case, the SHA-256 of the final weights' bytes and rho (as
``float.hex``), recorded before the step-protocol redesign (issue 19); every later change must
reproduce them exactly, in the plain API and in ``LETSTrainer``. A change that is meant to alter
the numbers re-records them on purpose, and says why in its commit::

    LETS_RECORD_BEHAVIOUR=1 OMP_NUM_THREADS=1 python -m pytest -q tests/test_behaviour_record.py

Bit-identity holds on one kind of CPU with one torch build: the record names both, and on another
the test is skipped with that reason (a kernel may sum in another order there).
"""

import hashlib
import json
import os
import pathlib

import pytest
import torch
from lets_testing import tiny_deberta, tiny_mlp, token_dataset

from lets_hf import LETSOptimizer, LETSRadius
from lets_hf.arguments import SAM_FAMILY
from lets_hf.perturbation import build_perturbation
from lets_hf.radius import radius_settings

RECORD = pathlib.Path(__file__).parent / "data" / "five_steps.json"
RECORDING = os.environ.get("LETS_RECORD_BEHAVIOUR") == "1"
STEPS = 5
# Plain-API settings beyond each name's defaults: the learned radius's other paths.
LEARNED_EXTRAS = {
    "robust": dict(preset="robust"),
    "robust_adam": dict(preset="robust", descent="adam", base="adamw"),
    "next": dict(preset="paper", train_term="next"),
    "interval2_fd": dict(preset="paper", interval=2, hvp="finite_difference"),
    "exact_val": dict(preset="paper", hvp="exact", objective="val"),
}


def machine() -> dict:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def fingerprint(model: torch.nn.Module, rho) -> dict:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return {"weights_sha256": digest.hexdigest(), "rho": None if rho is None else float(rho).hex()}


def plain_case(rule: str, learned: bool, preset: str = "paper", base: str = "sgd", **radius_options):
    """5 steps of the plain loop on a float32 tiny MLP: SGD with momentum (or AdamW), rho_0 0.05."""
    model = tiny_mlp(seed=0, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(2 * STEPS)]
    interval = radius_options.pop("interval", 1)
    radius = 0.05
    if learned:
        settings = radius_settings(
            preset,
            total_steps=STEPS,
            interval=interval,
            **({"rho_lr": 0.05} if preset == "paper" else {}),
            **{k: v for k, v in radius_options.items() if k in ("hvp", "objective")},
        )
        radius = LETSRadius(
            rho=0.05,
            train_term=radius_options.get("train_term", "same"),
            descent=radius_options.get("descent", "sgd"),
            **settings,
        )
    base_class, base_kwargs = (
        (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.01))
        if base == "adamw"
        else (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=5e-4))
    )
    optimizer = LETSOptimizer(
        model.parameters(),
        base_class,
        radius=radius,
        perturbation=build_perturbation(rule, {}, seed=0, total_steps=STEPS),
        **base_kwargs,
    )
    loss_of = lambda batch: torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
    for step in range(STEPS):  # the record was made with the loop in parts (first_step, ..., hyper_step)
        train, val = batches[2 * step], batches[2 * step + 1]
        optimizer.step(lambda: loss_of(train), lambda: loss_of(val), model=model)
    return fingerprint(model, optimizer.rho)


def plain_cases():
    cases = {}
    for name in SAM_FAMILY:
        learned = name.startswith("lets_")
        rule = name[len("lets_") :] if learned else name
        cases[f"plain/{name}"] = lambda rule=rule, learned=learned: plain_case(rule, learned)
    for extra, options in LEARNED_EXTRAS.items():
        cases[f"plain/lets_sam-{extra}"] = lambda options=options: plain_case("sam", True, **options)
    return cases


def trainer_case(optim: str, tmp_path, **overrides):
    """5 steps of ``LETSTrainer`` on a tiny DeBERTa classifier, AdamW base, rho_0 0.05, rho_lr 0.05."""
    from lets_hf import LETSArguments, LETSTrainer

    args = dict(
        output_dir=str(tmp_path / optim),
        optim=optim,
        lets_base_optim="adamw_torch",
        learning_rate=1e-3,
        rho=0.05,
        per_device_train_batch_size=8,
        max_steps=STEPS,
        lr_scheduler_type="linear",
        warmup_steps=1,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    if optim.startswith("lets_"):
        args["rho_lr"] = 0.05
    args.update(overrides)
    model = tiny_deberta(seed=0)
    trainer = LETSTrainer(model=model, args=LETSArguments(**args), train_dataset=token_dataset(64))
    trainer.train()
    return fingerprint(model, trainer.rho if trainer.lets_optimizer is not None else None)


TRAINER_NAMES = SAM_FAMILY + ["adamw_torch", "sgd"]
TRAINER_EXTRAS = {
    "lets_sam-robust-next": dict(optim="lets_sam", lets_preset="robust", lets_train_term="next"),
    "lets_sam-adam-descent": dict(optim="lets_sam", lets_descent="adam"),
}
ALL_CASES = sorted(plain_cases()) + [f"trainer/{n}" for n in TRAINER_NAMES] + [f"trainer/{n}" for n in TRAINER_EXTRAS]


def run_case(case: str, tmp_path) -> dict:
    kind, name = case.split("/", 1)
    if kind == "plain":
        return plain_cases()[case]()
    if name in TRAINER_EXTRAS:
        overrides = dict(TRAINER_EXTRAS[name])
        return trainer_case(overrides.pop("optim"), tmp_path, **overrides)
    return trainer_case(name, tmp_path)


@pytest.fixture(scope="module")
def record():
    if RECORDING:
        recorded = {"machine": machine(), "cases": {}}
        yield recorded
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    recorded = json.loads(RECORD.read_text())
    if recorded["machine"] != machine():
        pytest.skip(
            f"the record was made on {recorded['machine']}, this is {machine()}: bit-identity is not "
            f"defined across CPU kernels or torch builds; re-record on this machine to use it"
        )
    yield recorded


@pytest.mark.parametrize("case", ALL_CASES)
def test_five_steps_are_bit_identical_to_the_record(case, record, tmp_path):
    torch.set_num_threads(1)
    got = run_case(case, tmp_path)
    if RECORDING:
        record["cases"][case] = got
        return
    assert case in record["cases"], f"{case} has no record: re-record (see the module docstring)"
    assert got == record["cases"][case]


def test_the_record_covers_every_optim_name():
    recorded = set(json.loads(RECORD.read_text())["cases"])
    assert {f"trainer/{n}" for n in TRAINER_NAMES} <= recorded
    assert {f"plain/{n}" for n in SAM_FAMILY} <= recorded
