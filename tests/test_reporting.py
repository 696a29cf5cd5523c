"""lets_hf.reporting: the methods' names and order, mean ± std over seeds, Markdown tables."""

import pytest

from lets_hf.reporting import METHOD_ORDER, markdown_table, mean_std, method_rank, without_start_radius


def test_mean_and_sample_std():
    assert mean_std([80.0, 82.0, 84.0]) == "82.0 ± 2.0"  # sample std: sqrt((4 + 0 + 4) / 2) = 2
    assert mean_std([71.25]) == "71.2"  # one run: its value alone
    assert mean_std([34.5, 34.7], ".2f") == "34.60 ± 0.14"
    assert mean_std([0.04, 0.06], ".4g", ".2g") == "0.05 ± 0.014"
    with pytest.raises(ValueError, match="no values"):
        mean_std([])


def test_rows_follow_the_papers_order():
    assert METHOD_ORDER[:7] == ("ERM", "SAM", "LETS-SAM", "ASAM", "LETS-ASAM", "GSAM", "LETS-GSAM")
    assert len(set(METHOD_ORDER)) == len(METHOD_ORDER)  # every variant has a label of its own
    labels = ["LETS-ASAM", "unknown", "SAM (rho=0.1)", "ERM", "LETS-SAM (rho0=0.05)", "ASAM (rho=0.5)"]
    assert sorted(labels, key=method_rank) == [
        "ERM",
        "SAM (rho=0.1)",
        "LETS-SAM (rho0=0.05)",
        "ASAM (rho=0.5)",
        "LETS-ASAM",
        "unknown",
    ]


@pytest.mark.parametrize(
    "label, rule",
    [
        ("LETS-SAM (rho0=0.1, robust)", "LETS-SAM (robust)"),
        ("LETS-SAM (rho0=0.05)", "LETS-SAM"),
        ("LETS-SAM (rho0=0.05, rho_lr=0.001, held-out 10%)", "LETS-SAM (rho_lr=0.001, held-out 10%)"),
        ("LETS-SAM robust_adam_i4 (rho_0=0.01)", "LETS-SAM robust_adam_i4"),  # glue/noisy_benchmark.py's spelling
        ("LETS-SAM robust_adam_i4 (rho_0=0.01) on 90%", "LETS-SAM robust_adam_i4 on 90%"),
    ],
)
def test_a_label_without_its_starting_radius_names_the_rule(label, rule):
    assert without_start_radius(label) == rule


def test_markdown_table():
    assert markdown_table(["a", "b"], [["1", ""], ["x", "y"]]) == "| a | b |\n|---|---|\n| 1 |  |\n| x | y |"
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        markdown_table(["a", "b"], [["1"]])
