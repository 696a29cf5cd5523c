"""Label noise on GLUE training data, and the noisy text benchmark's protocol."""

import pytest
from datasets import ClassLabel, Dataset, Features, Value

from glue.data import with_label_noise
from glue.errors import GlueInputError
from glue.noisy_benchmark import ASAM_GRID, LETS_STARTS, SAM_GRID, arm_runs, label_of, parse


def _dataset(n: int = 200) -> Dataset:
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    return Dataset.from_dict(
        {"sentence": [f"s{i}" for i in range(n)], "label": [i % 2 for i in range(n)]}, features=features
    )


def test_noise_flips_exactly_the_rate_and_keeps_the_rows():
    clean = _dataset()
    noisy = with_label_noise(clean, 0.3, seed=0)
    flipped = sum(a != b for a, b in zip(clean["label"], noisy["label"]))
    assert flipped == 60 and noisy["sentence"] == clean["sentence"]
    assert noisy.features["label"] == clean.features["label"]
    assert with_label_noise(clean, 0.3, seed=0)["label"] == noisy["label"]  # the data seed alone decides
    assert with_label_noise(clean, 0.3, seed=1)["label"] != noisy["label"]
    assert with_label_noise(clean, 0.0, seed=0)["label"] == clean["label"]


@pytest.mark.parametrize("rate", [-0.1, 1.0, "x"])
def test_noise_rate_outside_unit_interval_is_refused_by_its_flag_name(rate):
    with pytest.raises(GlueInputError, match="--train_label_noise"):
        with_label_noise(_dataset(), rate, seed=0)


def test_noise_needs_classes():
    scores = Dataset.from_dict({"sentence": ["a", "b"], "label": [0.5, 1.5]})
    with pytest.raises(GlueInputError, match="classification"):
        with_label_noise(scores, 0.2, seed=0)


def test_benchmark_arms_cover_the_grid_and_every_start():
    grid = arm_runs("grid")
    assert [name for name, _ in grid] == ["erm"] + [f"sam-rho{rho:g}" for rho in SAM_GRID]
    learned = arm_runs("robust_adam_i4")
    assert [flags[flags.index("--rho") + 1] for _, flags in learned] == [str(rho) for rho in LETS_STARTS]
    assert label_of("sam-rho0.01") == "SAM (rho=0.01)" and label_of("erm") == "ERM"
    assert label_of("lets_sam_paper-rho0.05") == "LETS-SAM paper (rho_0=0.05)"
    assert label_of("sam-rho0.05-heldout") == "SAM (rho=0.05) on 90%"
    held_out = arm_runs("grid_heldout")
    assert [name for name, _ in held_out] == [
        "erm-heldout",
        "sam-rho0.02-heldout",
        "sam-rho0.05-heldout",
        "sam-rho0.1-heldout",
    ]
    assert all(flags[-2:] == ["--lets_val_split_fraction", "0.1"] for _, flags in held_out)
    with pytest.raises(SystemExit):
        parse(["--arms", "grid,bogus"])


def test_asam_arms_run_asam_and_lets_asam_from_the_same_radii():
    assert [name for name, _ in arm_runs("asam_grid")] == [f"asam-rho{rho:g}" for rho in ASAM_GRID]
    learned = arm_runs("asam_next_sgd")
    assert [name for name, _ in learned] == [f"lets_asam_next_sgd-rho{rho:g}" for rho in ASAM_GRID]
    assert all(flags[:2] == ["--optim", "lets_asam"] and "--rho_max" in flags for _, flags in learned)
    assert label_of("lets_asam_next_sgd-rho0.5") == "LETS-ASAM next_sgd (rho_0=0.5)"
    assert label_of("asam-rho2") == "ASAM (rho=2)"


@pytest.mark.parametrize(
    "arm",
    [
        "grid",
        "grid_heldout",
        "paper",
        "robust_adam",
        "robust_adam_i4",
        "robust_adam_i4_heldout",
        "asam_grid",
        "asam_next_sgd",
    ],
)
def test_every_benchmark_command_parses_in_run_glue(arm, tmp_path):
    """Each run's flags are accepted by run_glue.py's parser (a misspelt flag fails here, not after an hour)."""
    from glue.noisy_benchmark import fixed_settings
    from glue.run_glue import parse_arguments

    for _, flags in arm_runs(arm):
        _, data_args, training_args = parse_arguments(
            [*fixed_settings("sst2", 100, 0.3, 1), *flags, "--output_dir", str(tmp_path)]
        )
        assert data_args.train_label_noise == 0.3 and training_args.train_sampling_strategy == "group_by_length"
