"""The rho comparison figure: runs of one start share a colour, each seed its own line style."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from lets_hf import plots  # noqa: E402


def test_runs_of_one_start_share_a_colour_and_differ_by_seed(tmp_path, monkeypatch):
    drawn = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((kwargs.get("label"), kwargs.get("color"), kwargs.get("linestyle")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    runs = [(f"rho0={rho}, seed {seed}", [0, 1], [rho, rho]) for rho in (0.01, 0.05) for seed in (0, 1)]
    runs += [(f"rho_0=0.1 seed {seed}", [0, 1], [0.1, 0.1]) for seed in (0, 1)]  # the digits benchmark's labels
    path = plots.plot_radius_comparison({"rule": runs}, str(tmp_path / "rho.png"))
    style = {label: (colour, line) for label, colour, line in drawn}
    assert style["rho0=0.01, seed 0"][0] == style["rho0=0.01, seed 1"][0] != style["rho0=0.05, seed 0"][0]
    assert style["rho0=0.01, seed 0"][1] != style["rho0=0.01, seed 1"][1] == style["rho0=0.05, seed 1"][1]
    assert style["rho_0=0.1 seed 0"][0] == style["rho_0=0.1 seed 1"][0] != style["rho0=0.05, seed 1"][0]
    assert (tmp_path / "rho.png").stat().st_size > 0 and path.endswith("rho.png")


def test_a_rho_axis_spans_at_least_a_factor_2_centred_on_the_range():
    low, high = plots.log_limits([0.05, 0.05074, None, 0.05069])
    assert high / low == pytest.approx(2.0) and low * high == pytest.approx(0.05 * 0.05074)
    assert plots.log_limits([0.01, 0.5]) == (0.01 / 1.1, 0.5 * 1.1)  # a wider range keeps its own span


def test_the_trajectory_figure_starts_at_rho_start_on_a_factor_2_axis(tmp_path, monkeypatch):
    import matplotlib.axes

    limits = []
    set_ylim = matplotlib.axes.Axes.set_ylim
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_ylim",
        lambda axis, *a, **k: (limits.append(a) if len(a) == 2 else None) or set_ylim(axis, *a, **k),
    )
    history = [{"step": 2, "rho": 0.0504, "rho_start": 0.05, "lets_gap": 0.1}, {"step": 4, "rho": 0.0509}]
    assert plots.radius_trajectory(history)["rho"] == [0.05, 0.0504, 0.0509]
    plots.plot_radius_trajectory(history, str(tmp_path / "rho.png"))
    ((low, high),) = limits
    assert high / low == pytest.approx(2.0) and low < 0.05 and 0.0509 < high
