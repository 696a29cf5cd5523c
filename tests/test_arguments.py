"""LETSArguments on the command line: every name parses, bad ones exit with the valid names, JSON round-trips."""

import json
import warnings
from dataclasses import dataclass

import pytest
from transformers import HfArgumentParser

from lets_hf.arguments import SAM_FAMILY, STOCK_OPTIMIZERS, LETSArgumentParser, LETSArguments, LETSSeq2SeqArguments
from lets_hf.methods import method_options
from lets_hf.radius import FixedRadius, LETSRadius


def parse(*argv, cls=LETSArguments):
    (args,) = HfArgumentParser(cls).parse_args_into_dataclasses(["--output_dir", "unused", *argv])
    return args


@pytest.mark.parametrize(
    "name, family",
    [("lets_sam", ("sam", True)), ("lets_asam", ("asam", True)), ("sam", ("sam", False)), ("asam", ("asam", False))],
)
def test_sam_family_names_parse(name, family):
    args = parse("--optim", name, "--rho", "0.2", "--asam_xi", "0.05")
    assert args.optim == name and args.sam_family == family
    radius = args.build_radius()
    assert isinstance(radius, LETSRadius if family[1] else FixedRadius) and radius.rho == pytest.approx(0.2)
    rule = args.build_perturbation()
    assert rule.name == family[0]  # asam takes --asam_xi, sam has no option
    assert (rule.xi == 0.05) if family[0] == "asam" else not hasattr(rule, "xi")


@pytest.mark.parametrize("name", ["adamw_torch", "sgd", "adafactor", "adamw_torch_fused"])
def test_stock_names_mean_erm(name):
    args = parse("--optim", name)
    assert args.optim.value == name and args.sam_family is None


def parse_error(capsys, *argv) -> list[str]:
    """The lines that ``LETSArgumentParser``'s parse error prints on stderr (argparse exits with status 2)."""
    with pytest.raises(SystemExit) as exited:
        LETSArgumentParser(LETSArguments).parse_args_into_dataclasses(["--output_dir", "unused", *argv])
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["--optim", "lets_sma"],
            "error: argument --optim: did you mean 'lets_sam'? 'lets_sma' is not one of its "
            f"{len(SAM_FAMILY + STOCK_OPTIMIZERS)} names (--help lists them)",
        ),
        (
            ["--optim", "lets_sam", "--lets_preset", "robst"],
            "error: argument --lets_preset/--lets-preset: did you mean 'robust'? 'robst' is not one of auto, paper, "
            "robust, paper_vision, paper_iwslt, robust_next",
        ),
        (["--optim", "qqqqq"], "error: argument --optim: 'qqqqq' is not one of its "),
    ],
)
def test_a_mistyped_name_gets_one_short_line_with_the_suggestion_first(argv, line, capsys):
    usage, error = parse_error(capsys, *argv)
    assert usage.startswith("usage: ") and len(usage) < 120  # the short usage, not a list of every flag
    assert line in error and len(error) < 170  # one line: the six presets' names fit, a list of 57 would not


def test_hf_argument_parser_keeps_argparse_s_message_and_the_full_list(capsys):
    with pytest.raises(SystemExit):
        parse("--optim", "lets_adam")
    err = capsys.readouterr().err
    assert "invalid choice: 'lets_adam'" in err and all(name in err for name in SAM_FAMILY + ["adamw_torch"])


@pytest.mark.parametrize(
    "kwargs, first_line",
    [
        (dict(optim="lets_sma"), "optim 'lets_sma': did you mean 'lets_sam'?"),
        (dict(optim="lets_sam", lets_preset="robst"), "lets_preset 'robst': did you mean 'robust'?"),
        (dict(optim="lets_sam", lets_hvp="dig"), "lets_hvp 'dig': did you mean 'diag'?"),
    ],
)
def test_a_mistyped_name_in_python_has_the_suggestion_on_a_short_first_line(kwargs, first_line):
    with pytest.raises(ValueError) as raised:
        LETSArguments(output_dir="unused", **kwargs)
    first, full = str(raised.value).splitlines()
    name = first.split()[0]
    assert first == first_line and full.startswith(f"{name} must be one of ")


@pytest.mark.parametrize(
    "kwargs, lines",
    [
        (
            dict(optim="sam", rho_lr=1e-2),
            ["--optim sam (a fixed rho) ignores this option:", "  --rho_lr 0.01: read by lets_* (a learned radius)"],
        ),
        (
            dict(optim="adamw_torch", rho=0.1, asam_xi=0.1, lets_base_optim="sgd"),
            [
                "--optim adamw_torch (plain ERM) ignores these options:",
                "  --rho 0.1: read by any SAM-family optim",
                "  --asam_xi 0.1: read by asam, lets_asam",
                "  --lets_base_optim sgd: read by any SAM-family optim",
            ],
        ),
        (
            dict(optim="lets_sam", rho_schedule="lr", gsam_alpha=0.1),
            [
                "--optim lets_sam (a learned rho) ignores these options:",
                "  --rho_schedule lr: read by sam, asam, ... (a fixed radius)",
                "  --gsam_alpha 0.1: read by gsam, lets_gsam",
            ],
        ),
        (
            dict(optim="sam", rho_min=1e-3, lets_val_batch_size=4),
            [
                "--optim sam (a fixed rho) ignores these options:",
                "  --rho_min 0.001: read by lets_* (a learned radius); sam, asam, ... (a fixed radius) with "
                "--rho_schedule lr",
                "  --lets_val_batch_size 4: read by lets_* (a learned radius)",
            ],
        ),
    ],
)
def test_options_the_optim_ignores_are_named_in_a_warning(kwargs, lines):
    with pytest.warns(UserWarning) as caught:
        LETSArguments(output_dir="unused", **kwargs)
    assert [str(w.message).splitlines() for w in caught] == [lines]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(optim="lets_sam", rho=0.1, rho_lr=1e-2, rho_min=1e-3, lets_preset="robust", lets_val_batch_size=4),
        dict(optim="sam", rho=0.1, rho_schedule="lr", rho_min=1e-3),
        dict(optim="lets_asam", asam_xi=0.1, lets_base_optim="sgd"),
        dict(optim="adamw_torch", rho=0.05, lets_preset="auto"),  # the defaults, given explicitly
    ],
)
def test_options_the_optim_reads_raise_no_warning(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LETSArguments(output_dir="unused", **kwargs)


def test_help_starts_with_the_lets_group_and_ends_with_the_trainer_options():
    @dataclass
    class ScriptArguments:
        """What the script itself takes."""

        task_name: str = "mrpc"

    lines = LETSArgumentParser((ScriptArguments, LETSArguments), prog="run.py").format_help().splitlines()
    titles = [line for line in lines if line and not line.startswith(" ")]
    assert titles == [
        "usage: run.py [-h] [--optim NAME] [--rho RHO] [OPTION ...]  (listed below: LETS first, the Trainer's last)",
        "options:",
        "LETS and the SAM family (lets_hf):",
        "ScriptArguments:",
        "Trainer options (transformers TrainingArguments):",
    ]
    first_screen = "\n".join(lines[:40])
    assert "--optim NAME" in first_screen and "--rho RHO" in first_screen
    lets, script, trainer = (lines.index(title) for title in titles[2:])
    assert any("--task_name" in line for line in lines[script:trainer])
    assert any("--per_device_train_batch_size" in line for line in lines[trainer:])
    assert not any("--per_device_train_batch_size" in line for line in lines[:trainer])
    assert all(any(f"--{name} " in line for line in lines[lets:script]) for name in method_options())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optim", "lets_sam", "--rho", "-1"], "rho must be a finite number > 0"),
        (["--optim", "lets_sam", "--rho_min", "0.5", "--rho_max", "0.1", "--rho", "0.2"], "rho_min"),
        (["--optim", "lets_sam", "--rho_lr", "0"], "rho_lr must be a finite number > 0"),
        (["--optim", "asam", "--asam_xi", "-0.1"], "asam_xi must be >= 0"),
        (["--lets_val_batch_size", "0"], "lets_val_batch_size must be >= 1"),
        (
            ["--optim", "lets_sam", "--lets_descent", "adam", "--lets_base_optim", "sgd"],
            r"lets_descent 'adam' .* lets_base_optim must be one of \['adamw_torch', 'adamw_torch_fused'\], got 'sgd'",
        ),
    ],
)
def test_bad_values_name_the_argument(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--lets_hvp", "newton"],
        ["--lets_objective", "loss"],
        ["--lets_descent", "lbfgs"],
        ["--lets_base_optim", "lets_sam"],
        ["--lets_val_source", "test"],
    ],
)
def test_bad_choices_exit(argv, capsys):
    with pytest.raises(SystemExit):
        parse("--optim", "lets_sam", *argv)
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("cls", [LETSArguments, LETSSeq2SeqArguments])
def test_json_round_trip(tmp_path, cls):
    args = parse(
        "--optim",
        "lets_asam",
        "--rho",
        "0.3",
        "--lets_hvp",
        "finite_difference",
        "--lets_objective",
        "val",
        "--lets_base_optim",
        "sgd",
        cls=cls,
    )
    saved = json.loads(args.to_json_string())
    assert saved["optim"] == "lets_asam" and saved["lets_base_optim"] == "sgd"
    path = tmp_path / "args.json"
    path.write_text(json.dumps({k: v for k, v in saved.items() if k in {f for f in cls.__dataclass_fields__}}))
    (back,) = HfArgumentParser(cls).parse_json_file(str(path))
    for key in ("optim", "rho", "lets_hvp", "lets_objective", "lets_base_optim", "rho_lr", "asam_xi"):
        assert getattr(back, key) == getattr(args, key)


def test_descent_reaches_the_radius():
    assert parse("--optim", "lets_sam").build_radius().descent.name == "sgd"  # the paper's
    assert parse("--optim", "lets_sam", "--lets_descent", "adam").build_radius().descent.name == "adam"


def test_auto_follows_the_base_optimizer_and_its_next_batch_validation_refuses_a_batch_size():
    over_sgd = parse("--optim", "lets_sam", "--lets_base_optim", "sgd")
    radius = over_sgd.build_radius(total_steps=400)
    assert (radius.val_term, radius.warmup_updates, radius.hvp.name) == ("next", 100, "finite_difference")
    assert over_sgd.validation_from_next_batch
    over_adamw = parse("--optim", "lets_sam").build_radius(total_steps=400)  # the default base: AdamW
    assert (over_adamw.val_term, over_adamw.hvp.name, over_adamw.lr) == ("own", "diag", 1e-4)  # the paper's
    with pytest.raises(ValueError, match="lets_val_term 'next' from lets_preset 'auto'"):
        LETSArguments(output_dir="unused", optim="lets_sam", lets_base_optim="sgd", lets_val_batch_size=8)


def test_warmup_is_a_fraction_of_the_runs_hyper_updates():
    args = parse("--optim", "lets_sam", "--lets_preset", "robust", "--rho_warmup", "0.25", "--lets_interval", "2")
    assert args.build_radius(total_steps=400).warmup_updates == 50
    assert parse("--optim", "lets_sam").build_radius().warmup_updates == 0


def test_every_stock_name_is_accepted():
    assert len(STOCK_OPTIMIZERS) > 10 and not set(SAM_FAMILY) & set(STOCK_OPTIMIZERS)
