"""Every option is declared once, by its rule or controller, and reaches every front end from there.

The worked example of ``docs/design.md`` ("Adding a variant") is run as written: its module, registered
with one line in a fresh process, must appear in ``LETSArguments``' parser, vision's command line, the
labels and the builder.
"""

import json
import os
import pickle
import re
import subprocess
import sys

import pytest
import torch
from lets_testing import ROOT

from lets_hf.arguments import SAM_FAMILY, LETSArgumentParser, LETSArguments
from lets_hf.methods import build_method, method_label, method_options
from lets_hf.options import Option, merge_options
from lets_hf.perturbation import SAM
from lets_hf.radius import LRProportionalRadius
from vision.config import TrainConfig, build_parser, parse_config
from vision.presets import DEFAULTS

VISION_OWN_DEFAULTS = {"rho": None, "lets_preset": "paper_vision"}  # vision/presets.py's choices over the library's


def example_module() -> str:
    """The first Python block of docs/design.md's "Adding a variant": the made-up variant's module."""
    section = (ROOT / "docs" / "design.md").read_text().split("### Adding a variant", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_every_option_is_a_field_a_flag_and_a_default_with_its_declaration():
    options = method_options()
    fields = LETSArguments.__dataclass_fields__
    flags = {action.dest: action for action in build_parser()._actions}
    for name, option in options.items():
        assert fields[name].default == option.default and option.help in fields[name].metadata["help"]
        assert list(option.choices or []) == list(fields[name].metadata.get("choices", []))
        assert flags[name].type is option.type and tuple(flags[name].choices or ()) == (option.choices or ())
        assert DEFAULTS[name] == VISION_OWN_DEFAULTS.get(name, option.default)
        assert name in TrainConfig.__dataclass_fields__
    assert {"asam_xi", "looksam_k", "esam_form", "ae_lambda2", "rho_schedule", "rho_decay_total"} <= set(options)


def test_the_defaults_are_the_papers():
    defaults = {name: option.default for name, option in method_options().items()}
    assert {
        k: defaults[k]
        for k in (
            "asam_xi",
            "gsam_alpha",
            "esam_beta",
            "esam_form",
            "rst_p",
            "looksam_k",
            "looksam_alpha",
            "looksam_split",
            "ae_delta",
            "ae_lambda1",
            "ae_lambda2",
        )
    } == {
        "asam_xi": 0.01,
        "gsam_alpha": 0.4,
        "esam_beta": 0.5,
        "esam_form": "official",
        "rst_p": 0.5,
        "looksam_k": 5,
        "looksam_alpha": 0.7,
        "looksam_split": "whole",
        "ae_delta": 0.9,
        "ae_lambda1": 1.0,
        "ae_lambda2": -1.0,
    }
    assert (defaults["rho"], defaults["rho_min"], defaults["lets_preset"], defaults["rho_lr"]) == (
        0.05,
        1e-4,
        "auto",  # the paper's rule over an Adam-family base optimizer (the default's), robust_next over SGD
        None,
    )


def test_every_sam_family_name_has_its_papers_label():
    assert [method_label(n) for n in ("gsam", "lets_gsam", "lets_ae_looksam", "rst", "sgd")] == [
        "GSAM",
        "LETS-GSAM",
        "LETS-AE-LookSAM",
        "RST",
        "ERM",
    ]
    assert all(method_label(n) != "ERM" for n in SAM_FAMILY)


@pytest.mark.parametrize("optim", SAM_FAMILY)
def test_one_builder_serves_lets_arguments_and_vision(optim):
    arguments = LETSArguments(output_dir="unused", optim=optim, use_cpu=True, report_to=[], max_steps=10)
    vision = parse_config(["--method", optim, "--rho", "0.05", "--lets_preset", "paper"]).build_method(total_steps=10)
    for built in (vision, build_method(optim, {}, total_steps=10)):
        assert [repr(part) for part in built] == [
            repr(arguments.build_perturbation(total_steps=10)),
            repr(arguments.build_radius(total_steps=10)),
        ]


def test_vision_reaches_the_learning_rate_schedule_of_the_radius():
    config = parse_config(
        ["--method", "gsam", "--rho_schedule", "lr", "--lr", "0.2", "--rho", "0.1", "--rho_min", "0.01"]
    )
    rule, radius = config.build_method(total_steps=10)
    assert isinstance(radius, LRProportionalRadius) and rule.name == "gsam"
    assert pickle.loads(pickle.dumps(config)) == config  # a class made from the declarations, found by pickle
    radius.observe_learning_rate(0.05)
    assert radius.rho == pytest.approx(0.01 + (0.1 - 0.01) * 0.05 / 0.2, rel=1e-12)
    assert type(parse_config(["--method", "gsam"]).build_method(10)[1]).__name__ == "FixedRadius"


def test_a_shared_option_declared_otherwise_is_refused():
    class One(SAM):
        options = (Option("x_shared", float, "one help"),)

        def __init__(self, x_shared: float = 1.0):
            pass

    class Other(One):
        options = (Option("x_shared", float, "another help"),)

    with pytest.raises(ValueError, match="the option 'x_shared' of Other is declared otherwise elsewhere"):
        merge_options([One, Other])


def test_the_worked_example_is_the_formula_it_states():
    namespace = {}
    exec(example_module(), namespace)
    g = torch.tensor([0.5, -2.0, 0.0, 1.5])
    for power in (1.0, 2.0):
        grads = [g.clone()]
        namespace["SignSAM"](power=power).perturbation_([torch.zeros(4)], grads, torch.tensor(0.1))
        direction = g.sign() * g.abs() ** power
        torch.testing.assert_close(grads[0], 0.1 * direction / direction.norm(), rtol=1e-6, atol=0)


REGISTERED = """
import json, sys
namespace = {}
exec(sys.stdin.read(), namespace)
from lets_hf.perturbation import register
register(namespace["SignSAM"])  # the one registration line

from lets_hf.arguments import LETSArgumentParser, LETSArguments
from lets_hf.methods import build_method, method_label
from vision.config import build_parser, parse_config

parser = LETSArgumentParser(LETSArguments)
(args,) = parser.parse_args_into_dataclasses(["--output_dir", "unused", "--optim", "lets_signsam", "--signsam_power",
                                              "2", "--use_cpu", "true", "--report_to", "none"])
rule, radius = parse_config(["--method", "signsam", "--signsam_power", "3"]).build_method(total_steps=10)
try:
    LETSArguments(output_dir="unused", optim="signsam", signsam_power=-1.0)
    bad = None
except ValueError as error:
    bad = str(error)
print(json.dumps({
    "trainer_help": "--signsam_power" in parser.format_help() and "SignSAM's power p" in parser.format_help(),
    "trainer": [args.build_perturbation().power, args.build_radius(total_steps=10).learns],
    "vision_help": "--signsam_power" in build_parser().format_help(),
    "vision": [rule.power, radius.learns, parse_config(["--method", "lets_signsam"]).build_method(10)[0].power],
    "labels": [method_label("signsam"), method_label("lets_signsam")],
    "builder": build_method("lets_signsam", {"signsam_power": 0.5})[0].power,
    "bad": bad}))
"""


def test_a_variant_registered_with_one_line_reaches_every_front_end():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", REGISTERED],
        input=example_module(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {
        "trainer_help": True,
        "trainer": [2.0, True],
        "vision_help": True,
        "vision": [3.0, False, 1.0],
        "labels": ["SignSAM", "LETS-SignSAM"],
        "builder": 0.5,
        "bad": "signsam_power must be >= 0 and finite, got -1.0",
    }


def test_lets_arguments_parser_lists_the_options_in_its_group():
    text = LETSArgumentParser(LETSArguments).format_help().split("LETS and the SAM family (lets_hf)", 1)[1]
    assert all(f"--{name}" in text for name in method_options())
