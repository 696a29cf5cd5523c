"""LETSArguments on the command line: every name parses, bad ones exit with the valid names, JSON round-trips."""

import json

import pytest
from transformers import HfArgumentParser

from lets_hf.arguments import SAM_FAMILY, STOCK_OPTIMIZERS, LETSArguments, LETSSeq2SeqArguments
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


def test_unknown_optim_exits_listing_the_valid_names(capsys):
    with pytest.raises(SystemExit):
        parse("--optim", "lets_adam")
    err = capsys.readouterr().err
    assert "invalid choice: 'lets_adam'" in err and all(name in err for name in SAM_FAMILY + ["adamw_torch"])


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


def test_every_stock_name_is_accepted():
    assert len(STOCK_OPTIMIZERS) > 10 and not set(SAM_FAMILY) & set(STOCK_OPTIMIZERS)
